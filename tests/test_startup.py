"""Start-up stays light: building the pipelines imports no torch, matplotlib or scipy.

Every ``kedro run``, ``kedro registry list``, DVC stage and test builds all pipelines first; the
node modules import their heavy libraries inside the functions that use them. Checked in a
fresh interpreter, since this test process has long imported all of them.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys

from conftest import PROJECT_ROOT

import mlsp_pipelines.pipelines as pipelines_pkg

#: Never imported by building the pipelines, by the project settings (hooks) or by Kedro's
#: evaluation of the node functions' annotations (its parameter validation at run start).
HEAVY = ("torch", "matplotlib", "scipy", "sklearn", "librosa", "mlflow", "distributed", "gensim", "numba")

_PROBE = """
import json, sys, typing
import mlsp_pipelines.settings  # the hooks Kedro loads first
import mlsp_pipelines.pipeline_registry as registry

heavy = {heavy!r}
pipelines = registry.register_pipelines()
after_build = sorted(h for h in heavy if h in sys.modules)
unresolved = {{}}
for pipe in pipelines.values():
    for node in pipe.nodes:
        try:
            typing.get_type_hints(node.func)  # what Kedro's parameter validation does
        except Exception as exc:
            unresolved[node.name] = repr(exc)
print(json.dumps({{
    "after_build": after_build,
    "after_hints": sorted(h for h in heavy if h in sys.modules),
    "nodes": {{name: len(p.nodes) for name, p in pipelines.items()}},
    "unresolved": unresolved,
}}))
"""


def _probe() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "KEDRO_ENV"}
    out = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY)], cwd=PROJECT_ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_every_pipeline_imports_no_heavy_library() -> None:
    result = _probe()
    assert result["after_build"] == [], (
        f"building the pipelines imported {result['after_build']}: import them inside the node functions "
        "that use them (python -X importtime shows which module pulls them in)")
    # every pipeline package contributes its pipeline, each with nodes; __default__ is asc
    packages = {i.name for i in pkgutil.iter_modules(pipelines_pkg.__path__)}
    assert packages <= set(result["nodes"]), f"missing pipelines: {packages - set(result['nodes'])}"
    empty = [name for name, n in result["nodes"].items() if n == 0]
    assert not empty, f"pipelines without nodes: {empty}"
    assert result["nodes"]["__default__"] == result["nodes"]["asc"]
    # Kedro evaluates every node function's annotations at run start: they resolve, lightly
    assert result["unresolved"] == {}, result["unresolved"]
    assert result["after_hints"] == [], f"resolving node annotations imported {result['after_hints']}"


_HOOK_PROBE = """
import json, sys
from kedro.config import MissingConfigException
from mlsp_pipelines import config
from mlsp_pipelines.hooks import GraphParamsHook

class Context:
    project_path = {root!r}
    def __init__(self, dask):
        self.config_loader = {{"parameters": {{}}, **({{"dask": dask}} if dask is not None else {{}})}}

class Loader(dict):
    def __getitem__(self, key):
        if key not in self:
            raise MissingConfigException(key)
        return dict.__getitem__(self, key)

seen = []
for dask in (None, {{"n_workers": 3}}, None):
    ctx = Context(dask)
    ctx.config_loader = Loader(ctx.config_loader)
    GraphParamsHook().after_context_created(ctx)
    cluster = sys.modules.get("mlsp_pipelines.cluster")
    seen.append({{"distributed": "distributed" in sys.modules, "active": cluster and cluster._ACTIVE}})
config.set_active_params(None)
print(json.dumps(seen))
"""


def test_context_hook_imports_the_dask_cluster_only_for_a_dask_configuration() -> None:
    out = subprocess.run([sys.executable, "-c", _HOOK_PROBE.format(root=str(PROJECT_ROOT))], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    no_dask, dask, no_dask_again = json.loads(out.stdout.strip().splitlines()[-1])
    assert no_dask == {"distributed": False, "active": None}
    assert dask == {"distributed": True, "active": {"n_workers": 3}}
    assert no_dask_again == {"distributed": True, "active": None}  # an earlier session's settings forgotten


_VALIDATE = """
import json, sys, yaml
from pathlib import Path
import mlsp_pipelines
from mlsp_pipelines.params import ModelSpec

checked = []
for f in sorted(Path("conf/base").glob("parameters_*.yml")):
    for task, section in (yaml.safe_load(f.read_text()) or {}).items():
        for name, spec in ((section or {}).get("models") or {}).items():
            ModelSpec(**spec)  # what Kedro's validation of a run's parameters builds
            checked.append(f"{task}.{name}")
try:
    ModelSpec(arch="cnn", kwargs={"chanels": [8]})
    error = None
except ValueError as exc:
    error = str(exc)
print(json.dumps({"checked": checked, "error": error, "torch": "torch" in sys.modules}))
"""


def test_model_parameters_are_validated_without_torch() -> None:
    """Every model entry's keyword arguments are checked against its config class at a run's
    start; the config classes live apart from the modules, so that takes no torch import."""
    env = {k: v for k, v in os.environ.items() if k != "KEDRO_ENV"}
    out = subprocess.run([sys.executable, "-c", _VALIDATE], cwd=PROJECT_ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["checked"]) >= 15 and "asc.cnn" in result["checked"]
    assert "'chanels'" in result["error"] and "accepted: channels" in result["error"]
    assert result["torch"] is False


def test_openmp_threads_sleep_only_on_a_busy_machine_and_never_against_the_users_choice() -> None:
    """PASSIVE waiting costs 2x on an idle machine and saves 3x on a busy one (benchmarks/omp_wait.py):
    the package chooses it from the load, before torch loads; a policy the user set is kept."""
    from mlsp_pipelines.determinism import omp_wait_policy

    assert omp_wait_policy(0.3, 2) is None and omp_wait_policy(2.5, 2) is None  # idle, or busy with itself
    assert omp_wait_policy(3.0, 2) == "PASSIVE" and omp_wait_policy(20.0, 16) == "PASSIVE"
    assert omp_wait_policy(10.0, 16) is None
    code = "import os, mlsp_pipelines; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "ACTIVE"


def test_mlflow_download_bars_are_off_unless_the_user_turns_them_on() -> None:
    """MLflow's artefact download bars (printed while a model is logged) are not the project's progress."""
    code = "import os, mlsp_pipelines; print(os.environ['MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR'])"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "MLSP_PROGRESS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "false"
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "true"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "true"
