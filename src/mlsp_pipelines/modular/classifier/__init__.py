"""Train → evaluate → explain for one architecture; instantiated once per architecture by namespace."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
