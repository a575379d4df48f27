"""torch's float32 matrix products on CPU through numpy's OpenBLAS, the GEMM of the pinned kernels.

Why hand-written: pinned, MKL runs in its ``COMPATIBLE`` branch, the only one that computes the
same bits on Intel and AMD CPUs (:mod:`mlsp_pipelines.determinism`), and that branch is old
SSE code: 55-60 GFLOPS on the 2 cores of the development machine. numpy's OpenBLAS is pinned to
its Haswell kernels (AVX2 + FMA, one code path on every x86-64-v3 CPU; the ``sse4`` tier pins
its Nehalem kernels) and runs about 100 GFLOPS *per core*. So in pinned mode :func:`install`
makes OpenBLAS the CPU kernel of ``aten::mm``, ``addmm``, ``bmm`` and ``baddbmm``
(``torch.library``): the products of ``nn.Linear``, attention, the GRU/LSTM cells and every
backward pass go through the dispatcher to it, and autograd is untouched (its derivatives are
themselves ``mm``/``bmm`` calls). Everything else -- other dtypes, empty or small products (:data:`MIN_MACS`) --
goes to torch's own kernel through the op's ``out=`` overload, which stays registered.

Threads: OpenBLAS runs one thread per call (``OPENBLAS_NUM_THREADS=1``, pinned), so a product is
split by rows over torch's intra-op thread count. Its Haswell sgemm tiles rows by 24 (and the
Nehalem one by 8); blocks that start at multiples of :data:`ROW_ALIGN` give the bits of one
undivided call, so **the results do not depend on the thread count** (tests/training/test_gemm.py
checks 1, 2, 3 and 5 threads against one call) -- unlike MKL's, which split reductions by thread.

Measured (``benchmarks/determinism_cost.py --arch seq2seq translation``, docs/determinism.md):
an epoch of the translation preset's Transformer took 0.49x the time it took on MKL's compatible
branch, the seq2seq ``gru_attn`` pass 1.00x native kernels' time against 1.66x.
``MLSP_GEMM=torch`` keeps torch's own kernels (to reproduce outputs made before); with
``MLSP_FAST_KERNELS=1`` torch keeps its fastest MKL anyway.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

#: ``torch`` keeps torch's own CPU kernels; ``openblas`` (the default while pinned) routes them here.
GEMM_ENV = "MLSP_GEMM"
CHOICES = ("openblas", "torch")
#: Row blocks start at multiples of this: a multiple of the row tile of OpenBLAS's pinned sgemm
#: kernels (Haswell 24, Nehalem 8), so every row lands in the same tile as in one undivided call.
ROW_ALIGN = 48
#: Products below this many multiply-adds stay on one thread: measured on 2 cores, a split
#: 128 x 128 x 512 product took 272 us against 176 on one thread, 256 x 256 x 1024 883 against 1403.
MIN_SPLIT_MACS = 1 << 24
#: Products below this many multiply-adds go to torch's own kernel: the Python call costs ~20 us,
#: so a 16 x 64 x 192 linear layer took 19 us routed against 10 on MKL; break-even near 3-4M.
MIN_MACS = 1 << 22

_lock = threading.Lock()
_lib: Any = None
_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] = (0, 0)  # (pid, workers): a forked child or a new thread count rebuilds it


def choice() -> str:
    """``MLSP_GEMM`` (default ``openblas``); a bad value is an error naming the variable."""
    raw = os.environ.get(GEMM_ENV, "").strip().lower() or "openblas"
    if raw not in CHOICES:
        raise ValueError(f"{GEMM_ENV}={raw!r}: expected one of {', '.join(CHOICES)}")
    return raw


def installed() -> bool:
    """True when this process routes torch's float32 CPU products to OpenBLAS."""
    return _lib is not None


def install() -> bool:
    """Register the OpenBLAS kernels (once per process; ``MLSP_GEMM=torch`` declines). Returns :func:`installed`."""
    global _lib
    if _lib is not None or choice() != "openblas":
        return installed()
    import torch

    with _lock:
        if _lib is None:
            lib = torch.library.Library("aten", "IMPL")
            with warnings.catch_warnings():  # "overriding a previously registered kernel": that is the point
                warnings.simplefilter("ignore")
                for name in ("mm", "bmm"):
                    lib.impl(name, _product_kernel(name), "CPU")
                for name in ("addmm", "baddbmm"):
                    lib.impl(name, _scaled_product_kernel(name), "CPU")
            _lib = lib
            logger.debug("float32 CPU matrix products run on OpenBLAS (%s=torch to keep torch's)", GEMM_ENV)
    return True


def uninstall() -> None:
    """Give the products back to torch's own kernels (tests; a process that wants both)."""
    global _lib
    with _lock:
        if _lib is not None:
            _lib._destroy()
            _lib = None


# -- the kernels ---------------------------------------------------------------------------------


