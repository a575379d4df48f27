"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from mlsp_pipelines.determinism import make_hook as _determinism_hook
from mlsp_pipelines.hooks import GraphParamsHook, MlflowHook
from mlsp_pipelines.outputs import OutputsHook

# OutputsHook before MlflowHook: hooks are called last-registered first, so the MLflow hook holds
# the pipeline's lock when OutputsHook removes stale temporaries (outputs.py).
HOOKS = (_determinism_hook(), GraphParamsHook(), OutputsHook(), MlflowHook())

# kedro-telemetry is a dependency of kedro; this project never phones home (see also .telemetry).
# kedro-viz is here for `make viz`; its run hooks would write .viz/ files and dataset statistics on
# every run and warn that the project's runner is not Kedro's SequentialRunner.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry", "kedro-viz")

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Environments (conf/test, conf/esc50, ...) override single keys, not whole sections.
    "merge_strategy": {"parameters": "soft", "mlflow": "soft", "dask": "soft"},
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
        "dask": ["dask*", "dask*/**"],  # the cluster of `kedro run --runner=dask` (cluster.py)
    },
}
