"""mlsp_pipelines: Kedro pipelines for audio, text and simulated signals.

Importing the package pins the CPU kernels of numpy and torch first (see
:mod:`mlsp_pipelines.determinism`): every entry point -- ``kedro run``, ``python -m
mlsp_pipelines``, DVC stages, the tests -- imports this file before numpy or torch.
"""

from mlsp_pipelines.determinism import pin_cpu_kernels as _pin_cpu_kernels

_pin_cpu_kernels()