def _workers() -> int:
    import torch

    return max(1, torch.get_num_threads())


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_key
    key = (os.getpid(), workers)
    if _pool is None or _pool_key != key:
        with _lock:
            if _pool is None or _pool_key != key:
                if _pool is not None and _pool_key[0] == key[0]:  # a forked child's copy has no threads to stop
                    _pool.shutdown(wait=False)
                _pool = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="mlsp-gemm")
                _pool_key = key
    return _pool


def row_blocks(m: int, workers: int) -> list[tuple[int, int]]:
    """Split ``m`` rows into at most ``workers`` blocks whose starts are multiples of :data:`ROW_ALIGN`."""
    units = -(-m // ROW_ALIGN)
    parts = max(1, min(workers, units))
    bounds = [min(m, (units * i // parts) * ROW_ALIGN) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _matmul_rows(a: Any, b: Any, out: Any, macs: int) -> None:
    """``out[:] = a @ b`` (numpy float32, 2-D, or 3-D stacks split by matrix), over the thread pool."""
    import numpy as np

    stacked = a.ndim == 3
    m = a.shape[0]
    workers = _workers()
    if workers == 1 or macs < MIN_SPLIT_MACS or m < (2 if stacked else 2 * ROW_ALIGN):
        np.matmul(a, b, out=out)
        return
    if stacked:  # each matrix of the stack is one call either way: any split gives the same bits
        blocks = [(m * i // min(workers, m), m * (i + 1) // min(workers, m)) for i in range(min(workers, m))]
        jobs = [(a[s:e], b[s:e], out[s:e]) for s, e in blocks]
    else:
        jobs = [(a[s:e], b, out[s:e]) for s, e in row_blocks(m, workers)]
    pool = _executor(workers)
    futures: list[Future] = [pool.submit(np.matmul, x, y, out=o) for x, y, o in jobs[1:]]
    np.matmul(*jobs[0][:2], out=jobs[0][2])
    for f in futures:
        f.result()


def _ours(*tensors: Any) -> bool:
    import torch

    for t in tensors:
        if t.dtype != torch.float32 or t.layout != torch.strided or t.device.type != "cpu" or t.is_neg():
            return False
    return True


def _macs(a: Any, b: Any) -> int:
    """Multiply-adds of ``a @ b``; 0 when the shapes do not chain (torch's kernel then raises its own error)."""
    if a.dim() != b.dim() or a.shape[-1] != b.shape[-2] or (a.dim() == 3 and a.shape[0] != b.shape[0]):
        return 0
    n = 1
    for s in a.shape:
        n *= int(s)
    return n * int(b.shape[-1])


def _broadcasts(inp: Any, shape: tuple[int, ...]) -> bool:
    """True when ``inp`` broadcasts to ``shape`` (else torch's kernel raises its own error)."""
    if inp.dim() > len(shape):
        return False
    return all(s in (1, t) for s, t in zip(reversed(inp.shape), reversed(shape)))


def _product(a: Any, b: Any, macs: int) -> Any:
    import torch

    out = torch.empty((*a.shape[:-1], b.shape[-1]), dtype=torch.float32)
    _matmul_rows(a.detach().numpy(), b.detach().numpy(), out.numpy(), macs)
    return out


def _scaled_add(out: Any, inp: Any, beta: Any, alpha: Any) -> Any:
    """``beta * inp + alpha * out`` in place of ``out``: elementwise, one rounding per operation, so the
    same bits on any CPU and thread count. numpy on the calling thread rather than torch's kernels:
    an OpenMP region here leaves torch's threads spinning on the core the next product's second
    block needs (measured: a 256 x 256 x 1024 ``addmm`` split over 2 threads took 1.43 ms against
    0.84 ms for the same ``mm``)."""
    import numpy as np

    o = out.numpy()
    if alpha != 1:
        np.multiply(o, np.float32(alpha), out=o)
    if beta != 0:
        x = inp.detach().numpy()
        np.add(o, x if beta == 1 else x * np.float32(beta), out=o)
    return out


def _product_kernel(name: str) -> Any:
    """The kernel of ``mm`` or ``bmm``: OpenBLAS for float32 products of :data:`MIN_MACS` or more, else torch's ``out=`` overload."""
    import torch

    fallback = getattr(torch.ops.aten, name).out

    def kernel(a: Any, b: Any) -> Any:
        macs = _macs(a, b)
        if not _ours(a, b) or macs < MIN_MACS:
            return fallback(a, b, out=a.new_empty((*a.shape[:-1], b.shape[-1])))
        return _product(a, b, macs)

    return kernel


def _scaled_product_kernel(name: str) -> Any:
    """The kernel of ``addmm`` or ``baddbmm`` (``beta * inp + alpha * a @ b``)."""
    import torch

    fallback = getattr(torch.ops.aten, name).out

    def kernel(inp: Any, a: Any, b: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
        macs, shape = _macs(a, b), (*a.shape[:-1], b.shape[-1])
        if not _ours(inp, a, b) or macs < MIN_MACS or not _broadcasts(inp, shape):
            return fallback(inp, a, b, beta=beta, alpha=alpha, out=a.new_empty(shape))
        return _scaled_add(_product(a, b, macs), inp, beta, alpha)

    return kernel
