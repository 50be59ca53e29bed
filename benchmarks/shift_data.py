# ruff: noqa: E402  (TensorFlow is imported quietly before the modules that need it)
"""The shared frames as the shift benchmarks use them: the training episode and the other shorts'
segments, with backbone features (cached per frame) cropped or not, and the product's heads
trained on one set and scored on another.

Not a benchmark itself: `benchmarks/audit.py` and `benchmarks/accuracy.py --shift` use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from stream.quiet import import_tensorflow_quietly

import_tensorflow_quietly()

import keras

from stream.model.card_metrics import CardMetrics
from training.features import backbone_features
from training.images import path_crops
from training.labels import read_labels
from training.metrics import heldout_mistakes, verdicts
from training.model import load_backbone
from training.split import Folds
from training.train import TrainConfig, fit_heads

CLASSES = ("neither", "jerry", "tom")
BACKGROUND = 0


@dataclass(frozen=True)
class FrameSet:
    name: str
    paths: list[Path]
    labels: list[tuple[int, ...]]  # every class on the frame (`1;2`: both)
    times: np.ndarray
    x: np.ndarray  # backbone features, full view
    views: list[np.ndarray]  # training views (flip)
    crop: str | None  # the set's crop, W:H:X:Y

    def subset(self, idx: np.ndarray, name: str) -> FrameSet:
        return FrameSet(
            name,
            [self.paths[i] for i in idx],
            [self.labels[i] for i in idx],
            self.times[idx],
            self.x[idx],
            [v[idx] for v in self.views],
            self.crop,
        )

    @property
    def single(self) -> np.ndarray:
        return np.asarray([lab[0] for lab in self.labels])

    def shown(self, i: int) -> tuple[str, ...]:
        """The classes a person saw on frame i (characters, or the background alone)."""
        ids = tuple(c for c in self.labels[i] if c != BACKGROUND) or self.labels[i]
        return tuple(CLASSES[c] for c in ids)


def load_set(
    name: str, frames: Path, labels: Path, backbone, crop: str = "auto", views: tuple[str, ...] = ()
) -> FrameSet:
    data = read_labels(labels, frames, len(CLASSES))
    crops = path_crops(data.paths, crop)
    x = backbone_features(backbone, data.paths, progress=False, crops=crops)
    extra = [backbone_features(backbone, data.paths, progress=False, view=v, crops=crops) for v in views]
    return FrameSet(
        name, data.paths, data.labels, np.asarray(data.times_s), x, extra, crops[0].spec if crops[0] else None
    )


def backbone(weights: str):
    return load_backbone((448, 252), weights)


def train_heads(
    train: FrameSet, seed: int, augment: tuple[str, ...] = ("flip",), sets: list[np.ndarray] | None = None
) -> tuple[list, CardMetrics]:
    """The product's heads on `train` (one set, single-label, time-block folds) and the card's
    held-out mistakes (the model-card interval's inputs)."""
    keras.backend.clear_session()
    folds = Folds.of_sets([train.times[s] for s in sets] if sets else [train.times], 5)
    config = TrainConfig(
        frames=Path("."),
        labels=None,
        output=Path("x.keras"),
        classes=CLASSES,
        progress=False,
        seed=seed,
        augment=augment,
    )
    y = train.single
    heads, _, oof = fit_heads(train.x, y, config, False, train.views, folds)
    scored = np.flatnonzero(~np.isnan(oof[:, 0]))
    truth, predicted = verdicts([train.labels[i] for i in scored], oof[scored], BACKGROUND, False)
    held = heldout_mistakes(truth, predicted, [np.arange(len(truth))], CLASSES, BACKGROUND)
    accuracy = float(np.mean([t == p for t, p in zip(truth, predicted, strict=True)]))
    return heads, replace(held, frame_spacing_s=1.0, cross_validation={"accuracy": accuracy})


def predict(heads: list, x: np.ndarray) -> np.ndarray:
    return np.mean([np.asarray(h(x, training=False)) for h in heads], axis=0)


def score(target: FrameSet, probs: np.ndarray) -> tuple[float, float]:
    """Frame accuracy (a verdict naming any class of a several-class frame is right) and the
    worst per-character screen-time error, |predicted - true| / true (1 s per frame)."""
    pred = probs.argmax(1)
    right = np.mean([p in lab for p, lab in zip(pred, target.labels, strict=True)])
    worst = 0.0
    for c, name in enumerate(CLASSES):
        if c == BACKGROUND:
            continue
        true_s = sum(name in target.shown(i) for i in range(len(pred)))
        pred_s = int((pred == c).sum())
        if true_s:
            worst = max(worst, abs(pred_s - true_s) / true_s)
    return float(right), float(worst)


def shift_sets(root: Path) -> list[tuple[str, Path, Path]]:
    """(name, frames, labels) of each segment under shift/."""
    return [(d.name, d, d / "labels.csv") for d in sorted(root.iterdir()) if (d / "labels.csv").is_file()]
