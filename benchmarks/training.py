"""Overhead of the shared training loop against a bare hand-written PyTorch loop.

Same model, same data, same batch size, same optimiser, one process: per-epoch wall time of
``training.loop.fit`` (with its checkpoint after every epoch, validation pass, early-stopping
bookkeeping and history) against the minimal ``for xb, yb in batches: step()`` loop plus the
same validation pass. Blocks of epochs alternate (bare, shared, bare, ...) so drift in machine
load hits both; the ratio of the medians of per-epoch time is reported from this one run.
Run: ``python benchmarks/training.py [--arch cnn] [--epochs 6]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from mlsp_pipelines.datasets.files import CheckpointStore
from mlsp_pipelines.models import build_model
from mlsp_pipelines.params import TrainParams
from mlsp_pipelines.training.loop import fit


def bare_epoch(model: nn.Module, opt: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor,
               Xv: torch.Tensor, yv: torch.Tensor, bs: int, epoch: int) -> None:
    """The textbook loop: shuffle, forward, loss, backward, clip, step; then a validation pass."""
    model.train()
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(epoch))
    for i in range(0, len(X), bs):
        idx = perm[i : i + bs]
        loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    model.eval()
    with torch.no_grad():
        for i in range(0, len(Xv), bs):
            nn.functional.cross_entropy(model(Xv[i : i + bs]), yv[i : i + bs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="cnn")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=512, help="training clips")
    ap.add_argument("--frames", type=int, default=126)
    ap.add_argument("--mels", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    os.environ["MLSP_PROGRESS"] = "0"
    g = torch.Generator().manual_seed(0)
    X = torch.randn(args.n, args.frames, args.mels, generator=g)
    y = torch.randint(0, 8, (args.n,), generator=g)
    Xv, yv = X[: args.n // 4].clone(), y[: args.n // 4].clone()

    torch.manual_seed(0)
    bare_model = build_model(args.arch, in_features=args.mels, out_features=8)
    opt = torch.optim.AdamW(bare_model.parameters(), lr=1e-3)
    torch.manual_seed(0)
    loop_model = build_model(args.arch, in_features=args.mels, out_features=8)

    bare_times, loop_times = [], []
    bare_epoch(bare_model, opt, X, y, Xv, yv, args.batch_size, 0)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        store = CheckpointStore(Path(tmp) / "bench.ckpt")
        for rep in range(args.repeats):
            t0 = time.perf_counter()
            for epoch in range(1, args.epochs + 1):
                bare_epoch(bare_model, opt, X, y, Xv, yv, args.batch_size, epoch)
            bare_times.append((time.perf_counter() - t0) / args.epochs)
            params = TrainParams(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, patience=None,
                                 progress=False, seed=rep)
            t0 = time.perf_counter()
            fit(loop_model, (X, y), (Xv, yv), params=params, checkpoint=store, config_hash=f"bench{rep}")
            loop_times.append((time.perf_counter() - t0) / args.epochs)
    b, s = statistics.median(bare_times), statistics.median(loop_times)
    print(f"architecture {args.arch}, {args.n} clips of {args.frames}x{args.mels}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'loop':<34}{'median s/epoch':>16}")
    print(f"{'bare PyTorch loop':<34}{b:>16.3f}")
    print(f"{'shared loop (fit + checkpoint)':<34}{s:>16.3f}")
    print(f"overhead: {100 * (s / b - 1):+.1f}%  (ratio {s / b:.3f})")


if __name__ == "__main__":
    main()
