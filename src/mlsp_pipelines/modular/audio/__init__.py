"""Audio → log-mel features → splits → normalisation: shared by ``asc`` and ``asthma``."""

from .pipeline import create_model_input_pipeline, create_pipeline

__all__ = ["create_model_input_pipeline", "create_pipeline"]
