"""One way to train a model entry and one shape for what comes out of it.

Every training node (audio classifiers, seq2seq, viscoelastic) did the same five steps: the
entry's training settings, the seed, the network from the registry, the configuration
fingerprint that decides whether a checkpoint may be resumed, the shared :func:`fit` -- then a
bundle dict. :func:`train_model` does them once. The task supplies what differs: its data, a
``prepare`` step that sees the built network before training (the complexity budget, the
augmenter, batch samplers) and the parts of the fingerprint that are its own.

:class:`ModelBundle` is the saved artefact of every pipeline (word2vec's too, which trains with
its own SGD and builds the bundle with :func:`model_bundle`). It is a ``TypedDict`` rather than a
dataclass so that saved models stay plain dicts: they load without this module and hash the same
way DVC has always seen them. ``models.rebuild_model`` turns any of them back into the module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Required, TypedDict

import torch
from torch import Tensor, nn

from mlsp_pipelines.datasets.checkpoint import CheckpointStore
from mlsp_pipelines.models import build_model, count_parameters
from mlsp_pipelines.params import ModelSpec, TrainParams
from mlsp_pipelines.training.hashing import fingerprint
from mlsp_pipelines.training.loop import FitResult, fit

# settings that change how training is shown or resumed, not what it computes
NOT_FINGERPRINTED = frozenset({"progress", "resume", "log_every"})


class ModelBundle(TypedDict, total=False):
    """A trained model as saved: enough to rebuild it (``rebuild_model``) and to describe it.
    Tasks add their own keys (classes and normalisation, vocabularies, feature scaling, ...)."""

    name: Required[str]  # the entry's key under <task>.models: the leaderboard row and MLflow run
    arch: Required[str]  # the registry name
    kwargs: Required[dict[str, Any]]
    in_features: Required[int]
    out_features: Required[int]
    state_dict: Required[dict[str, Tensor]]
    best_epoch: int
    epochs_run: int
    params: int  # trainable parameters
    # No resume facts (the epoch a run resumed from): a resumed model must be the same bytes, and
    # the same DVC hash, as an uninterrupted one. They go to the log, MLflow and the timings.


def model_bundle(name: str, arch: str, kwargs: dict[str, Any], in_features: int, out_features: int,
                 state_dict: dict[str, Tensor], **extra: Any) -> ModelBundle:
    """The bundle of a trained model; ``name`` must be the model entry's key."""
    if not name:
        raise ValueError(f"a model bundle needs the model entry's name (arch {arch!r})")
    bundle: dict[str, Any] = {"name": name, "arch": arch, "kwargs": dict(kwargs), "in_features": int(in_features),
                              "out_features": int(out_features), "state_dict": state_dict, **extra}
    return bundle  # type: ignore[return-value]


@dataclass
class TrainedModel:
    """What :func:`train_model` returns: the trained network (best weights loaded), the loop's
    result (history, timings), the saved bundle and the settings it trained with."""

    net: nn.Module
    result: FitResult
    bundle: ModelBundle
    settings: TrainParams


Prepare = Callable[[nn.Module, TrainParams], dict[str, Any]]


def train_model(
    name: str, model: ModelSpec, train: TrainParams, train_data: Sequence[Tensor], val_data: Sequence[Tensor] | None,
    *, in_features: int, out_features: int, task: str, checkpoints: CheckpointStore | None,
    fingerprint_parts: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, prepare: Prepare | None = None,
    bundle_extra: dict[str, Any] | None = None, desc: str | None = None,
) -> TrainedModel:
    """Train the model entry ``name`` (``model``: its architecture, kwargs and training overrides)
    with the shared loop and return it with its bundle.

    The same seed gives the same initial weights whatever ran before. ``prepare(net, settings)``
    runs on the built network before training and returns extra :func:`fit` arguments
    (``augment``, ``batch_sampler``, ``collate``, ``loss_fn``), or ``train``: training tensors that
    depend on the network (a teacher-forced model gets the targets as a second input). ``fingerprint_parts`` (the data's
    digests, the task's own settings) join the model and training settings in the fingerprint;
    ``kwargs`` replaces the entry's kwargs where the task completes them from the data. ``desc``
    (default ``name``) labels the progress, the log lines and a nested MLflow run (a fold, a trial).
    """
    settings = model.train_params(train)
    kwargs = dict(model.kwargs if kwargs is None else kwargs)
    torch.manual_seed(settings.seed)
    net = build_model(model.arch, in_features=in_features, out_features=out_features, **kwargs)
    fit_kwargs = prepare(net, settings) if prepare is not None else {}
    train_data = fit_kwargs.pop("train", train_data)
    config_hash = fingerprint(model.model_dump(), settings.model_dump(exclude=set(NOT_FINGERPRINTED)),
                              *fingerprint_parts)
    result = fit(net, train_data, val_data, params=settings, task=task, checkpoint=checkpoints,
                 config_hash=config_hash, desc=desc or name, **fit_kwargs)
    bundle = model_bundle(name, model.arch, kwargs, in_features, out_features, result.state_dict,
                          **(bundle_extra or {}), best_epoch=result.best_epoch, epochs_run=result.epochs_run,
                          params=count_parameters(net),
                          # only when averaging was kept, so that other bundles keep their bytes
                          **({"averaged_epochs": result.averaged_epochs} if result.averaged_epochs > 1 else {}))
    return TrainedModel(net=net, result=result, bundle=bundle, settings=settings)
