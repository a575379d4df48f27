"""Wheeze and crackle detection in respiratory cycles, on the shared audio pipeline."""

from .pipeline import create_pipelines

__all__ = ["create_pipelines"]
