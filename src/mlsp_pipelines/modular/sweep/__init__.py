"""Hyper-parameter search (Optuna TPE) over one model of a classification task."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
