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
that imports ``mlsp_pipelines`` first). It caps every library at the widest *tier* of kernels
that gives the same bits on every CPU of the tier (the switches are read when each library loads,
so they cannot be changed later, hence environment variables set this early):

* ``avx2`` -- x86-64-v3 CPUs (Intel since Haswell, AMD since Zen; AVX-512 machines are capped to
  it), nearly every machine in use, chosen automatically from the CPU flags. The committed
  ``dvc.lock`` is made on this tier. It costs 1.0-1.5x native kernels per model (1.0x on the
  GEMM-heavy seq2seq and translation models, whose float32 matrix products :mod:`mlsp_pipelines.gemm`
  takes from MKL's slow compatible branch to OpenBLAS; 1.7-1.9x without it) where the SSE4 tier
  costs 1.6-2.6x (``benchmarks/determinism_cost.py``, docs/determinism.md).
* ``sse4`` -- x86-64-v2 CPUs without AVX2 (numpy 2.4 itself requires SSE4.2); their outputs
  agree with each other, not with the ``avx2`` tier's.

``MLSP_KERNEL_TIER=sse4`` forces the older tier (to reproduce outputs made on it). Checked per
operation with ``benchmarks/cpu_kernels.py --pinned`` on CPUs emulated by qemu (Intel Haswell and
AMD EPYC against a native AVX-512 machine; Nehalem against the forced SSE4 tier). MKL stays in
its ``COMPATIBLE`` branch on both tiers: its AVX2 branch is reproducible among Intel CPUs only.
:func:`configure_torch` adds what torch takes at run time: a fixed intra-op thread count,
because a parallel reduction's order follows the thread count (LayerNorm's and the convolutions'
weight gradients, OpenBLAS's sgemm differ between 1 and 2 threads).

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

import importlib.abc
import importlib.util
import logging
import os
import sys
from typing import Any

logger = logging.getLogger(__name__)

#: Set to 1 to let each library use the widest kernels of this CPU (faster, not bit-identical
#: across CPUs).
FAST_KERNELS_ENV = "MLSP_FAST_KERNELS"

#: Forces a kernel tier (``avx2`` or ``sse4``); unset or ``auto`` picks the widest tier this CPU has.
TIER_ENV = "MLSP_KERNEL_TIER"

#: Kernel tiers, widest first: the library switches (read when each library loads) that make every
#: CPU of the tier compute the same bits. ``avx2`` is x86-64-v3 (Intel since Haswell, AMD since
#: Zen): ATen's AVX2 operators, oneDNN's AVX2 code paths, OpenBLAS's Haswell kernels and numpy's
#: X86_V3 loops; AVX-512 machines are capped to it. ``sse4`` is x86-64-v2, what numpy 2.4 itself
#: requires, for older CPUs. MKL stays in its ``COMPATIBLE`` branch on both: its AVX2 branch
#: (``MKL_CBWR=AVX2``) is only reproducible among Intel CPUs -- on AMD, MKL runs its ``AUTO``
#: branch instead (oneMKL developer guide, "Getting Started with Conditional Numerical
#: Reproducibility"), so one committed ``dvc.lock`` could not hold for both vendors.
TIERS: dict[str, dict[str, str]] = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",  # ATen: the AVX2 build of every operator (AVX-512 capped)
        "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (convolutions, LSTM): its AVX2 code paths
        "MKL_CBWR": "COMPATIBLE",  # MKL: the branch that gives the same results on every vendor's CPU
        "OPENBLAS_CORETYPE": "Haswell",  # numpy/scipy OpenBLAS: the AVX2+FMA kernels
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy: X86_V3 loops, no AVX-512
        "OPENBLAS_NUM_THREADS": "1",  # numpy's sgemm splits by thread: one thread gives one order everywhere
        # numba (word2vec's fastmath kernels) compiles for the host CPU, whose vector width sets the
        # summation order (Zen 4 and Intel AVX-512 differ even from each other): one target for the tier
        "NUMBA_CPU_NAME": "haswell",
        "NUMBA_CPU_FEATURES": "+64bit,+cmov,+cx8,+cx16,+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt,+avx,+avx2,"
                              "+fma,+bmi,+bmi2,+f16c,+lzcnt,+movbe,+xsave",
    },
    "sse4": {
        "ATEN_CPU_CAPABILITY": "default",  # ATen: the portable build of every operator
        "ONEDNN_MAX_CPU_ISA": "SSE41",  # oneDNN: its SSE4.1 code paths
        "MKL_CBWR": "COMPATIBLE",
        "OPENBLAS_CORETYPE": "Nehalem",  # numpy/scipy OpenBLAS: the SSE4.2-era kernels
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",  # numpy: baseline (x86-64-v2) loops
        "OPENBLAS_NUM_THREADS": "1",
        "NUMBA_CPU_NAME": "nehalem",
        "NUMBA_CPU_FEATURES": "+64bit,+cmov,+cx8,+cx16,+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt",
    },
}
#: What ATen reports (``torch.backends.cpu.get_cpu_capability()``) on each tier.
TIER_ATEN = {"avx2": "AVX2", "sse4": "DEFAULT"}
#: The CPU flags (``/proc/cpuinfo``) of x86-64-v3; a CPU lacking one gets the ``sse4`` tier.
X86_64_V3_FLAGS = frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "abm", "xsave"})


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def detect_tier(flags: frozenset[str] | None = None) -> str:
    """The widest tier this CPU runs: ``avx2`` on x86-64-v3 CPUs, ``sse4`` otherwise."""
    flags = cpu_flags() if flags is None else flags
    return "avx2" if X86_64_V3_FLAGS <= flags else "sse4"


