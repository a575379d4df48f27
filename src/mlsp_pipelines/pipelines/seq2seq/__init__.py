"""Sequence-to-sequence: sentence pairs → vocabularies → encoder–decoders (with and without
attention, Transformer) → exact match, token accuracy, BLEU, attention heat-maps, leaderboard."""

from .pipeline import create_pipelines

__all__ = ["create_pipelines"]
