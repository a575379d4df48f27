"""Viscoelastic constitutive modelling: simulated stretch–stress histories → sequence models
(memoryless MLP, RNN, GRU, LSTM, causal transformer, one-to-many generator) → leaderboard,
σ–λ loops and gradient-through-time diagnostics."""

from .pipeline import create_pipelines

__all__ = ["create_pipelines"]
