"""Same bits on every x86-64 CPU: the project's start-up pins the CPU kernels of every numeric library.

Each numeric library picks its kernels from the CPU it finds when it loads: ATen (PyTorch's
operators) an AVX-512, AVX2 or plain build of each operator, oneDNN (convolutions, LSTM/GRU)
and MKL (matrix products, vectorised exp/tanh) their widest instruction set, numpy's OpenBLAS a
core type and numpy its SIMD loops. Wider vectors sum in another order and fuse multiply-adds,
so the same seed trains other weights on another machine. Measured per operation by
``benchmarks/cpu_kernels.py``: convolutions, linear layers, LSTM/GRU, softmax, tanh, GELU,
cross-entropy, ``torch.randn`` and even the uniform weight initialisation differ between the
AVX-512, AVX2 and SSE4 levels; in the features the mel projection (OpenBLAS sgemm) and numpy's
float32 ``log10``.

:func:`pin_cpu_kernels` runs from the package's ``__init__``, i.e. before this project imports
numpy or torch (``kedro run``, ``python -m mlsp_pipelines``, DVC stages, the tests, a notebook
that imports ``mlsp_pipelines`` first). It caps every library at the level that every CPU able
to run this stack has -- numpy 2.4 itself requires x86-64-v2 (SSE4.2) -- through the switches
the libraries read at load time (they cannot be changed later, hence environment variables set
this early). :func:`configure_torch` adds what torch takes at run time: a fixed intra-op thread
count, because a parallel reduction's order follows the thread count (LayerNorm's and the
convolutions' weight gradients, OpenBLAS's sgemm differ between 1 and 2 threads).

Two operations are not covered by any switch and are avoided instead: MKL's vector ``sqrt``
(``torch.sqrt`` on CPU; its approximation differs between processors even in MKL's
``COMPATIBLE`` mode), which the unfused Adam/AdamW step uses -- the training loop builds the
fused optimisers, whose kernel takes the exact ``sqrt`` -- and glibc's float64 ``exp``/``log``/
``sin``/``cos``, whose FMA variants differ in the last bit from the others: the pipelines only
use them where the result is rounded to float32 or 16-bit PCM (mel filterbank, window, scene
synthesis), and the CI test checks the outputs with glibc's FMA variants masked.

Off switch: ``MLSP_FAST_KERNELS=1`` in the environment leaves every library on its fastest
kernels (results then agree to ~1e-6, not bit for bit, across CPUs). :func:`status` says what
is in effect, so a run records it and a notebook can check it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

logger = logging.getLogger(__name__)

#: Set to 1 to let each library use the widest kernels of this CPU (faster, not bit-identical
#: across CPUs).
FAST_KERNELS_ENV = "MLSP_FAST_KERNELS"

#: Library switches read when the library loads, and the level every x86-64-v2 CPU has.
PINNED_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "default",  # ATen: the portable build of every operator (no AVX2/AVX-512 variant)
    "ONEDNN_MAX_CPU_ISA": "SSE41",  # oneDNN (convolutions, LSTM/GRU): its SSE4.1 code paths
    "MKL_CBWR": "COMPATIBLE",  # MKL: conditional numerical reproducibility, same results on every CPU
    "OPENBLAS_CORETYPE": "Nehalem",  # numpy/scipy OpenBLAS: the SSE4.2-era kernels
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",  # numpy: baseline (x86-64-v2) loops
    "OPENBLAS_NUM_THREADS": "1",  # numpy's sgemm splits by thread: one thread gives one order everywhere
}
#: numpy refuses to start with both variables set; ours (disable) wins while pinned.
_CONFLICTING_ENV = ("NPY_ENABLE_CPU_FEATURES", "MKL_ENABLE_INSTRUCTIONS")

#: Intra-op threads of torch while pinned. Reductions split their work by thread, so the
#: count is part of the configuration: the same number on every machine gives the same bits
#: (oversubscribed on a 1-core machine, under-used on a big one). ``train.num_threads``
#: overrides it per run.
PINNED_THREADS = 2
#: Overrides :data:`PINNED_THREADS` for the process (Dask workers get it from ``dask.yml``
#: ``torch_threads``); results agree with any run that uses the same count.
TORCH_THREADS_ENV = "MLSP_TORCH_THREADS"

_TORCH_LIBS_READ_AT_IMPORT = ("torch", "numpy")


def fast_kernels() -> bool:
    """True when the user opted out of pinned kernels (``MLSP_FAST_KERNELS=1``)."""
    return os.environ.get(FAST_KERNELS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def pin_cpu_kernels() -> dict[str, str]:
    """Set the pinned library switches in ``os.environ`` (unless opted out); returns what it set.

    Must run before numpy and torch are imported; libraries already loaded keep their kernels
    (:func:`status` and :func:`configure_torch` report that).
    """
    if fast_kernels():
        return {}
    changed: dict[str, str] = {}
    for key in _CONFLICTING_ENV:
        if key in os.environ:
            changed[key] = "<unset>"
            os.environ.pop(key)
    for key, value in PINNED_ENV.items():
        if os.environ.get(key) != value:
            changed[key] = value
            os.environ[key] = value
    return changed


def _aten_capability() -> str | None:
    if "torch" not in sys.modules:
        return None
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def _numpy_dispatch() -> list[str] | None:
    if "numpy" not in sys.modules:
        return None
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


def _openblas_cores() -> list[str]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - comes with scikit-learn
        return []
    return sorted({str(i.get("architecture")) for i in threadpool_info() if i.get("internal_api") == "openblas"})


def status() -> dict[str, Any]:
    """What is in effect in this process: the pins asked for and what the loaded libraries use."""
    out: dict[str, Any] = {
        "pinned": not fast_kernels(),
        "env": {k: os.environ.get(k) for k in PINNED_ENV},
        "aten_capability": _aten_capability(),
        "numpy_dispatch": _numpy_dispatch(),
        "openblas_cores": _openblas_cores() if "numpy" in sys.modules else None,
    }
    if "torch" in sys.modules:
        import torch

        out["mkldnn_enabled"] = bool(torch.backends.mkldnn.enabled)
        out["torch_threads"] = torch.get_num_threads()
    return out


def problems(info: dict[str, Any] | None = None) -> list[str]:
    """Why this process does not run the pinned kernels (empty when it does or is opted out)."""
    info = info or status()
    if not info["pinned"]:
        return []
    found = []
    if info["aten_capability"] not in (None, "DEFAULT"):
        found.append(f"torch runs its {info['aten_capability']} kernels")
    if info["numpy_dispatch"]:
        found.append(f"numpy dispatches to {', '.join(info['numpy_dispatch'])}")
    cores = info.get("openblas_cores") or []
    if any(c != PINNED_ENV["OPENBLAS_CORETYPE"] for c in cores):
        found.append(f"OpenBLAS runs its {', '.join(cores)} kernels")
    return found


def env_threads() -> int | None:
    """``MLSP_TORCH_THREADS`` as a positive int (None when unset); a bad value is an error naming it."""
    raw = os.environ.get(TORCH_THREADS_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{TORCH_THREADS_ENV}={raw!r}: expected a positive number of threads")
    return value


def default_threads() -> int:
    """torch's intra-op threads when a run does not set ``train.num_threads``."""
    return env_threads() or PINNED_THREADS


