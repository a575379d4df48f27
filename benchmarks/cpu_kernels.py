"""Which operations change their bits with the CPU's kernels (vector width, thread count)?

Every probe computes one operation of the pipelines (the log-mel front end in numpy/scipy, the
layers, losses and optimiser of the models in torch) on fixed seeded inputs and hashes the raw
bytes of its outputs (and gradients). The script re-runs itself in a fresh process per kernel
configuration -- the library switches are read when numpy/torch load, so they cannot change
inside one process -- and prints, per operation, which configurations give other bits than the
first one. Without ``--pinned`` the project's start-up pins are off (``MLSP_FAST_KERNELS=1``),
so the table shows what the pins are for; with ``--pinned`` the pins are on and every row
should read ``same``.

Configurations: ``native`` (whatever this CPU offers), the AVX2 and SSE4 levels (ATen, oneDNN,
MKL, OpenBLAS core type, numpy dispatch and glibc's libm variants capped together), the native
level with one and three intra-op threads, ``sse4-tier`` (the project's SSE4 tier forced with
``MLSP_KERNEL_TIER=sse4``), and other CPUs emulated by ``qemu-x86_64`` (``apt install
qemu-user``), whose CPUID the libraries really see: ``qemu-haswell`` (Intel, AVX2, no AVX-512),
``qemu-epyc`` (AMD Zen 1, AVX2) and ``qemu-nehalem`` (SSE4.2, no AVX; run on the SSE4 tier,
since qemu-user shows the host's ``/proc/cpuinfo``). The first configuration named is the
reference, so ``--pinned --only native qemu-haswell qemu-epyc`` checks the AVX2 tier and
``--pinned --only sse4-tier qemu-nehalem`` the SSE4 tier (every row should read ``same``).

``CPU_KERNELS_SKIP=name,...`` skips the layer probes whose name contains one of the strings
(qemu 7.2 crashes in oneDNN's AVX2 LSTM: ``CPU_KERNELS_SKIP="lstm (bidirectional)"``).

Run: ``python benchmarks/cpu_kernels.py [--pinned] [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

# Kernel caps per simulated CPU level (names as each library spells them).
LEVELS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "OPENBLAS_CORETYPE": "Haswell",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F",
    },
    "sse4": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "OPENBLAS_CORETYPE": "Nehalem",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX2,-FMA,-AVX",
    },
    "threads1": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    "threads3": {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3"},
    "sse4-tier": {"MLSP_KERNEL_TIER": "sse4"},
    "qemu-haswell": {},
    "qemu-epyc": {},
    "qemu-nehalem": {"MLSP_KERNEL_TIER": "sse4"},
}
#: Configurations that run the child under an emulated CPU.
QEMU_CPU = {"qemu-haswell": "Haswell", "qemu-epyc": "EPYC", "qemu-nehalem": "Nehalem"}
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _digest(*arrays) -> str:  # type: ignore[no-untyped-def]
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.detach().contiguous().numpy().tobytes() if hasattr(a, "detach") else a.tobytes())
    return h.hexdigest()[:12]


def numpy_probes() -> dict[str, str]:
    """The feature path: window, FFT, power, mel projection, dB, normalisation statistics."""
    import numpy as np
    from scipy import fft

    from mlsp_pipelines.features.logmel import _hann, mel_basis

    rng = np.random.default_rng(0)
    y = rng.standard_normal((8, 16000)).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, ((0, 0), (512, 512))), 1024, axis=-1)[:, ::512]
    spec = fft.rfft(frames * _hann(1024), axis=-1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    basis = mel_basis(16000, 1024, 64, 0.0, 8000.0)
    mel = (power.reshape(-1, 513) @ basis.T).astype(np.float32)
    x64 = rng.standard_normal((4000, 64))
    return {
        "np: hann window (cos, float64)": _digest(_hann(1024)),
        "np: librosa mel filterbank": _digest(basis),
        "np: rfft (scipy pocketfft)": _digest(spec),
        "np: float32 matmul (OpenBLAS sgemm)": _digest(mel),
        "np: log10 float32": _digest(np.log10(np.maximum(mel, 1e-10))),
        "np: exp/log float64": _digest(np.exp(x64), np.log(np.abs(x64) + 1e-3)),
        "np: mean/std float64": _digest(x64.mean(axis=0), x64.std(axis=0)),
    }


def numba_probes() -> dict[str, str]:
    """word2vec's numba kernel shape: a fastmath float32 dot product (LLVM vectorises and fuses it
    for the target CPU, so the vector width decides the summation order), and the skip-gram epoch."""
    import numpy as np
    from numba import njit

    from mlsp_pipelines.training import _word2vec_kernels as k

    @njit(fastmath=True)
    def dots(a, b):  # type: ignore[no-untyped-def]
        out = np.empty(a.shape[0], dtype=np.float32)
        for i in range(a.shape[0]):
            f = np.float32(0.0)
            for d in range(a.shape[1]):
                f += a[i, d] * b[i, d]
            out[i] = f
        return out

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((256, 100)).astype(np.float32) for _ in range(2))
    vocab, dim = 50, 32
    ids = rng.integers(0, vocab, 2000).astype(np.int32)
    syn0 = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)
    syn1 = np.zeros((vocab, dim), dtype=np.float32)
    accept, alias = np.ones(vocab), np.arange(vocab, dtype=np.int64)
    doc = np.zeros(2000, dtype=np.int64)
    spans = np.full(2000, 2, dtype=np.int64)
    loss = k.sg_epoch(ids, doc, spans, syn0, syn1, accept, alias, 5, 0.025, 0.0001, 1, True)
    return {"numba: fastmath float32 dot": _digest(dots(a, b)),
            "numba: word2vec skip-gram epoch": _digest(syn0, syn1, np.asarray(loss, dtype=np.float64))}


def _bmm_module():  # type: ignore[no-untyped-def]
    from torch import nn

    class Bmm(nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]
            return (x @ x.transpose(1, 2)).softmax(-1) @ x

    return Bmm


def torch_probes(mkldnn: bool) -> dict[str, str]:
    """Forward and backward of each layer type the models use, and one optimiser step."""
    import torch
    from torch import nn

    import numpy as np

    _Bmm = _bmm_module()
    torch.backends.mkldnn.enabled = mkldnn
    rng = np.random.default_rng(0)  # inputs from numpy: torch.randn itself is vectorised per CPU
    tag = "" if mkldnn else " [mkldnn off]"
    out: dict[str, str] = {}

    skip = [s for s in os.environ.get("CPU_KERNELS_SKIP", "").split(",") if s]

    def probe(name: str, module: nn.Module, *shape: int, reduce=lambda y: y.square().sum()) -> None:  # type: ignore[no-untyped-def]
        if any(s in f"{name}{tag}" for s in skip):  # e.g. an operation an emulator cannot run
            out[f"torch: {name} fwd{tag}"] = out[f"torch: {name} bwd{tag}"] = "skipped"
            return
        x = torch.from_numpy(rng.standard_normal(shape).astype("float32")).requires_grad_()
        module = module.train()
        y = module(x)
        y = y[0] if isinstance(y, tuple) else y
        reduce(y).backward()
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        out[f"torch: {name} fwd{tag}"] = _digest(y)
        out[f"torch: {name} bwd{tag}"] = _digest(x.grad, *grads)

    torch.manual_seed(1)
    probe("conv2d 3x3", nn.Conv2d(4, 8, 3, padding=1), 8, 4, 64, 16)
    probe("batchnorm2d", nn.BatchNorm2d(8), 32, 8, 64, 16)
    probe("linear", nn.Linear(64, 32), 256, 64)
    probe("lstm (bidirectional)", nn.LSTM(16, 32, batch_first=True, bidirectional=True), 8, 63, 16)
    probe("gru", nn.GRU(16, 32, batch_first=True), 8, 63, 16)
    probe("layernorm", nn.LayerNorm(64), 8, 63, 64)
    probe("transformer encoder layer", nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True), 8, 63, 64)
    probe("tanh", nn.Tanh(), 64, 1024)
    probe("sigmoid", nn.Sigmoid(), 64, 1024)
    probe("gelu", nn.GELU(), 64, 1024)
    probe("softmax", nn.Softmax(dim=-1), 64, 1024)
    probe("max_pool2d", nn.MaxPool2d(2), 8, 8, 64, 16)
    probe("mean over a large dim", nn.Identity(), 4, 100_000, reduce=lambda y: y.mean())
    # the products of the translation preset: its tied output layer (K = 9,542 in the backward,
    # several row blocks) and attention's batched products
    probe("linear 256 -> 9542 (output layer)", nn.Linear(256, 9542), 300, 256)
    probe("bmm (attention scores)", _Bmm(), 32, 64, 64)  # 8.4M multiply-adds: over the route's floor
    logits = torch.from_numpy(rng.standard_normal((32, 8)).astype("float32")).requires_grad_()
    target = torch.from_numpy(rng.integers(0, 8, 32))
    loss = nn.functional.cross_entropy(logits, target)
    loss.backward()
    out[f"torch: cross_entropy{tag}"] = _digest(loss, logits.grad)
    for fused in (False, True):
        w = nn.Parameter(torch.from_numpy(rng.standard_normal(4096).astype("float32")))
        opt = torch.optim.AdamW([w], lr=1e-3, weight_decay=1e-4, fused=fused)
        w.grad = torch.from_numpy(rng.standard_normal(4096).astype("float32"))
        opt.step()
        out[f"torch: AdamW step{' (fused)' if fused else ''}{tag}"] = _digest(w.detach())
    out[f"torch: sqrt{tag}"] = _digest(torch.from_numpy(np.abs(rng.standard_normal(4096)).astype("float32")).sqrt())
    torch.manual_seed(0)
    out[f"torch: randn{tag}"] = _digest(torch.randn(1000))
    torch.manual_seed(0)
    out[f"torch: dropout mask{tag}"] = _digest(nn.functional.dropout(torch.ones(1000), 0.2))
    torch.manual_seed(0)
    out[f"torch: kaiming init{tag}"] = _digest(nn.Conv2d(16, 32, 3).weight, nn.Linear(64, 64).weight)
    return out


def child(pinned: bool) -> None:
    if not pinned:
        os.environ["MLSP_FAST_KERNELS"] = "1"
    import mlsp_pipelines  # noqa: F401  - the project's start-up (pins unless MLSP_FAST_KERNELS=1)
    from mlsp_pipelines import determinism

    if pinned:
        determinism.configure_torch()  # as every run's start: thread count, the OpenBLAS matrix products

    results = numpy_probes()
    results.update(numba_probes())
    results.update(torch_probes(mkldnn=True))
    results.update(torch_probes(mkldnn=False))
    info = determinism.status()
    results["_status"] = (f"tier {info['tier']}, ATen {info['aten_capability']}, numpy "
                          f"{','.join(info['numpy_dispatch'] or []) or 'baseline'}, OpenBLAS {','.join(info['openblas_cores'] or [])}, "
                          f"matrix products {info.get('gemm')}")
    print(json.dumps(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pinned", action="store_true", help="keep the project's start-up pins on")
    ap.add_argument("--only", nargs="*", default=list(LEVELS), choices=list(LEVELS))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.pinned)
        return
    runs: dict[str, dict[str, str]] = {}
    for name in args.only:
        env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
        env.setdefault("OMP_NUM_THREADS", "2")
        env.update(LEVELS[name])
        cmd = [sys.executable, __file__, "--child"] + (["--pinned"] if args.pinned else [])
        if name in QEMU_CPU:
            cmd = ["qemu-x86_64", "-cpu", QEMU_CPU[name], *cmd]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        runs[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{name}: {runs[name].pop('_status')}", flush=True)
    ref = args.only[0]
    print(f"{'operation':55s} " + " ".join(f"{n:>9s}" for n in args.only[1:]))
    for op in runs[ref]:
        cells = ["same" if runs[n][op] == runs[ref][op] else "DIFFERS" for n in args.only[1:]]
        cells = ["skipped" if "skipped" in (runs[n][op], runs[ref][op]) else c for n, c in zip(args.only[1:], cells)]
        print(f"{op:55s} " + " ".join(f"{c:>9s}" for c in cells))


if __name__ == "__main__":
    main()
