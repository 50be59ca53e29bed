"""How unsure the model is of a frame: the one rule `suggest` and a service's `collect` choose by."""

from __future__ import annotations

import numpy as np


def uncertainty(probs: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """1 - margin, in [0, 1]. Single-label: margin between the two likeliest classes; multi-label:
    the least sure of the independent yes/no decisions (|2p - 1| at its smallest)."""
    if multi_label:
        return 1.0 - np.abs(2.0 * probs - 1.0).min(axis=1)
    top = np.sort(probs, axis=1)
    return 1.0 - (top[:, -1] - top[:, -2])
