"""What the pinned CPU kernels cost in training time: ``asc`` models, pinned against native kernels.

The pins (:mod:`mlsp_pipelines.determinism`) are read when numpy and torch load, so each mode
runs in its own process; the modes alternate (fast, pinned, fast, pinned, ...) within this one
run so that drift in machine load hits all of them. Each process trains the model of
``conf/base/parameters_asc.yml`` with the shared loop on data of the default feature shape
(train/val clips x 126 frames x 64 mels), one warm-up epoch then ``--epochs`` timed ones.

Modes: ``fast`` (``MLSP_FAST_KERNELS=1``: each library's widest kernels), ``pinned`` (the
default: the widest kernel tier this CPU has -- ``avx2`` on x86-64-v3 CPUs: ATen's AVX2
operators, oneDNN at AVX2, OpenBLAS Haswell, MKL in its compatible mode), ``sse4`` (the tier of
older CPUs, forced with ``MLSP_KERNEL_TIER=sse4``: portable ATen kernels, oneDNN at SSE4.1) and
``pinned-no-onednn`` (the pins with oneDNN switched off) and ``pinned-mkl`` (the pins with torch's
own matrix products, MKL's compatible branch, instead of the project's OpenBLAS route of
:mod:`mlsp_pipelines.gemm`: ``MLSP_GEMM=torch``). All modes run torch on the pinned thread count,
so only the kernels differ.

Workloads (``--arch``): the ``asc`` models by name (an epoch of the shared loop), ``features``
(the log-mel front end), ``lstm`` and ``gru`` (one training step of a recurrent layer: batch 16 x
200 steps, 64 inputs, hidden 64, forward + backward + fused AdamW), ``seq2seq`` (the
pipeline's ``gru_attn`` training path on ``--pairs`` Multi30K-shaped sentence pairs) and
``translation`` / ``translation-gru`` (the ``--env=translation`` preset's ``transformer_s2s`` /
``gru_attn`` on ``--pairs`` Multi30K-shaped pairs, shared 10k vocabulary, 1k-token batches).

Run: ``python benchmarks/determinism_cost.py [--arch cnn crnn] [--epochs 3] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ("fast", "pinned", "pinned-mkl", "sse4", "pinned-no-onednn")
ROOT = Path(__file__).resolve().parents[1]


def features_child(repeats: int) -> None:
    """Log-mel of 64 four-second clips (the default front end, one chunk of 16 at a time)."""
    import numpy as np

    from mlsp_pipelines.features.logmel import logmel_batch
    from mlsp_pipelines.params import FeatureParams

    params = FeatureParams(sr=16000, clip_s=4.0, n_fft=1024, hop_length=512, n_mels=64, fmax=8000.0)
    y = np.random.default_rng(0).standard_normal((64, 64000)).astype(np.float32)
    seconds = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        for i in range(0, 64, 16):
            logmel_batch(y[i : i + 16], params)
        seconds.append(time.perf_counter() - t0)
    from mlsp_pipelines import determinism

    print(json.dumps({"seconds": seconds[1:], "threads": 1, "aten": "-", "mkldnn": "-",
                      "tier": determinism.status()["tier"]}))


def _report(seconds: list[float]) -> None:
    import torch

    from mlsp_pipelines import determinism

    print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads(),
                      "aten": str(torch.backends.cpu.get_cpu_capability()),
                      "mkldnn": bool(torch.backends.mkldnn.enabled), "tier": determinism.status()["tier"]}))


def recurrent_child(arch: str, repeats: int) -> None:
    """One training step of an ``nn.LSTM``/``nn.GRU`` layer, ``repeats`` x 10 steps timed."""
    import torch

    from mlsp_pipelines import determinism

    determinism.configure_torch(determinism.PINNED_THREADS)
    torch.manual_seed(0)
    layer = (torch.nn.LSTM if arch == "lstm" else torch.nn.GRU)(64, 64, batch_first=True)
    head = torch.nn.Linear(64, 8)
    params = [*layer.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, fused=True)
    x, y = torch.randn(16, 200, 64), torch.randint(0, 8, (16,))
    seconds = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        for _ in range(10):
            out, _ = layer(x)
            loss = torch.nn.functional.cross_entropy(head(out[:, -1]), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if r:  # the first round warms up
            seconds.append((time.perf_counter() - t0) / 10)
    _report(seconds)


def seq2seq_child(repeats: int, pairs: int) -> None:
    """The seq2seq pipeline's ``gru_attn`` training path, one pass over ``pairs`` pairs per repeat."""
    import yaml

    from mlsp_pipelines.params import ModelSpec, TrainParams
    from mlsp_pipelines.pipelines.seq2seq import nodes
    from mlsp_pipelines.pipelines.seq2seq.params import Seq2SeqBatchParams
    from seq2seq import multi30k_shaped, vocab_of  # benchmarks/seq2seq.py

    conf = yaml.safe_load((ROOT / "conf/base/parameters_seq2seq.yml").read_text())["seq2seq"]
    base = TrainParams(**{**conf["train"], "epochs": 1, "patience": None, "progress": False, "resume": False,
                          "num_threads": None, "log_every": None})
    spec = ModelSpec(**conf["models"]["gru_attn"])
    full = multi30k_shaped(pairs)
    val = multi30k_shaped(64, seed=1)
    model_input = {"src_vocab": vocab_of(10_000), "tgt_vocab": vocab_of(17_000), "train": full, "val": val}
    seconds = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        nodes.train_seq2seq(model_input, spec, base, Seq2SeqBatchParams(), None, name="gru_attn")
        if r:
            seconds.append(time.perf_counter() - t0)
    _report(seconds)


