"""`screentime evaluate`: an ONNX model against labelled frames, in accuracy and in seconds.

Runs the same engine `watch` uses, so what is measured is what is deployed.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stream.confidence.interval import COVERS, LEVEL, card_intervals
from stream.defaults import CROP
from stream.frames.crop import Crop
from stream.model.engine import Engine
from training.images import load_images, set_crop
from training.labels import read_labels
from training.metrics import score, verdicts
from training.mistakes import FramePrediction, frame_predictions


@dataclass(frozen=True)
class Evaluation:
    metrics: dict
    screen_time_s: dict[str, dict[str, float]]  # {"predicted": {...}, "true": {...}}
    # Every frame's verdict, time order (for `--errors`); not in to_dict(): it would swamp the JSON.
    predictions: tuple[FramePrediction, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict:
        return {**self.metrics, "screen_time_s": self.screen_time_s}


def frame_seconds(times_s: list[float]) -> list[float]:
    """The seconds each labelled frame stands for: the typical (median) spacing of the frames,
    or less where the next frame comes sooner, never a gap between two runs of labelled frames
    (1 s each when there is no spacing to go by, as for a single frame)."""
    gaps = [b - a for a, b in itertools.pairwise(times_s) if b > a]
    typical = statistics.median(gaps) if gaps else 1.0
    return [min(b - a, typical) for a, b in itertools.pairwise(times_s)] + [typical] if times_s else []


def class_seconds(shown: list[tuple[int, ...]], weights_s: list[float], classes: tuple[str, ...]) -> dict[str, float]:
    """Seconds per class: a frame counts for every class it shows."""
    totals = dict.fromkeys(classes, 0.0)
    for ids, w in zip(shown, weights_s, strict=True):
        for i in set(ids):
            totals[classes[i]] += w
    return {k: round(v, 3) for k, v in totals.items()}


def evaluate(
    model: str | Path,
    frames: str | Path,
    labels: str | Path,
    device: str = "auto",
    batch: int = 16,
    crop: str | Crop = CROP,
) -> Evaluation:
    engine = Engine(model, device)
    card = engine.card
    data = read_labels(labels, frames, len(card.classes))
    cut = set_crop(Path(frames), data.paths, crop)  # the set's black bars, cut as `watch` cuts them
    probs = np.concatenate(
        [
            engine.predict(list(load_images(data.paths[start : start + batch], card.input_size, cut)))
            for start in range(0, len(data.paths), batch)
        ]
    )
    # Multi-label: every character on a frame counts; totals need not add up to the duration.
    true, pred = verdicts(data.labels, probs, card.background, card.multi_label)
    metrics = score(true, pred, card.classes, card.multi_label)
    if card.multi_label:
        metrics["multi_label"] = True
    # Frames labelled with several characters count for each in the true seconds.
    shown = [tuple(c for c in lab if c != card.background) or tuple(lab) for lab in data.labels]
    several = sum(len(ids) > 1 for ids in shown)
    if several and not card.multi_label:
        metrics["several_classes"] = several  # a verdict naming any one of them is right
    weights = frame_seconds(data.times_s)
    classes = tuple(card.classes)
    predicted, truth = class_seconds(pred, weights, classes), class_seconds(shown, weights, classes)
    duration = sum(weights)

    records = frame_predictions(data.paths, data.times_s, true, pred, probs, card, Path(frames))
    screen_time: dict = {"predicted": predicted, "true": truth}
    found = card_intervals(predicted, duration, len(pred), card.metrics)
    if found:
        # Only honest on frames the model never trained on: on its own training frames the
        # truth will sit inside more often than the level says.
        screen_time["interval"] = {k: [round(v.low, 3), round(v.high, 3)] for k, v in found.items()}
        metrics["interval"] = {
            "level": LEVEL,
            "covers": COVERS.format(level=LEVEL),
            "true_inside": sum(v.contains(truth[k]) for k, v in found.items()),
            "classes": len(found),
        }
    metrics["crop"] = cut.spec if cut else None
    return Evaluation(metrics, screen_time, predictions=records)
