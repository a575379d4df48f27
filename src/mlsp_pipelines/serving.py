"""Trained networks as MLflow models that take the task's raw input.

An audio classifier is logged as ONE MLflow model with two flavours:

- ``python_function``: :class:`AudioClassifier` takes raw mono waveforms at any sample rate (a
  table with an ``audio`` column of 1-D float arrays and a ``sample_rate`` column; the signature
  has no way to say "1-D or 2-D", so multi-channel audio is down-mixed by the caller), resamples
  them exactly as the loaders do (:func:`~mlsp_pipelines.ingestion.audio.mono_at_rate`),
  crops/pads and computes the log-mel with the project's own feature code, applies the
  normalisation stored in the model bundle, runs the network and returns one probability column
  per class. ``mlflow.pyfunc.load_model(uri).predict(frame)``.
- ``pytorch``: the ``nn.Module`` itself (pickle format, so ``mlflow.pytorch.load_model`` returns
  the module, not a traced graph).

The weights travel as the project's own bundle (``torch.load(weights_only=True)``), the feature
settings as JSON, and this package's source as the model's code, so the model loads in a fresh
process (or environment, with the pinned requirements) without the pipeline. Other networks
(sequence models, embeddings) are logged with the ``pytorch`` flavour only (:func:`log_module`).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

#: Packages the served model imports; pinned to the versions that trained it.
SERVING_PACKAGES = ("mlflow", "torch", "numpy", "scipy", "pandas", "soxr", "soundfile", "librosa", "pydantic")
PACKAGE_DIR = Path(__file__).resolve().parent
BATCH_CLIPS = 64  # clips featurised at once (bounds memory for long inputs)



def requirements() -> list[str]:
    """``name==version`` of :data:`SERVING_PACKAGES` as installed here."""
    out = []
    for name in SERVING_PACKAGES:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            continue
    return out


class AudioClassifier(mlflow.pyfunc.PythonModel):
    """Waveforms (any rate, mono or (samples, channels)) → class probabilities."""

    def load_context(self, context: Any) -> None:
        import torch

        bundle = torch.load(context.artifacts["bundle"], map_location="cpu", weights_only=True)
        features = json.loads(Path(context.artifacts["features"]).read_text(encoding="utf-8"))
        self.setup(bundle, features)

    def setup(self, bundle: dict[str, Any], features: dict[str, Any]) -> None:
        """Everything :meth:`predict` needs, from a bundle and the feature settings."""
        from mlsp_pipelines.features.logmel import n_frames
        from mlsp_pipelines.models import rebuild_model
        from mlsp_pipelines.params import FeatureParams

        self.features = FeatureParams(**features)
        self.classes = [str(c) for c in bundle["classes"]]
        self.norm = bundle["norm"]
        self.net = rebuild_model(bundle)
        if int(bundle["in_features"]) != self.features.n_mels:
            raise ValueError(f"the model takes {bundle['in_features']} mel bands but the feature settings give "
                             f"{self.features.n_mels}")
        self.n_frames = n_frames(self.features)

    def features_of(self, audio: list[np.ndarray], rates: list[int]) -> np.ndarray:
        """(N, frames, n_mels) normalised log-mel, as the pipeline computes it for its clips."""
        from mlsp_pipelines.features.logmel import fix_length, logmel_batch
        from mlsp_pipelines.features.normalise import apply_normaliser
        from mlsp_pipelines.ingestion.audio import mono_at_rate

        fp = self.features
        n = int(round(fp.clip_s * fp.sr))
        out = []
        for i in range(0, len(audio), BATCH_CLIPS):
            waves = np.stack([fix_length(mono_at_rate(np.asarray(a, dtype=np.float32), int(r), fp.sr), n, fp.crop)
                              for a, r in zip(audio[i : i + BATCH_CLIPS], rates[i : i + BATCH_CLIPS])])
            out.append(apply_normaliser(logmel_batch(waves, fp), self.norm))
        return np.concatenate(out) if out else np.empty((0, self.n_frames, fp.n_mels), np.float32)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        import torch

        from mlsp_pipelines.training.loop import predict

        frame = _as_frame(model_input)
        audio = [np.asarray(a, dtype=np.float32) for a in frame["audio"]]
        rates = [int(r) for r in frame["sample_rate"]]
        for k, (a, r) in enumerate(zip(audio, rates)):
            if a.size == 0 or r <= 0:
                raise ValueError(f"row {k}: empty audio or sample_rate {r} <= 0")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"row {k}: audio contains NaN or infinite samples")
        X = torch.from_numpy(self.features_of(audio, rates))
        probs = torch.softmax(predict(self.net, (X,)), dim=-1).numpy().astype(np.float64)
        return pd.DataFrame(probs, columns=self.classes)


def _as_frame(model_input: Any) -> pd.DataFrame:
    """A DataFrame with ``audio`` and ``sample_rate`` (a dict of columns is accepted when the model
    is called directly; through ``mlflow.pyfunc`` and HTTP the schema check wants a DataFrame,
    ``dataframe_split`` or ``dataframe_records``)."""
    frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(dict(model_input))
    missing = {"audio", "sample_rate"} - set(frame.columns)
    if missing:
        raise ValueError(f"input needs columns 'audio' (float array per clip) and 'sample_rate'; missing {sorted(missing)}")
    return frame


def audio_signature(classes: list[str]) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    return ModelSignature(
        inputs=Schema([ColSpec(Array(DataType.double), "audio"), ColSpec(DataType.long, "sample_rate")]),
        outputs=Schema([ColSpec(DataType.double, c) for c in classes]),
    )


def example_input(audio: np.ndarray | None = None, sample_rate: int = 22050) -> pd.DataFrame:
    """A short input example (a real clip's first 0.1 s when given, else a seeded tone + noise)."""
    if audio is None:
        t = np.arange(int(0.1 * sample_rate)) / sample_rate
        audio = 0.1 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    clip = np.asarray(audio, dtype=np.float64)[: max(1, int(0.1 * sample_rate))]
    return pd.DataFrame({"audio": [clip], "sample_rate": [int(sample_rate)]})


# -- the MLflow flavour that writes both ---------------------------------------------------------
def save_model(path: str, mlflow_model: Any = None, *, bundle: dict[str, Any], features: dict[str, Any],
               input_example: Any = None, code_paths: list[str] | None = None,
               pip_requirements: list[str] | None = None, metadata: dict[str, Any] | None = None) -> None:
    """Write the two-flavour model at ``path`` (called by ``Model.log``; see module docstring)."""
    import mlflow.pytorch
    import torch
    from mlflow.models import Model

    mlflow_model = mlflow_model or Model()
    pip = pip_requirements or requirements()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        torch.save(bundle, tmpdir / "bundle.pt")
        (tmpdir / "features.json").write_text(json.dumps(features, indent=2), encoding="utf-8")
        model = AudioClassifier()
        model.setup(bundle, features)  # fail here, not in production, when bundle and settings disagree
        mlflow.pyfunc.save_model(
            path, python_model=str(PACKAGE_DIR / "serving_entry.py"), mlflow_model=mlflow_model,
            artifacts={"bundle": str(tmpdir / "bundle.pt"), "features": str(tmpdir / "features.json")},
            signature=audio_signature(model.classes), input_example=input_example, code_paths=code_paths,
            pip_requirements=pip, metadata=metadata,
        )
        # the same network for mlflow.pytorch.load_model, beside the pyfunc (one model, two flavours)
        with _quiet_pickle_warning():
            mlflow.pytorch.save_model(model.net, str(tmpdir / "torch"), serialization_format="pickle",
                                      pip_requirements=pip)
        shutil.copytree(tmpdir / "torch" / "data", Path(path) / "torch")
        conf = Model.load(str(tmpdir / "torch" / "MLmodel")).flavors["pytorch"]
    conf.update(model_data="torch", code=mlflow_model.flavors["python_function"].get("code"))
    mlflow_model.add_flavor("pytorch", **conf)
    mlflow_model.save(str(Path(path) / "MLmodel"))


def log_audio_classifier(run_id: str, bundle: dict[str, Any], features: dict[str, Any], *, name: str = "model",
                         registered_model_name: str | None = None, example_audio: np.ndarray | None = None,
                         example_rate: int = 22050, params: dict[str, Any] | None = None) -> Any:
    """Log an audio classifier to ``run_id`` as an MLflow 3 logged model; returns ``ModelInfo``.

    Uses the global tracking URI (``mlflow.set_tracking_uri``), like every ``log_model``."""
    from mlflow.models import Model

    return Model.log(
        artifact_path=None, name=name, flavor=sys.modules[__name__], run_id=run_id,
        registered_model_name=registered_model_name, params=params,
        bundle=bundle, features=features, input_example=example_input(example_audio, example_rate),
        code_paths=[str(PACKAGE_DIR)], pip_requirements=requirements(),
        await_registration_for=0,
    )


def log_module(run_id: str, bundle: dict[str, Any], *, name: str = "model", registered_model_name: str | None = None,
               params: dict[str, Any] | None = None) -> Any:
    """Log the network of any bundle with the ``pytorch`` flavour (pickle format: loads as the module)."""
    import mlflow.pytorch

    from mlsp_pipelines.models import rebuild_model

    with _quiet_pickle_warning():
        return mlflow.pytorch.log_model(
            rebuild_model(bundle), name=name, run_id=run_id, serialization_format="pickle",
            registered_model_name=registered_model_name, params=params, code_paths=[str(PACKAGE_DIR)],
            pip_requirements=requirements(), await_registration_for=0,
        )


def log_bundle(run_id: str, bundle: dict[str, Any], *, flavor: str, dataset: str, name: str,
               registered_model_name: str | None = None, params: dict[str, Any] | None = None,
               feature_params: str | None = None) -> Any:
    """Log a model bundle in the flavour its catalog entry ``dataset`` declares: ``audio_classifier``
    (raw audio in, the pipeline's features inside: the settings the bundle was trained with, else
    the configuration section ``feature_params`` of ``params``) or ``pytorch`` (the network alone)."""
    if flavor == "audio_classifier":
        from mlsp_pipelines import config

        features = bundle.get("features") or (config.section(params or {}, feature_params) if feature_params else None)
        if not features:
            raise ValueError(f"catalog entry {dataset}: the bundle holds no 'features' and metadata.mlflow."
                             f"feature_params={feature_params!r} names no parameters; the served model needs the "
                             "feature settings")
        return log_audio_classifier(run_id, bundle, dict(features), name=name, registered_model_name=registered_model_name)
    if flavor == "pytorch":
        return log_module(run_id, bundle, name=name, registered_model_name=registered_model_name)
    raise ValueError(f"catalog entry {dataset}: metadata.mlflow.flavor={flavor!r}; use audio_classifier or pytorch")


@contextmanager
def _quiet_pickle_warning() -> Iterator[None]:
    """``mlflow.pytorch`` warns on every pickle-format save. The format is chosen on purpose: the
    ``pt2`` format loads back as a traced GraphModule, not the module users asked for, while the
    pyfunc flavour never unpickles a network (it rebuilds it from the registry and reads the
    weights with ``weights_only=True``). The README says so once instead of one warning per model."""
    log = logging.getLogger("mlflow.pytorch")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