def resolve_tier(requested: str | None = None, flags: frozenset[str] | None = None) -> str:
    """The tier in force: ``MLSP_KERNEL_TIER`` (``avx2``, ``sse4`` or ``auto``) or the detected one.

    Asking for ``avx2`` on a CPU without it is an error naming the variable: the libraries would
    silently fall back to narrower kernels and compute other bits than the tier promises.
    """
    raw = (os.environ.get(TIER_ENV, "") if requested is None else requested).strip().lower()
    detected = detect_tier(flags)
    if raw in ("", "auto"):
        return detected
    if raw not in TIERS:
        raise ValueError(f"{TIER_ENV}={raw!r}: expected one of auto, {', '.join(TIERS)}")
    if raw == "avx2" and detected != "avx2":
        missing = sorted(X86_64_V3_FLAGS - (cpu_flags() if flags is None else flags))
        raise ValueError(f"{TIER_ENV}=avx2: this CPU lacks {', '.join(missing)}; use {TIER_ENV}=sse4 (or auto)")
    return raw


#: The tier of this process, fixed when the package loads (the switches cannot change later).
TIER = resolve_tier()
#: Library switches of this process's tier (see :data:`TIERS`).
PINNED_ENV: dict[str, str] = dict(TIERS[TIER])
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


def omp_wait_policy(load: float, cores: int) -> str | None:
    """``PASSIVE`` when the machine is already busy (1-minute load of at least one more than its
    cores), else None (libgomp's default: spin a little, then sleep). It changes speed, never results.

    benchmarks/omp_wait.py, 60 small Transformer steps on 2 threads of a 2-core machine: idle, the
    default 2.3 s and PASSIVE 4.6 s (waking sleeping threads for every small operation); beside two
    busy processes, the default 14.5 s and PASSIVE 5.0 s (spinning threads fight the other work for
    the cores). So sleeping threads only where other work is running.
    """
    return "PASSIVE" if load >= cores + 1 else None


def pin_cpu_kernels() -> dict[str, str]:
    """Set the pinned library switches in ``os.environ`` (unless opted out), and the OpenMP wait
    policy (:func:`omp_wait_policy`) unless the user chose one; returns what it set.

    Must run before numpy and torch are imported; libraries already loaded keep their kernels
    (:func:`status` and :func:`configure_torch` report that).
    """
    changed: dict[str, str] = {}
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        try:
            policy = omp_wait_policy(os.getloadavg()[0], os.cpu_count() or 1)
        except OSError:  # no load average on this platform
            policy = None
        if policy:
            changed["OMP_WAIT_POLICY"] = os.environ["OMP_WAIT_POLICY"] = policy
    if fast_kernels():
        return changed
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
        "tier": TIER if not fast_kernels() else "native",
        "env": {k: os.environ.get(k) for k in PINNED_ENV},
        "aten_capability": _aten_capability(),
        "numpy_dispatch": _numpy_dispatch(),
        "openblas_cores": _openblas_cores() if "numpy" in sys.modules else None,
    }
    if "torch" in sys.modules:
        import torch

        from mlsp_pipelines import gemm

        out["mkldnn_enabled"] = bool(torch.backends.mkldnn.enabled)
        out["gemm"] = "openblas" if gemm.installed() else "torch"
        out["torch_threads"] = torch.get_num_threads()
    return out


def problems(info: dict[str, Any] | None = None) -> list[str]:
    """Why this process does not run the pinned kernels (empty when it does or is opted out)."""
    info = info or status()
    if not info["pinned"]:
        return []
    found = []
    tier = info.get("tier", TIER)
    if info["aten_capability"] not in (None, TIER_ATEN[tier]):
        found.append(f"torch runs its {info['aten_capability']} kernels")
    allowed = {"X86_V3"} if tier == "avx2" else set()
    if set(info["numpy_dispatch"] or ()) - allowed:
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
    from mlsp_pipelines import gemm

    gemm.install()  # float32 products on OpenBLAS's pinned kernels, ~2x MKL's compatible branch
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


def _log_kernels() -> None:
    info = status()
    logger.info(
        "CPU kernels: %s (ATen %s, OpenBLAS %s, matrix products on %s, torch threads %s)",
        f"pinned to the {info['tier']} tier for identical results on every CPU of that tier"
        if info["pinned"]
        else f"fastest for this CPU ({FAST_KERNELS_ENV}=1)",
        info["aten_capability"], ",".join(info.get("openblas_cores") or []) or "-",
        info.get("gemm"), info.get("torch_threads"),
    )


class _ConfigureTorchOnImport(importlib.abc.MetaPathFinder):
    """Runs :func:`configure_torch` the moment ``torch`` finishes importing.

    A run's first nodes (data, features) need no torch, and importing it costs about a second of
    start-up; its run-time settings (thread count) must still be in force before any tensor is
    made, whichever node or library imports it first."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader, run_module = spec.loader, spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run_module(module)
            configure_torch()
            _log_kernels()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def configure_torch_when_imported() -> None:
    """:func:`configure_torch` now if torch is loaded, else as soon as anything imports it."""
    if "torch" in sys.modules:
        configure_torch()
        _log_kernels()
    elif not any(isinstance(f, _ConfigureTorchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _ConfigureTorchOnImport())


def make_hook() -> Any:
    """A Kedro hook applying :func:`configure_torch` before each pipeline run (or when the run
    first imports torch) and logging the kernel tier (built on demand: importing this module
    must not import Kedro)."""
    from kedro.framework.hooks import hook_impl

    class DeterminismHook:
        @hook_impl
        def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
            if "torch" not in sys.modules:
                logger.info("CPU kernels: pinned to the %s tier; torch is set up when a node first imports it",
                            TIER if not fast_kernels() else "native")
            configure_torch_when_imported()

    return DeterminismHook()
