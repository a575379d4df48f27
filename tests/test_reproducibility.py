"""Reproducible on any machine: the project's start-up pins the CPU kernels to a tier, and the tiny
``asc`` pipeline run in two folders, natively and as on an AVX2-only CPU, writes byte-identical
DVC outputs.

The pipeline runs are subprocesses (``python -m kedro run``), because the kernel switches are
read when numpy and torch load: an in-process session would share this process's kernels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlsp_pipelines import determinism

ROOT = Path(__file__).resolve().parents[1]
#: An older CPU, as far as the environment can make one: every library capped at SSE4, glibc's
#: FMA/AVX variants of exp/log/sin/cos masked, one OpenMP thread.
SSE4_CPU = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "OPENBLAS_CORETYPE": "Nehalem",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX2,-FMA,-AVX",
    "OMP_NUM_THREADS": "1",
}
#: A CPU of the AVX2 tier without AVX-512 (a Haswell or Zen 2), as far as the environment can make
#: one: every library capped at AVX2, glibc's AVX-512 variants masked, one OpenMP thread.
AVX2_CPU = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F",
    "OMP_NUM_THREADS": "1",
}
ASC_STAGES = ("asc_data", "asc_features", "asc")


def _clean_env(**extra: str) -> dict[str, str]:
    drop = set(determinism.PINNED_ENV) | set(SSE4_CPU) | set(AVX2_CPU) | {
        determinism.FAST_KERNELS_ENV, determinism.TIER_ENV, "NPY_ENABLE_CPU_FEATURES", "MKL_NUM_THREADS", "KEDRO_ENV"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(MLSP_PROGRESS="0", KEDRO_DISABLE_TELEMETRY="1", **extra)
    return env


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=_clean_env(**env), capture_output=True, text=True,
                          timeout=300, check=True)


STATUS = ("import json, mlsp_pipelines, numpy, torch; from mlsp_pipelines import determinism as d; "
          "d.configure_torch(); print(json.dumps(d.status()))")


def test_start_up_pins_every_library_before_it_loads() -> None:
    """The widest tier this CPU has, chosen from its flags, and every library on it."""
    import json

    status = json.loads(_python(STATUS, OMP_NUM_THREADS="1").stdout.strip().splitlines()[-1])
    tier = determinism.detect_tier()
    assert status["pinned"] and status["tier"] == tier and status["env"] == determinism.TIERS[tier]
    assert status["aten_capability"] == determinism.TIER_ATEN[tier]
    assert set(status["numpy_dispatch"]) <= ({"X86_V3"} if tier == "avx2" else set())
    assert status["openblas_cores"] == [determinism.TIERS[tier]["OPENBLAS_CORETYPE"]]
    assert status["torch_threads"] == determinism.PINNED_THREADS  # not the shell's OMP_NUM_THREADS=1
    assert status["gemm"] == "openblas"  # torch's float32 products on the pinned OpenBLAS (mlsp_pipelines.gemm)


def test_the_sse4_tier_can_be_forced_and_pins_the_portable_kernels() -> None:
    import json

    status = json.loads(_python(STATUS, MLSP_KERNEL_TIER="sse4").stdout.strip().splitlines()[-1])
    assert status["tier"] == "sse4" and status["aten_capability"] == "DEFAULT"
    assert status["numpy_dispatch"] == [] and status["openblas_cores"] == ["Nehalem"]
    assert status["env"] == determinism.TIERS["sse4"]


def test_the_tier_follows_the_cpu_flags_and_a_bad_request_names_the_variable() -> None:
    v3 = determinism.X86_64_V3_FLAGS | {"sse4_2", "avx512f"}
    old = frozenset({"sse4_2", "popcnt", "avx"})  # Sandy Bridge: AVX without AVX2/FMA
    assert determinism.detect_tier(v3) == "avx2" and determinism.detect_tier(old) == "sse4"
    assert determinism.detect_tier(frozenset()) == "sse4"  # no /proc/cpuinfo: the portable tier
    assert determinism.resolve_tier("auto", v3) == "avx2" and determinism.resolve_tier("SSE4", v3) == "sse4"
    with pytest.raises(ValueError, match=r"MLSP_KERNEL_TIER=avx2: this CPU lacks .*avx2.*fma.*; use MLSP_KERNEL_TIER=sse4"):
        determinism.resolve_tier("avx2", old)
    with pytest.raises(ValueError, match="MLSP_KERNEL_TIER='avx512': expected one of auto, avx2, sse4"):
        determinism.resolve_tier("avx512", v3)
    # every tier pins the same libraries, so a process never mixes two tiers' switches
    assert set(determinism.TIERS["avx2"]) == set(determinism.TIERS["sse4"])


def test_fast_kernels_opt_out_leaves_the_libraries_alone() -> None:
    import json

    status = json.loads(_python(STATUS, MLSP_FAST_KERNELS="1").stdout.strip().splitlines()[-1])
    assert not status["pinned"]
    assert all(v is None for v in status["env"].values())  # nothing set for the libraries


def test_importing_torch_or_numpy_first_is_reported() -> None:
    proc = _python("import numpy; import mlsp_pipelines; from mlsp_pipelines import determinism as d; "
                   "import logging; logging.basicConfig(); d.configure_torch()")
    assert "CPU kernels are not pinned in this process" in proc.stderr
    assert "import mlsp_pipelines first" in proc.stderr.replace("Import", "import")


# -- the tiny pipeline in two folders under two CPU levels ------------------------------------------
def _dvc_outputs(stages: tuple[str, ...]) -> list[str]:
    """Every path DVC hashes for ``stages`` (outs, metrics and plots)."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out: list[str] = []
    for name in stages:
        for key in ("outs", "metrics", "plots"):
            for entry in spec[name].get(key, []):
                out.append(entry if isinstance(entry, str) else next(iter(entry)))
    return out


