"""mlsp_pipelines: Kedro pipelines for audio, text and simulated signals.

Importing the package pins the CPU kernels of numpy and torch first (see
:mod:`mlsp_pipelines.determinism`): every entry point -- ``kedro run``, ``python -m
mlsp_pipelines``, DVC stages, the tests -- imports this file before numpy or torch.
"""

import os as _os

from mlsp_pipelines.determinism import pin_cpu_kernels as _pin_cpu_kernels

_pin_cpu_kernels()

# MLflow gives its loggers a handler of its own at INFO when it loads, which bypasses
# conf/logging.yml (its system-metrics lines then came after a failed run's error, as its last
# lines); the project's logging configuration decides. Its artefact download bars (a model's
# files read back while it is logged, a few milliseconds each) are noise between the project's own
# epoch bars: off unless the user sets MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.
_os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
_os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# A parameter error's last line is the offending key and value, not pydantic's documentation link.
_os.environ.setdefault("PYDANTIC_ERRORS_INCLUDE_URL", "0")
