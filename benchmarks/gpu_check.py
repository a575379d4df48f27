"""CUDA path of the shared training loop: every audio architecture trains on the GPU with the
same code, reaches the CPU run's losses (float tolerance), and how much faster an epoch is.
Run on a machine with a GPU: ``python benchmarks/gpu_check.py`` (needs torch + pydantic only)."""

from __future__ import annotations

import argparse
import os
import time

import torch

from mlsp_pipelines.models import build_model
from mlsp_pipelines.params import TrainParams
from mlsp_pipelines.training.loop import fit, predict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["cnn", "crnn", "attn_lstm", "transformer", "mlp"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n", type=int, default=512)
    args = ap.parse_args()
    os.environ["MLSP_PROGRESS"] = "0"
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    g = torch.Generator().manual_seed(0)
    X = torch.randn(args.n, 126, 64, generator=g)
    y = torch.randint(0, 8, (args.n,), generator=g)
    Xv, yv = X[: args.n // 4].clone(), y[: args.n // 4].clone()
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__}")
    print(f"{'arch':<12}{'cpu s/epoch':>12}{'cuda s/epoch':>13}{'speed-up':>9}{'max |Δ val_loss|':>18}{'pred agree':>11}")
    for arch in args.archs:
        res = {}
        for device in ("cpu", "cuda"):
            torch.manual_seed(0)
            model = build_model(arch, in_features=64, out_features=8)
            params = TrainParams(epochs=args.epochs, batch_size=32, patience=None, progress=False, device=device)
            t0 = time.perf_counter()
            out = fit(model, (X, y), (Xv, yv), params=params, desc=f"{arch}@{device}")
            if device == "cuda":
                torch.cuda.synchronize()
            res[device] = (out, (time.perf_counter() - t0) / args.epochs,
                           predict(model, (Xv,), device=device).argmax(-1))
        dl = max(abs(a - b) for a, b in zip(res["cpu"][0].history["val_loss"], res["cuda"][0].history["val_loss"]))
        agree = (res["cpu"][2] == res["cuda"][2]).float().mean().item()
        print(f"{arch:<12}{res['cpu'][1]:>12.3f}{res['cuda'][1]:>13.3f}{res['cpu'][1] / res['cuda'][1]:>8.1f}x"
              f"{dl:>18.2e}{agree:>11.2%}")


if __name__ == "__main__":
    main()
