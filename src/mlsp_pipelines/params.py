"""Typed parameter sections that nodes take.

Kedro (>= 1.5) instantiates a node's ``params:`` input into the pydantic model named by the
node's type hint while it builds the catalog, i.e. before any node runs. A typo'd key, a
negative ``n_mels`` or an unknown architecture therefore stops the run at once, with an error
that names the parameter key (``asc.features``) and the field at fault.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from mlsp_pipelines.section import Section


def param_hint(key: str, value: Any, task: str | None = None) -> str:
    """How a user sets parameter ``key`` (relative to the task, e.g. ``data.on_bad_file``) to
    ``value``, for messages: the command-line spelling ``--params asc.data.on_bad_file=skip`` when
    the ``task`` is known (the pipeline binds it), else ``data.on_bad_file=skip``."""
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return f"--params {task}.{key}={text}" if task else f"{key}={text}"



class SceneSynthParams(Section):
    """Size and seed of the embedded synthetic acoustic-scene corpus."""

    n_per_class: int = Field(40, ge=2)
    duration_s: float = Field(4.0, gt=0, le=60)
    sr: int = Field(16000, ge=4000)
    seed: int = 42
    n_folds: int = Field(5, ge=2)
    classes: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> "SceneSynthParams":
        if self.n_per_class < self.n_folds:
            raise ValueError(f"n_per_class={self.n_per_class} must be >= n_folds={self.n_folds} (every fold holds every class)")
        return self


Auto = Literal["auto"]


class FeatureParams(Section):
    """Log-mel front end; every field is a DVC parameter of the features stage.

    ``auto`` values are resolved from the data before extraction (and logged):
    :func:`mlsp_pipelines.features.logmel.resolve_features` says how.
    """

    sr: int | Auto = Field(16000)
    clip_s: float | Auto = Field(4.0)
    n_fft: int | Auto = Field(1024)
    hop_length: int | Auto = Field(512)
    n_mels: int | Auto = Field(64)
    fmin: float = Field(0.0, ge=0)
    fmax: float | None = None
    top_db: float | None = 80.0
    crop: Literal["start", "center"] = "center"
    workers: int = Field(0, ge=0)  # 0 = one per CPU core
    chunk_size: int = Field(16, gt=0)
    # clips longer than length_ratio × clip_s or shorter than clip_s / length_ratio are reported
    # (and are errors with split.strict); clip_s 'auto' ignores them when it picks the length
    length_ratio: float = Field(4.0, gt=1)
    max_memory_gb: float | None = Field(4.0, gt=0)  # the feature array's size limit; null: none

    #: fields that change how features are computed or checked, not their values (left out of
    #: the feature parameters stored with the features and in data_quality.json)
    NOT_STORED: ClassVar[frozenset[str]] = frozenset({"workers", "chunk_size", "length_ratio", "max_memory_gb"})

    @property
    def is_resolved(self) -> bool:
        return "auto" not in (self.sr, self.clip_s, self.n_fft, self.hop_length, self.n_mels)

    @model_validator(mode="after")
    def _check(self) -> "FeatureParams":
        for key, low in (("sr", 999), ("n_fft", 0), ("hop_length", 0), ("n_mels", 0), ("clip_s", 0)):
            value = getattr(self, key)
            if value != "auto" and not value > low:
                raise ValueError(f"{key}={value} must be greater than {low} (or 'auto')")
        if self.sr != "auto":
            nyquist = self.sr / 2
            if self.fmax is not None and not (self.fmin < self.fmax <= nyquist):
                raise ValueError(f"fmax={self.fmax} must be in (fmin={self.fmin}, sr/2={nyquist}]")
            if self.fmin >= nyquist:
                raise ValueError(f"fmin={self.fmin} must be below sr/2={nyquist}")
        if "auto" not in (self.n_fft, self.hop_length) and self.hop_length > self.n_fft:
            raise ValueError(f"hop_length={self.hop_length} must not exceed n_fft={self.n_fft}")
        return self


class SplitParams(Section):
    """Fold-based split when the data has folds, otherwise stratified and seeded.

    Cross-validation (``cv: true``) follows the ESC-50 protocol: every fold is the test fold once
    and training uses all the other folds; ``cv_val_fraction`` of them (stratified, seeded, whole
    groups) validates for early stopping, or 0 for none (a fixed schedule). Data without a fold
    column gets ``cv_folds`` seeded stratified folds. No fixed-split model is trained when cv is on.
    """

    test_fold: int | None = 1
    val_fold: int | None = 2
    test_fraction: float = Field(0.2, gt=0, lt=1)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    cv: bool = False  # k-fold over the dataset's folds
    cv_folds: int | list[int] = 5  # the folds to test on (an int k: folds 1..k); shapes the graph
    cv_val_fraction: float = Field(0.1, ge=0, lt=1)
    strict: bool = False  # data sanity problems (class missing from training, one-class validation) are errors

    def fold_ids(self) -> list[int]:
        """The test folds of a cross-validation, in order."""
        return list(range(1, self.cv_folds + 1)) if isinstance(self.cv_folds, int) else list(self.cv_folds)


class FractionSplitParams(Section):
    """Seeded random train/validation/test split by item (pairs, trajectories); tasks subclass
    it to set their own default fractions."""

    val_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _check_fractions(self) -> "FractionSplitParams":
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} must be < 1"
            )
        return self


class AugmentParams(Section):
    """Training-batch augmentation of spectrogram classifiers (see ``training/augment.py``).
    Mask widths and the shift are fractions of the axis, so one recipe fits 0.5 s digits and
    10 s scenes alike."""

    freq_masks: int = Field(0, ge=0)  # SpecAugment frequency masks per clip
    freq_mask_frac: float = Field(0.15, ge=0, le=1)  # widest frequency mask, fraction of the bands
    time_masks: int = Field(0, ge=0)
    time_mask_frac: float = Field(0.1, ge=0, le=1)  # widest time mask, fraction of the frames
    time_shift: float = Field(0.0, ge=0, le=1)  # random circular roll by up to this fraction of the clip
    gain_db: float = Field(0.0, ge=0)  # random gain in [-gain_db, +gain_db] dB
    mixup_alpha: float = Field(0.0, ge=0)  # mixup Beta(alpha, alpha); 0 = off

    @property
    def enabled(self) -> bool:
        return bool(self.freq_masks or self.time_masks or self.time_shift or self.gain_db or self.mixup_alpha)


class TrainParams(Section):
    """The shared training loop's settings (same for every architecture unless overridden)."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    # validation batches (no gradients, so larger is only faster; None: max(batch_size, 256)).
    # Recurrent models roll out step by step, so a 16-sequence batch costs 16× the Python steps.
    eval_batch_size: int | None = Field(None, ge=1)
    lr: float = Field(1e-3, gt=0)
    optimizer: Literal["adamw", "adam", "sgd", "sparse_adam"] = "adamw"
    weight_decay: float = Field(0.0, ge=0)
    # Adam(W)'s second-moment decay: 0.999 is PyTorch's default; Transformers are usually trained
    # with 0.98 (Vaswani et al. 2017), whose shorter memory follows the warm-up's fast-changing gradients
    adam_beta2: float = Field(0.999, gt=0, lt=1)
    grad_clip: float | None = Field(5.0, gt=0)
    patience: int | None = Field(5, ge=1)  # early stopping on validation loss
    seed: int = 0
    device: str = "cpu"  # "cpu", "cuda", "auto"
    num_threads: int | None = Field(None, ge=1)
    resume: bool = True  # resume from the last checkpoint of an interrupted run
    distributed: Literal["auto", "off"] = "auto"  # auto: DistributedDataParallel when run under torchrun
    # > 1: DistributedDataParallel over this many processes that the node starts itself (one per
    # GPU with device cuda; gloo on CPU), so a multi-GPU model trains inside one node of any
    # runner, the Dask runner's included. Ignored under torchrun, whose launcher decides.
    nproc: int = Field(1, ge=1)
    progress: bool = True  # per-epoch progress bar (also off with MLSP_PROGRESS=0)
    log_every: int | None = Field(None, ge=1)  # with the bar off: a log line every N batches
    schedule: Literal["constant", "onecycle", "cosine"] = "constant"  # learning rate, stepped per batch
    warmup: float = Field(0.1, ge=0, lt=1)  # fraction of all steps spent warming up (onecycle, cosine)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    # > 1: the kept weights are the mean of this many consecutive epochs' weights, ending at the
    # best epoch (checkpoint averaging: a flatter, usually better point late in a decaying schedule)
    average_last: int = Field(1, ge=1)
    augment: AugmentParams = Field(default_factory=AugmentParams)


