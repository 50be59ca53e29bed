"""The verdict: a model's probabilities for one frame -> the classes present on it.

One rule, read by everyone who turns probabilities into classes: `watch` and `batch` (each
sample's prediction), `evaluate` and `train` (what they score), and the labeller's guess. A
second copy would be a second answer waiting to differ on the same frame.

Single-label: the likeliest class (the background included). Multi-label (independent
sigmoids): every character at or above `THRESHOLD`; where none is, the background alone (or the
likeliest class for a model without one). The background is never present beside a character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from stream.counting.report import ms
from stream.model.card import ModelCard
from stream.records import Prediction

THRESHOLD = 0.5  # a multi-label class is present at or above this probability


class Rule(Protocol):
    """What the verdict needs of a model: a `ModelCard` is one, `VerdictRule` another."""

    @property
    def multi_label(self) -> bool: ...

    @property
    def background(self) -> int | None: ...


@dataclass(frozen=True)
class VerdictRule:
    """The verdict's inputs where no model card exists yet (`train` scoring its own heads)."""

    multi_label: bool = False
    background: int | None = 0


def verdict(probs: np.ndarray, card: Rule) -> tuple[int, ...]:
    """Class indices present on one frame, ascending (single-label: exactly one)."""
    probs = np.asarray(probs)
    top = int(np.argmax(probs))
    if not card.multi_label:
        return (top,)
    present = tuple(int(i) for i in np.flatnonzero(probs >= THRESHOLD) if i != card.background)
    if present:
        return present
    return (card.background,) if card.background is not None else (top,)


def to_prediction(probs: np.ndarray, card: ModelCard, t_s: float, latency_s: float = 0.0) -> Prediction:
    """Probabilities -> a sample's prediction; which classes are present is `stream.model.verdict`'s rule."""
    top = int(np.argmax(probs))
    present = tuple(card.classes[i] for i in verdict(probs, card))
    label = "+".join(present)  # e.g. "jerry+tom" in a multi-label model's timeline
    return Prediction(
        t_s=ms(t_s),
        label=label,
        confidence=float(probs[top]),
        probs={c: float(p) for c, p in zip(card.classes, probs, strict=True)},
        present=present,
        latency_s=latency_s,
    )