def _files(project: Path, outputs: list[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for rel in outputs:
        path = project / rel
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for p in paths:
            if p.is_file():
                found[p.relative_to(project).as_posix()] = p.read_bytes()
    return found


def _start_asc(project: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", "--pipelines=asc", "--env=test"], cwd=project,
        env=_clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlflow.db'}", **env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_tiny_pipeline_is_byte_identical_in_two_folders_under_two_cpu_levels(tmp_path: Path, new_project_copy) -> None:  # type: ignore[no-untyped-def]
    """Clone one runs with this CPU's own kernel choice; clone two, in another folder (with a
    space in its path), runs as on an AVX2-only CPU with one thread. The project pins the same
    tier in both, so every DVC output of the ``asc`` stages is the same file, byte for byte.
    (Real CPUs of the tier -- Intel Haswell, AMD EPYC, Nehalem for the SSE4 tier -- are checked
    per operation under qemu by ``benchmarks/cpu_kernels.py``.)"""
    one = new_project_copy(tmp_path / "clone one")
    two = new_project_copy(tmp_path / "else" / "where" / "clone two")
    runs = [_start_asc(one), _start_asc(two, **AVX2_CPU)]  # side by side: the start-up costs overlap
    log_one, log_two = (_finish(p) for p in runs)
    tier = determinism.detect_tier()
    for log in (log_one, log_two):
        assert f"CPU kernels: pinned to the {tier} tier" in log and f"ATen {determinism.TIER_ATEN[tier]}" in log

    outputs = _dvc_outputs(ASC_STAGES)
    assert not [o for o in outputs if "timings" in o]  # wall-clock times stay outside DVC's hashes
    a, b = _files(one, outputs), _files(two, outputs)
    assert len(a) > 20 and set(a) == set(b)
    for name in ("data/06_models/asc/cnn.pt", "data/04_feature/asc/logmel.npz", "data/08_reporting/asc/metrics.json",
                 "data/02_intermediate/asc/index.csv"):
        assert name in a
    assert [name for name in sorted(a) if a[name] != b[name]] == []
    # nothing written says where the project or the data sits
    for project, files in ((one, a), (two, b)):
        leaks = [n for n, data in files.items() if str(project).encode() in data or b"clone " in data]
        assert leaks == []


# -- DVC stages find the project's kedro -------------------------------------------------------------
def test_dvc_stages_run_through_the_kedro_finder() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages and all(s["cmd"].startswith("sh scripts/kedro run --pipelines=") for s in stages.values())


def _fake_kedro(path: Path, label: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "{label} $(pwd) $*"\n')
    path.chmod(0o755)


def _finder(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(["sh", str(project / "scripts" / "kedro"), *args], cwd="/", env=base,
                          capture_output=True, text=True, timeout=60)


def test_kedro_finder_without_an_activated_environment(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "kedro").write_bytes((ROOT / "scripts" / "kedro").read_bytes())
    # nothing installed: a message saying what to do, exit 127 like a missing command
    missing = _finder(project, "run", "--pipelines=asc_data")
    assert missing.returncode == 127 and "make install" in missing.stderr and "no 'kedro' found" in missing.stderr
    # the project's .venv, found with no venv activated and not on PATH; run from the project root
    _fake_kedro(project / ".venv" / "bin" / "kedro", "venv")
    found = _finder(project, "run", "--pipelines=asc_data")
    assert found.returncode == 0 and found.stdout.split() == ["venv", str(project), "run", "--pipelines=asc_data"]
    # an activated environment wins
    _fake_kedro(tmp_path / "other" / "bin" / "kedro", "active")
    active = _finder(project, "run", VIRTUAL_ENV=str(tmp_path / "other"))
    assert active.stdout.split()[0] == "active"


# -- float64 diagnostics: the C library's exp/tanh variants -------------------------------------------
DIAGNOSTICS = """
import json, numpy as np, mlsp_pipelines
from mlsp_pipelines.evaluation import diagnostics as d
rng = np.random.default_rng(0)
x, y = rng.normal(size=(4, 120, 2)), rng.normal(size=(4, 120, 1))
cells = {"gru": d.CellSpec(arch="gru"), "lstm": d.CellSpec(arch="lstm"), "rnn": d.CellSpec(arch="rnn")}
table, summary = d.run_gradient_diagnostics(cells, x, y, hidden_size=16, train_steps=10)
print(json.dumps({"summary": summary, "norms": [repr(v) for v in table["grad_norm"]]}))
"""


@pytest.mark.slow
def test_float64_gradient_diagnostics_are_the_same_bytes_with_and_without_fma() -> None:
    """The diagnostics run in float64, where the gates' exp/tanh come from glibc, whose FMA and
    non-FMA variants differ in the last bit: the reported values are rounded far above that, so a
    CPU without FMA (masked here) writes the same numbers."""
    import json

    native, old = (json.loads(_python(DIAGNOSTICS, **env).stdout.strip().splitlines()[-1]) for env in ({}, SSE4_CPU))
    assert len(native["norms"]) == 3 * 2 * 120 and native["summary"]["trained"]["lstm"]["norm_last"] > 0
    assert native == old
