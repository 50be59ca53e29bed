"""`screentime evaluate`: an ONNX model against labelled frames, in accuracy and in seconds.

Runs the same engine `watch` uses, so what is measured is what is deployed.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stream.accounting import account
from stream.engine import Engine
from stream.interval import COVERS, LEVEL, card_intervals
from training.images import load_images
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


def frame_end(times_s: list[float]) -> float:
    """Where the last frame's time ends: one typical interval after it (1 s for the seed)."""
    gaps = [b - a for a, b in itertools.pairwise(times_s) if b > a]
    return times_s[-1] + (statistics.median(gaps) if gaps else 1.0)


def evaluate(
    model: str | Path, frames: str | Path, labels: str | Path, device: str = "auto", batch: int = 16
) -> Evaluation:
    engine = Engine(model, device)
    card = engine.card
    data = read_labels(labels, frames, len(card.classes))
    probs = np.concatenate(
        [
            engine.predict(list(load_images(data.paths[start : start + batch], card.input_size)))
            for start in range(0, len(data.paths), batch)
        ]
    )
    # Multi-label: every character on a frame counts; totals need not add up to the duration.
    true, pred = verdicts(data.labels, probs, card.background, card.multi_label)
    metrics = score(true, pred, card.classes, card.multi_label)
    if card.multi_label:
        metrics["multi_label"] = True
    end = frame_end(data.times_s)

    def seconds(ids: list[tuple[int, ...]]) -> dict[str, float]:
        present = [tuple(card.classes[i] for i in lab) for lab in ids]
        totals = account(data.times_s, present, end, card.classes).totals_s
        return {k: round(v, 3) for k, v in totals.items()}

    records = frame_predictions(data.paths, data.times_s, true, pred, probs, card, Path(frames))
    predicted, truth = seconds(pred), seconds(true)
    screen_time: dict = {"predicted": predicted, "true": truth}
    found = card_intervals(predicted, end - data.times_s[0], len(pred), card.metrics)
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
    return Evaluation(metrics, screen_time, predictions=records)
