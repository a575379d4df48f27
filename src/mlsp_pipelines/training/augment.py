"""Batch augmentation for spectrogram classifiers: SpecAugment masks, random time roll,
random gain, mixup.

Small real audio sets (a few hundred clips per class) are where models overfit first; these
four are the standard remedies of the audio-tagging recipes (SpecAugment, Park et al. 2019;
mixup, Zhang et al. 2018). Everything is drawn for the whole batch at once (no per-sample
Python loop) from a dedicated seeded ``torch.Generator`` whose state goes into the checkpoint,
so a resumed run draws the same masks as an uninterrupted one. Random numbers are drawn on
the CPU and the arithmetic happens on the batch's device, so CUDA runs draw identical masks.
Augmentation is applied only to training batches; evaluation never sees it.

Inputs are normalised log-mel batches ``x: (B, T, F)`` (0 is the per-band training mean, so a
masked cell is set to 0) and integer labels ``y: (B,)``. The output target is a soft label
distribution ``(B, C)`` when mixup is on, else the integer labels unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import betaincinv
from torch import Tensor

from mlsp_pipelines.params import AugmentParams


class BatchAugmenter:
    """Callable ``(x, y) -> (x', target)`` holding its own seeded generator.

    ``gain_scale`` (F,) converts a gain in dB into the normalised feature space (1 / per-band
    std of the training data); without it a gain of ``g`` dB shifts every band by ``g / 10``.
    """

    def __init__(self, params: AugmentParams, *, seed: int, n_classes: int | None = None,
                 gain_scale: np.ndarray | Tensor | None = None) -> None:
        self.params = params
        self.n_classes = n_classes
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed))
        self.gain_scale = None if gain_scale is None else torch.as_tensor(np.asarray(gain_scale), dtype=torch.float32)

    @property
    def active(self) -> bool:
        return self.params.enabled

    def state(self) -> Tensor:
        return self.generator.get_state()

    def load_state(self, state: Tensor) -> None:
        self.generator.set_state(state)

    def _rand(self, *shape: int) -> Tensor:
        return torch.rand(*shape, generator=self.generator)

    def _band_mask(self, batch: int, length: int, n_masks: int, max_frac: float) -> Tensor:
        """(B, length) boolean: ``n_masks`` bands per row, each of width U{0..max_frac*length}."""
        max_w = int(round(max_frac * length))
        mask = torch.zeros(batch, length, dtype=torch.bool)
        if n_masks == 0 or max_w == 0:
            return mask
        pos = torch.arange(length)
        width = (self._rand(n_masks, batch) * (max_w + 1)).long().clamp_(max=max_w)  # (M, B)
        start = (self._rand(n_masks, batch) * (length - width + 1)).long()  # (M, B)
        inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])  # (M, B, L)
        return inside.any(0)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        p = self.params
        if not p.enabled or x.dim() != 3:
            return x, y
        batch, steps, bands = x.shape
        dev = x.device
        if p.gain_db > 0:
            g = (self._rand(batch, 1, 1) * 2 - 1) * p.gain_db  # dB
            scale = self.gain_scale if self.gain_scale is not None else torch.full((bands,), 0.1)
            x = x + (g * scale.view(1, 1, -1)).to(dev, x.dtype)
        if p.time_shift > 0:
            max_s = int(round(p.time_shift * steps))
            if max_s:
                shift = (self._rand(batch) * (2 * max_s + 1)).long() - max_s
                idx = (torch.arange(steps)[None, :] - shift[:, None]) % steps  # circular roll per row
                x = x.gather(1, idx.to(dev)[..., None].expand(batch, steps, bands))
        if p.freq_masks or p.time_masks:
            fm = self._band_mask(batch, bands, p.freq_masks, p.freq_mask_frac)  # (B, F)
            tm = self._band_mask(batch, steps, p.time_masks, p.time_mask_frac)  # (B, T)
            cells = fm[:, None, :] | tm[:, :, None]
            x = x.masked_fill(cells.to(dev), 0.0)
        if p.mixup_alpha > 0:
            if self.n_classes is None:
                raise ValueError("mixup needs the number of classes")
            u = self._rand(batch).double().numpy()
            lam_np = betaincinv(p.mixup_alpha, p.mixup_alpha, u)
            lam = torch.from_numpy(np.maximum(lam_np, 1 - lam_np)).to(dev, x.dtype)  # the own clip dominates
            perm = torch.randperm(batch, generator=self.generator).to(dev)
            x = lam.view(-1, 1, 1) * x + (1 - lam.view(-1, 1, 1)) * x[perm]
            onehot = torch.nn.functional.one_hot(y, self.n_classes).to(x.dtype)
            y = lam.view(-1, 1) * onehot + (1 - lam.view(-1, 1)) * onehot[perm]
        return x, y
