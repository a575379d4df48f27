"""Typed parameter sections of the ``word2vec`` pipeline (validated by Kedro before any node runs).

word2vec trains with its own SGD (:mod:`mlsp_pipelines.training.word2vec_sgd`), not with the
shared loop, so its ``train`` section holds word2vec's settings (``alpha`` decaying linearly to
``min_alpha``, the engine) instead of the loop's optimiser ones; a model entry names a registry
architecture (the module that holds the trained vectors) and may override ``train`` keys.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mlsp_pipelines.features.text import DEFAULT_TOKEN_PATTERN
from mlsp_pipelines.section import Section


class TextPreprocessParams(Section):
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
    seed: int = 0                               # the draw summarised in the data-quality report

    @field_validator("token_pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"token_pattern {v!r} is not a valid regular expression: {exc}") from exc
        return v


class EmbeddingParams(Section):
    """The embedding size shared by every model (and the gensim anchor)."""

    dim: int = Field(100, ge=1)


class EvaluationParams(Section):
    """Intrinsic evaluation of the embeddings."""

    probe_words: list[str] = Field(default_factory=lambda: ["government", "police", "fire", "australia", "says"])
    n_neighbours: int = Field(8, ge=1)
    pca_words: int = Field(80, ge=2)          # most frequent words in the 2-D projection plot
    pca_skip: int = Field(20, ge=0)           # ... after skipping this many (stop words)
    analogy_restrict_vocab: int | None = Field(30000, ge=1)  # candidate answers: most frequent words


class Word2VecTrainParams(Section):
    """word2vec's SGD: ``alpha`` decays linearly to ``min_alpha`` over all epochs; sub-sampling,
    reduced windows and negatives are drawn anew every epoch from ``seed`` and the epoch.

    ``engine``: ``numba`` (compiled CPU kernel, one pair at a time, like gensim), ``torch``
    (``batch_pairs`` pairs per step; for a GPU) or ``auto`` (numba on CPU, torch on CUDA).
    """

    epochs: int = Field(5, ge=1)
    alpha: float = Field(0.025, gt=0)
    min_alpha: float = Field(0.0001, gt=0)
    engine: Literal["auto", "numba", "torch"] = "auto"
    device: str = "cpu"                        # cpu | cuda | auto
    batch_pairs: int = Field(4096, ge=1)      # torch engine only
    deterministic: bool = True                # torch engine: deterministic scatter-adds on GPU
    seed: int = 0
    resume: bool = True                       # resume from the last epoch's checkpoint
    progress: bool = True

    @model_validator(mode="after")
    def _check(self) -> "Word2VecTrainParams":
        if self.min_alpha > self.alpha:
            raise ValueError(f"min_alpha={self.min_alpha} must not exceed alpha={self.alpha}")
        if self.device not in ("cpu", "auto") and not self.device.startswith("cuda"):
            raise ValueError(f"device must be cpu, cuda[:N] or auto, got {self.device!r}")
        return self

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


class Word2VecModelSpec(Section):
    """A word2vec architecture of the registry, its kwargs (``negative``) and ``train`` overrides."""

    arch: Literal["word2vec_sg", "word2vec_cbow"]
    kwargs: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "Word2VecModelSpec":
        from mlsp_pipelines.models import model_config

        model_config(self.arch, **self.kwargs)
        Word2VecTrainParams(**self.train)
        return self

    @property
    def kind(self) -> str:
        return "sg" if self.arch == "word2vec_sg" else "cbow"

    def train_params(self, base: Word2VecTrainParams) -> Word2VecTrainParams:
        """``base`` with this model's overrides applied."""
        return Word2VecTrainParams(**{**base.model_dump(), **self.train})


class BaselineParams(Section):
    """gensim ``Word2Vec`` anchors, one per kind, on the same tokens and hyper-parameters as the
    project model of that kind (same ``alpha``/``min_alpha``, epochs, negatives, window, seed)."""

    enabled: bool = True
    kinds: list[Literal["sg", "cbow"]] = Field(default_factory=lambda: ["sg", "cbow"])
    workers: int = Field(1, ge=1)             # 1 = single thread, like the project's kernel
