"""Temporal smoothing of class probabilities: a character rarely appears for one sampled instant.

Causal (each sample averages itself with the ones before it), so it works live and delays a
change by about half the window; screen-time totals are barely moved, flicker is removed.
"""

from __future__ import annotations

from collections import deque

import numpy as np


def smooth_probs(probs: np.ndarray, window: int) -> np.ndarray:
    """Causal moving average over `window` samples of an (N, classes) array (pure)."""
    if window <= 1 or len(probs) == 0:
        return probs
    out = np.empty_like(probs)
    smoother = Smoother(window)
    for i, p in enumerate(probs):
        out[i] = smoother.push(p)
    return out


class Smoother:
    """The incremental form used by the live pipeline; `reset()` after an outage."""

    def __init__(self, window: int) -> None:
        self.window = max(1, window)
        self._recent: deque[np.ndarray] = deque(maxlen=self.window)

    def push(self, probs: np.ndarray) -> np.ndarray:
        self._recent.append(np.asarray(probs, np.float32))
        return np.mean(self._recent, axis=0)

    def reset(self) -> None:
        self._recent.clear()