def translation_child(repeats: int, pairs: int, model: str) -> None:
    """The translation preset's training path (its sizes, batching and schedule), one pass over ``pairs`` pairs."""
    from mlsp_pipelines.pipelines.seq2seq import nodes
    from seq2seq import multi30k_shaped, vocab_of  # benchmarks/seq2seq.py
    from translation import preset  # benchmarks/translation.py

    spec, train, batching, _ = preset(model)
    data = tuple(t[:pairs] for t in multi30k_shaped(pairs, src_vocab=10_000, tgt_vocab=10_000))
    model_input = {"src_vocab": vocab_of(10_000), "tgt_vocab": vocab_of(10_000), "train": data,
                   "val": tuple(t[:0] for t in data)}
    seconds = []
    for r in range(repeats + 1):
        _, _, spent = nodes.train_seq2seq(model_input, spec, train, batching, None, name=model)
        if r:
            seconds.append(spent["train_seconds"])
    _report(seconds)


def child(mode: str, arch: str, epochs: int, n_train: int, n_val: int, pairs: int = 2000) -> None:
    if mode == "pinned-mkl":
        os.environ["MLSP_GEMM"] = "torch"
    if mode == "fast":
        os.environ["MLSP_FAST_KERNELS"] = "1"
        os.environ["OPENBLAS_NUM_THREADS"] = "1"  # as pinned: compare kernels, not thread counts
    elif mode == "sse4":
        os.environ["MLSP_KERNEL_TIER"] = "sse4"
    import mlsp_pipelines  # noqa: F401  - start-up pins (unless fast)

    if arch == "features":
        features_child(epochs)
        return
    if arch in ("lstm", "gru"):
        recurrent_child(arch, epochs)
        return
    if arch == "seq2seq":
        seq2seq_child(epochs, pairs)
        return
    if arch in ("translation", "translation-gru"):
        translation_child(epochs, pairs, "transformer_s2s" if arch == "translation" else "gru_attn")
        return
    import numpy as np
    import torch
    import yaml

    from mlsp_pipelines import determinism
    from mlsp_pipelines.models import build_model
    from mlsp_pipelines.params import TrainParams
    from mlsp_pipelines.training.loop import fit

    conf = yaml.safe_load((ROOT / "conf/base/parameters_asc.yml").read_text())["asc"]
    spec = conf["models"][arch]
    train = {**conf["train"], **spec.get("train", {}), "epochs": epochs + 1, "patience": None, "progress": False,
             "resume": False}
    params = TrainParams(**{k: v for k, v in train.items() if k in TrainParams.model_fields})
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.standard_normal((n_train + n_val, 126, 64)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 8, n_train + n_val))
    torch.manual_seed(0)
    model = build_model(spec["arch"], in_features=64, out_features=8, **spec.get("kwargs", {}))
    determinism.configure_torch(determinism.PINNED_THREADS)  # as the pipeline hook does
    if mode == "pinned-no-onednn":
        torch.backends.mkldnn.enabled = False
    seconds: list[float] = []
    t = [time.perf_counter()]

    def tick(epoch: int, row: dict) -> None:
        now = time.perf_counter()
        if epoch > 1:  # the first epoch warms up allocators and kernels
            seconds.append(now - t[0])
        t[0] = now

    fit(model, (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:]), params=params, callbacks=[tick])
    _report(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="+", default=["cnn", "crnn", "features"],
                    help="asc models, or 'features' (the log-mel front end, numpy/OpenBLAS)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--n-train", type=int, default=192, help="default asc: 8 classes x 40 clips, 3 of 5 folds")
    ap.add_argument("--n-val", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=2000, help="seq2seq: Multi30K-shaped pairs per timed pass")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "ARCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.epochs, args.n_train, args.n_val, args.pairs)
        return
    env = {k: v for k, v in os.environ.items() if k not in ("MLSP_FAST_KERNELS", "MLSP_KERNEL_TIER", "MLSP_GEMM")}
    env["MLSP_PROGRESS"] = "0"
    print(f"load before: {os.getloadavg()[0]:.2f}")
    for arch in args.arch:
        times: dict[str, list[float]] = {m: [] for m in args.modes}
        info: dict[str, dict] = {}
        for _ in range(args.repeats):
            for mode in args.modes:
                out = subprocess.run([sys.executable, __file__, "--child", mode, arch, "--epochs", str(args.epochs),
                                      "--n-train", str(args.n_train), "--n-val", str(args.n_val),
                                      "--pairs", str(args.pairs)],
                                     env=env, capture_output=True, text=True, check=True)
                res = json.loads(out.stdout.strip().splitlines()[-1])
                times[mode].extend(res["seconds"])
                info[mode] = res
        base = statistics.median(times[args.modes[0]])
        what = {"features": "64 clips of 4 s to log-mel, seconds per pass",
                "lstm": "batch 16 x 200 steps, hidden 64, seconds per training step",
                "gru": "batch 16 x 200 steps, hidden 64, seconds per training step",
                "seq2seq": f"gru_attn on {args.pairs} Multi30K-shaped pairs, seconds per pass",
                "translation": f"translation preset's Transformer on {args.pairs} pairs, seconds per pass",
                "translation-gru": f"translation preset's gru_attn on {args.pairs} pairs, seconds per pass"}.get(
            arch, f"{args.n_train} train + {args.n_val} val clips of 126x64, seconds per epoch")
        print(f"\n{arch}: {what}; {args.epochs} timed passes x {args.repeats} alternating repeats")
        print(f"{'mode':<18}{'tier':>7}{'ATen':>9}{'oneDNN':>8}{'threads':>9}{'median s':>16}{'ratio':>8}")
        for mode in args.modes:
            med = statistics.median(times[mode])
            print(f"{mode:<18}{info[mode]['tier']:>7}{info[mode]['aten']:>9}{str(info[mode]['mkldnn']):>8}"
                  f"{info[mode]['threads']:>9}{med:>16.4f}{med / base:>8.2f}", flush=True)
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
