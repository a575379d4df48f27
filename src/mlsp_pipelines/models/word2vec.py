"""``word2vec_sg`` (skip-gram) and ``word2vec_cbow``: word embeddings trained by negative sampling.

Registry contract, read for word embeddings: ``in_features`` is the **vocabulary size** ``V``
and ``out_features`` the **embedding dimension** ``D``. Unlike the sequence models these take
word ids, not (B, T, F) features:

* ``word2vec_sg``: ``forward(centre)`` with ``centre`` (B,) ids → the centre vectors (B, D);
* ``word2vec_cbow``: ``forward(context)`` with ``context`` (B, 2·window) ids padded with ``V``
  → the mean of the non-padding context vectors (B, D).

The ``word2vec`` pipeline trains these with word2vec's own SGD
(:mod:`mlsp_pipelines.training.word2vec_sgd`, many times faster than autograd for this model)
and loads the result with :meth:`Word2Vec.load_vectors`; the modules also train with the
shared loop, where the training target is the word to predict (a context word for skip-gram,
the centre word for CBOW) and the loss is :meth:`Word2Vec.negative_sampling_loss`, passed to
the loop as ``loss_fn``::

    -log σ(h·u_target) − Σ_k log σ(−h·u_k),   u_k ~ noise distribution, k = 1..negative

Negatives are drawn for every batch from the model's noise distribution (unigram^0.75 of the
training corpus, set with :meth:`Word2Vec.set_noise_distribution` and kept in the state dict)
with torch's global generator, which the training loop seeds and checkpoints, so training is
deterministic and resumes exactly. As in word2vec, a negative equal to the target is skipped.
Input vectors start uniform in ±0.5/D, output vectors at zero; :meth:`Word2Vec.embeddings`
returns the input vectors (V, D), the ones word2vec publishes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlsp_pipelines.models._config import resolve_config
from mlsp_pipelines.models._layers import check_features
from mlsp_pipelines.models.registry import register_model
from mlsp_pipelines.models.configs import Word2VecConfig


class Word2Vec(nn.Module):
    """Shared parts: input/output embeddings, the noise distribution and the loss.

    ``config`` holds the hyper-parameters (:class:`Word2VecConfig`; ``None``: its defaults).
    """

    arch = "word2vec"
    padding: bool = False  # CBOW pads context windows with id V

    def __init__(self, config: Word2VecConfig | None = None, *, in_features: int, out_features: int) -> None:
        super().__init__()
        self.vocab_size, self.dim = check_features(in_features, out_features)
        self.config: Word2VecConfig = resolve_config(Word2VecConfig, config, self.arch)
        self.negative = self.config.negative
        pad = self.vocab_size if self.padding else None
        sparse = self.config.sparse
        self.in_embed = nn.Embedding(self.vocab_size + (1 if self.padding else 0), self.dim, padding_idx=pad,
                                     sparse=sparse)
        self.out_embed = nn.Embedding(self.vocab_size, self.dim, sparse=sparse)
        with torch.no_grad():
            self.in_embed.weight.uniform_(-0.5 / self.dim, 0.5 / self.dim)
            if pad is not None:
                self.in_embed.weight[pad].zero_()
            self.out_embed.weight.zero_()
        # Cumulative noise distribution (float64, so rare words keep their share); uniform until set.
        self.register_buffer("noise_cdf", torch.arange(1, self.vocab_size + 1, dtype=torch.float64) / self.vocab_size)

    # -- noise -------------------------------------------------------------------------------
    def set_noise_distribution(self, probs: np.ndarray | torch.Tensor) -> None:
        """Use ``probs`` (V,) (e.g. unigram^0.75) for negatives; it is normalised here."""
        p = torch.as_tensor(np.asarray(probs, dtype=np.float64))
        if p.shape != (self.vocab_size,) or not torch.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
            raise ValueError(f"noise distribution must be {self.vocab_size} non-negative finite weights, "
                             f"got shape {tuple(p.shape)}")
        cdf = torch.cumsum(p / p.sum(), 0)
        cdf[-1] = 1.0
        self.noise_cdf.copy_(cdf)

    def load_vectors(self, syn0: np.ndarray, syn1: np.ndarray, noise: np.ndarray | None = None) -> None:
        """Take trained input (V, D) and output (V, D) vectors (and the noise distribution)."""
        syn0, syn1 = np.asarray(syn0, dtype=np.float32), np.asarray(syn1, dtype=np.float32)
        if syn0.shape != (self.vocab_size, self.dim) or syn1.shape != (self.vocab_size, self.dim):
            raise ValueError(f"vectors must be ({self.vocab_size}, {self.dim}), got {syn0.shape} and {syn1.shape}")
        with torch.no_grad():
            self.in_embed.weight[: self.vocab_size].copy_(torch.from_numpy(syn0))
            if self.padding:
                self.in_embed.weight[self.vocab_size :].zero_()
            self.out_embed.weight.copy_(torch.from_numpy(syn1))
        if noise is not None:
            self.set_noise_distribution(noise)

    @property
    def noise_probs(self) -> torch.Tensor:
        """The noise distribution (V,) in use."""
        return torch.diff(self.noise_cdf, prepend=self.noise_cdf.new_zeros(1))

    def sample_negatives(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` word ids drawn from the noise distribution (inverse CDF of uniform draws)."""
        u = torch.rand(n, dtype=torch.float64, generator=generator, device=self.noise_cdf.device)
        return torch.searchsorted(self.noise_cdf, u, right=True).clamp_(max=self.vocab_size - 1)

    # -- training ----------------------------------------------------------------------------
    def negative_sampling_loss(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the negative-sampling loss for predicting ``target`` from ``hidden``."""
        b = target.shape[0]
        target = target.long()
        pos = (hidden * self.out_embed(target)).sum(-1)
        neg_ids = self.sample_negatives(b * self.negative).view(b, self.negative)
        neg = torch.bmm(self.out_embed(neg_ids), hidden.unsqueeze(-1)).squeeze(-1)
        keep = (neg_ids != target.unsqueeze(1)).to(hidden.dtype)
        loss = -F.logsigmoid(pos) - (F.logsigmoid(-neg) * keep).sum(-1)
        return loss.mean()

    def embeddings(self) -> torch.Tensor:
        """The word vectors (V, D): the input embedding without its padding row (a detached copy)."""
        return self.in_embed.weight[: self.vocab_size].detach().clone()


@register_model("word2vec_sg", config_cls=Word2VecConfig)
class SkipGram(Word2Vec):
    """Skip-gram: the centre word's vector predicts each context word. (B,) ids → (B, D)."""

    arch = "word2vec_sg"

    def forward(self, centre: torch.Tensor) -> torch.Tensor:
        """Centre word ids (B,) → their input embeddings (B, dim)."""
        if centre.dim() != 1:
            raise ValueError(f"word2vec_sg expects centre word ids of shape (batch,), got {tuple(centre.shape)}")
        return self.in_embed(centre.long())


@register_model("word2vec_cbow", config_cls=Word2VecConfig)
class CBOW(Word2Vec):
    """Continuous bag of words: the mean of the context vectors predicts the centre word.
    (B, 2·window) ids padded with V → (B, D)."""

    arch = "word2vec_cbow"
    padding = True

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """Context word ids (B, 2·window), padded with ``vocab_size`` → mean of their embeddings (B, dim)."""
        if context.dim() != 2:
            raise ValueError("word2vec_cbow expects context ids of shape (batch, 2*window), "
                             f"got {tuple(context.shape)}")
        context = context.long()
        mask = (context != self.vocab_size).unsqueeze(-1).to(self.in_embed.weight.dtype)
        summed = self.in_embed(context).sum(1)  # padding rows are zero
        return summed / mask.sum(1).clamp_min(1.0)