def configure_torch(num_threads: int | None = None) -> None:
    """Run-time torch settings of the pinned mode: ``num_threads`` (default :data:`PINNED_THREADS`, or ``MLSP_TORCH_THREADS``)
    intra-op threads, NNPACK off; warn when torch or numpy loaded before the pins.

    Called by the project hook before every pipeline run and by the training loop's seeding,
    so a notebook calling ``fit`` directly gets it too. A no-op with ``MLSP_FAST_KERNELS=1``
    (apart from an explicit ``num_threads``).
    """
    import torch

    if fast_kernels():
        if num_threads or env_threads():
            torch.set_num_threads(num_threads or env_threads())
        return
    torch.backends.nnpack.set_flags(False)  # NNPACK picks its kernels from the CPU itself (AVX2 or none)
    if num_threads or int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # torchrun sets one thread per process
        torch.set_num_threads(num_threads or default_threads())
    found = problems()
    if found and not getattr(configure_torch, "_warned", False):
        configure_torch._warned = True  # type: ignore[attr-defined]
        logger.warning(
            "CPU kernels are not pinned in this process (%s): numpy or torch was imported before "
            "mlsp_pipelines, so results may differ in the last bits from other machines. Import "
            "mlsp_pipelines first (or start the process with %s) -- see README, 'Reproducible on any "
            "machine'.",
            "; ".join(found),
            " ".join(f"{k}={v!r}" for k, v in PINNED_ENV.items()),
        )


def make_hook() -> Any:
    """A Kedro hook applying :func:`configure_torch` before each pipeline run and logging the
    kernel level (built on demand: importing this module must not import Kedro)."""
    from kedro.framework.hooks import hook_impl

    class DeterminismHook:
        @hook_impl
        def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
            configure_torch()
            info = status()
            logger.info(
                "CPU kernels: %s (ATen %s, OpenBLAS %s, torch threads %s)",
                "pinned for identical results on any x86-64 CPU" if info["pinned"]
                else f"fastest for this CPU ({FAST_KERNELS_ENV}=1)",
                info["aten_capability"], ",".join(info.get("openblas_cores") or []) or "-",
                info.get("torch_threads"),
            )

    return DeterminismHook()