class ModelSpec(Section):
    """An architecture by registry name and its keyword arguments, checked against the registry."""

    arch: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # per-model overrides of TrainParams, plus ``epochs_scale``: this model's length relative to
    # the task's ``train.epochs`` (rounded, at least 1). A relative length keeps the task-level and
    # command-line epoch settings (``--params asc.train.epochs=5``, conf/test) in force for every
    # model; an absolute per-model ``epochs`` wins over both and over the scale.
    train: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        from mlsp_pipelines.models import model_config

        model_config(self.arch, **self.kwargs)
        scale = self.train.get("epochs_scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ValueError(f"train.epochs_scale must be a number > 0, got {scale!r}")
        TrainParams(**{k: v for k, v in self.train.items() if k != "epochs_scale"})  # valid TrainParams fields
        return self

    def train_params(self, base: TrainParams) -> TrainParams:
        """``base`` with this model's overrides applied (nested sections such as ``augment`` are
        merged key by key, so a model can switch off mixup alone; ``epochs_scale`` multiplies the
        task's epochs unless the model sets ``epochs`` itself)."""
        merged = base.model_dump()
        for key, value in self.train.items():
            if key == "epochs_scale":
                continue
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        if "epochs" not in self.train:
            merged["epochs"] = max(1, round(base.epochs * float(self.train.get("epochs_scale", 1.0))))
        return TrainParams(**merged)


class ReportParams(Section):
    """What the evaluation plots show, and the optional complexity budget (DCASE low-complexity
    style: MACs per second of audio, parameter bytes)."""

    n_examples: int = Field(4, ge=1)
    normal_class: str | None = None  # set: report sensitivity/specificity/ICBHI score against it
    latency_batch: int = Field(1, ge=1)
    latency_repeats: int = Field(20, ge=1)
    max_macs: float | None = Field(None, gt=0)  # per second of audio
    max_param_bytes: float | None = Field(None, gt=0)
    budget_action: Literal["flag", "fail"] = "flag"  # flag: warn and mark; fail: stop before training
    # DCASE-style breakdown of the test set: accuracy and log loss per class, device (seen/unseen in
    # training) and city where the data carries them; shapes the graph (one more node per model)
    breakdown: bool = False
    # test-time augmentation: also score the mean prediction over this many circular time shifts of
    # each clip, spread over +-tta_shift of its length (accuracy_tta beside accuracy; 1: off)
    tta: int = Field(1, ge=1)
    tta_shift: float = Field(0.1, ge=0, lt=0.5)
    # the most confident mistakes on the test clips, kept as WAV to listen to (0: none)
    misclassified: int = Field(3, ge=0)
