"""`screentime train`: the seed's recipe made right.

Frozen ImageNet VGG16 with the preprocessing its weights expect, a dense head with dropout,
balanced class weights, validation on time blocks, the checkpoint with the best (class-weighted)
validation loss,
early stopping, and a metrics file beside the model.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from rich.progress import Progress

from stream.atomic import atomic_write_text, check_writable
from stream.errors import BadInputError, LabelError
from stream.version import __version__
from training.features import backbone_features
from training.labels import read_labels
from training.metrics import present_ids, summarize, summarize_sets
from training.model import assemble, build_head, load_backbone
from training.split import time_block_split

log = logging.getLogger(__name__)

DEFAULT_CLASSES = ("neither", "jerry", "tom")


@dataclass
class TrainConfig:
    frames: Path
    labels: Path
    output: Path
    classes: tuple[str, ...] = DEFAULT_CLASSES
    backbone_weights: str | None = None
    epochs: int = 60
    seed: int = 0
    input_size: tuple[int, int] = (448, 252)  # 16:9 at twice VGG's usual width: small characters survive
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 12
    folds: int = 5
    ensemble: int = 5  # heads averaged in the exported model (trained with different seeds)
    label_smoothing: float = 0.1
    augment: tuple[str, ...] = ("flip",)  # extra views of training frames (training.features.VIEWS)
    progress: bool = True
    background: int | None = 0

    def validate(self) -> None:
        if len(self.classes) < 2:
            raise BadInputError("need at least two classes")
        if len(set(self.classes)) != len(self.classes):
            raise BadInputError(f"class names repeat: {','.join(self.classes)}")
        if self.output.suffix != ".keras":
            raise BadInputError(f"{self.output}: the model file must end in .keras")
        if self.epochs < 1:
            raise BadInputError("--epochs must be at least 1")
        try:
            check_writable(self.output)
        except OSError as exc:
            raise BadInputError(f"{self.output}: cannot write ({exc})") from None


@dataclass
class TrainResult:
    model_path: Path
    metrics_path: Path
    metrics: dict = field(default_factory=dict)


def metrics_path_for(model_path: Path) -> Path:
    """`model.keras` -> `model.metrics.json`."""
    return model_path.with_name(model_path.name.removesuffix(".keras") + ".metrics.json")


def multi_hot(labels: list[tuple[int, ...]], n_classes: int, background: int | None) -> np.ndarray:
    """(N, classes) 0/1 targets; the background is on only where no character is."""
    y = np.zeros((len(labels), n_classes), np.float32)
    for i, lab in enumerate(labels):
        ids = [c for c in lab if c != background] or list(lab)
        y[i, ids] = 1.0
    return y


def class_weights(labels: list[int], n_classes: int) -> dict[int, float]:
    """Balanced weights n / (k * count): each class weighs the same in the loss in total."""
    counts = Counter(labels)
    present = [c for c in range(n_classes) if counts[c]]
    return {c: len(labels) / (len(present) * counts[c]) for c in present}


def train(config: TrainConfig) -> TrainResult:
    config.validate()
    started = time.monotonic()
    keras.utils.set_random_seed(config.seed)
    data = read_labels(config.labels, config.frames, len(config.classes))
    # Any frame labelled with several classes (`1;2`) makes a multi-label model: one sigmoid per
    # class, and a frame counts for every character on it. Seed files stay single-label.
    multi = any(len(lab) > 1 for lab in data.labels)
    y = multi_hot(data.labels, len(config.classes), config.background) if multi else np.asarray(data.single)
    if len(y) < 2 * config.folds:
        raise LabelError(f"{config.labels}: too few labelled frames for a time-block split")

    backbone = load_backbone(config.input_size, config.backbone_weights)
    t0 = time.monotonic()
    features = backbone_features(backbone, data.paths, progress=config.progress)
    augmented = [backbone_features(backbone, data.paths, progress=config.progress, view=v) for v in config.augment]
    feature_s = time.monotonic() - t0

    heads, histories, oof = fit_heads(features, y, config, multi, augmented)
    val_idx = np.flatnonzero(~np.isnan(oof[:, 0]))
    probs = oof[val_idx]
    if multi:
        truth = [data.labels[i] for i in val_idx]
        validation = summarize_sets(truth, present_ids(probs, config.background), config.classes)
    else:
        validation = summarize(y[val_idx].tolist(), probs.argmax(axis=1).tolist(), config.classes)
    best = [_best_epoch(h) for h in histories]

    model = assemble(backbone, heads)
    model.save(str(config.output))
    metrics = {
        "classes": list(config.classes),
        "background": config.background,
        "validation": validation,
        "validation_split": (
            f"time blocks, out of fold: each head validates on its own fold of {config.folds} (gap 2 frames), "
            "each frame is scored by the heads that never trained on it"
        ),
        "train_frames": len(y),
        "val_frames": len(val_idx),
        "dropped_frames": data.dropped,
        "unlabelled_frames": data.unlabelled,
        "multi_label": multi,
        "class_counts": {
            config.classes[c]: n for c, n in sorted(Counter(c for lab in data.labels for c in lab).items())
        },
        "ensemble": config.ensemble,
        "epochs_run": [len(h["val_loss"]) for h in histories],
        "best_epoch": [b + 1 for b in best],
        "checkpoint_on": "validation loss" if multi else "class-weighted validation loss",
        "best_val_loss": float(np.mean([h["val_loss"][b] for h, b in zip(histories, best, strict=True)])),
        "label_smoothing": config.label_smoothing,
        "augment": list(config.augment),
        "backbone": backbone.provenance,
        "input_size": list(config.input_size),
        "frames_dir": str(config.frames.resolve()),
        "seed": config.seed,
        "screentime_version": __version__,
        "timing_s": {"features": round(feature_s, 2), "total": round(time.monotonic() - started, 2)},
    }
    metrics_file = metrics_path_for(config.output)
    atomic_write_text(metrics_file, json.dumps(metrics, indent=2) + "\n")
    return TrainResult(config.output, metrics_file, metrics)


def _best_epoch(history: dict) -> int:
    """Index of the epoch whose weights the checkpoint kept."""
    return int(np.argmin(history["val_loss"]))


def fit_heads(
    features: np.ndarray, y: np.ndarray, config: TrainConfig, multi: bool, augmented: Sequence[np.ndarray] = ()
) -> tuple[list[keras.Model], list[dict], np.ndarray]:
    """Train `config.ensemble` heads, head k validating on time-block fold k (an ensemble of folds).

    Every frame trains all heads but the one(s) that validate on it, so no labelled frame is
    wasted on validation alone, and each head keeps the weights of its best validation epoch.
    `y` holds class ids (single-label) or 0/1 rows (multi-label); `augmented` holds features of
    other views of the same frames (flips), used for training only. Returns the heads, their
    Keras histories and out-of-fold probabilities (N, classes): each frame scored by
    the heads that never trained on it, NaN for frames no head validated on.
    """
    targets = y if multi else keras.utils.to_categorical(y, len(config.classes))
    heads, histories = [], []
    oof_sum = np.zeros((len(y), len(config.classes)))
    oof_n = np.zeros(len(y))
    with Progress(disable=not config.progress, transient=True) as bar:
        task = bar.add_task("training heads", total=config.ensemble * config.epochs)
        for k in range(config.ensemble):
            split = time_block_split(len(y), folds=config.folds, fold=k % config.folds)
            train_idx, val_idx = np.asarray(split.train), np.asarray(split.val)
            keras.utils.set_random_seed(config.seed * 1000 + k)
            head = build_head(features.shape[1], len(config.classes), multi_label=multi, name=f"head_{k}")
            x_train = np.concatenate([features[train_idx], *(a[train_idx] for a in augmented)])
            t_train = np.concatenate([targets[train_idx]] * (1 + len(augmented)))
            val_data = (features[val_idx], targets[val_idx])
            weights = None
            if not multi:
                # Balanced class weights (the same whether or not the augmented copies are
                # counted), and the validation loss weighted alike: unweighted, the common
                # characters dominate it and the checkpoint favours epochs that miss the rare,
                # small one and overcount the common one (benchmarks/accuracy.py).
                weights = class_weights(y[train_idx].tolist(), len(config.classes))
                val_data += (np.asarray([weights.get(c, 1.0) for c in y[val_idx]], np.float32),)
            histories.append(_fit_head(head, (x_train, t_train), val_data, weights, config, multi, bar, task))
            heads.append(head)
            oof_sum[val_idx] += head.predict(features[val_idx], verbose=0)
            oof_n[val_idx] += 1
    with np.errstate(invalid="ignore"):
        oof = oof_sum / oof_n[:, None]
    return heads, histories, oof


def _fit_head(
    head, train_data: tuple, val_data: tuple, class_weight: dict | None, config: TrainConfig, multi: bool, bar, task
) -> dict:
    """Fit one head on `train_data` (x, targets); keep the weights of its best epoch on `val_data`
    (x, targets[, sample weights]). Returns its Keras history."""
    loss = (
        keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing)
        if multi
        else keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    )
    head.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss)
    with tempfile.TemporaryDirectory() as tmp:
        best = Path(tmp) / "best.weights.h5"
        callbacks = [
            keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True, save_weights_only=True),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience),
            _EpochProgress(bar, task),
        ]
        history = head.fit(
            *train_data,
            validation_data=val_data,
            epochs=config.epochs,
            batch_size=config.batch_size,
            class_weight=class_weight,
            callbacks=callbacks,
            verbose=0,
        )
        head.load_weights(str(best))
    bar.update(task, advance=config.epochs - len(history.history["val_loss"]))  # early stop: skip the rest
    return history.history


class _EpochProgress(keras.callbacks.Callback):
    """Advances a shared rich progress bar per epoch, showing the validation loss (Keras' own output is off)."""

    def __init__(self, bar: Progress, task) -> None:
        super().__init__()
        self._bar, self._task = bar, task

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        loss = (logs or {}).get("val_loss", float("nan"))
        self._bar.update(self._task, advance=1, description=f"training heads (val loss {loss:.3f})")
