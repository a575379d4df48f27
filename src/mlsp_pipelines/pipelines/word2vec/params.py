"""Typed parameter sections of the ``word2vec`` pipeline (validated by Kedro before any node runs).

The shared sections (``TrainParams`` for the training loop, ``ModelSpec`` for a registry
architecture and its kwargs) come from :mod:`mlsp_pipelines.params`; the ones below are
specific to word embeddings.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlsp_pipelines.features.text import DEFAULT_TOKEN_PATTERN


class _Section(BaseModel):
    """Unknown keys are errors (a typo such as ``min_cont`` stops the run), values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPreprocessParams(_Section):
    """Tokenisation, vocabulary and the sampling of training examples (the ``word2vec_data`` stage)."""

    lowercase: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN  # regular expression; every match is a token
    min_token_length: int = Field(1, ge=1)
    min_count: int = Field(5, ge=1)             # words rarer than this are dropped
    max_vocab: int | None = Field(None, ge=1)   # keep only the most frequent words
    sample: float = Field(1e-3, ge=0, lt=1)     # sub-sampling threshold (0 = off)
    window: int = Field(5, ge=1)                # maximum distance centre ↔ context
    dynamic_window: bool = True                 # per-centre window b ~ U{1..window}
    noise_power: float = Field(0.75, ge=0)      # negatives ~ count ** noise_power
    val_fraction: float = Field(0.0, ge=0, lt=0.5)  # held-out examples for the validation loss (0 = none)
    seed: int = 0

    @field_validator("token_pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"token_pattern {v!r} is not a valid regular expression: {exc}") from exc
        return v


class EmbeddingParams(_Section):
    """The embedding size shared by every model (and the gensim anchor)."""

    dim: int = Field(100, ge=1)


class EvaluationParams(_Section):
    """Intrinsic evaluation of the embeddings."""

    probe_words: list[str] = Field(default_factory=lambda: ["government", "police", "fire", "australia", "says"])
    n_neighbours: int = Field(8, ge=1)
    pca_words: int = Field(80, ge=2)          # most frequent words in the 2-D projection plot
    pca_skip: int = Field(20, ge=0)           # ... after skipping this many (stop words)
    analogy_restrict_vocab: int | None = Field(30000, ge=1)  # candidate answers: most frequent words


class BaselineParams(_Section):
    """The gensim ``Word2Vec`` anchor trained on the same examples and hyper-parameters."""

    enabled: bool = True
    sg: int = Field(1, ge=0, le=1)            # 1 = skip-gram (compared with word2vec_sg)
    workers: int = Field(1, ge=1)             # 1 = single thread, like the project's models
    alpha: float = Field(0.025, gt=0)         # gensim's SGD learning rate (decays to min_alpha)
    min_alpha: float = Field(0.0001, gt=0)
