"""Acoustic scene classification: audio → log-mel → every listed architecture → leaderboard."""

from .pipeline import create_pipelines

__all__ = ["create_pipelines"]
