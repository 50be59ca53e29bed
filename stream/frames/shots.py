"""When two frames are one shot: tiny grey thumbnails that barely differ.

The labeller walks a shot as one run of frames, `suggest` never offers two frames of one shot, and
a service's `collect` never saves two; all use this one definition (here in stream/, TF-free).
"""

from __future__ import annotations

import cv2
import numpy as np

SAME_SHOT = 6.0  # mean |difference| (0..255) of 16x16 grey thumbnails below which two frames are one shot


def signature(image: np.ndarray) -> np.ndarray:
    """16x16 grey thumbnail (float32) of a BGR or grey frame."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)


def same_shot(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.abs(a - b).mean()) <= SAME_SHOT


def same_shot_as(signatures: np.ndarray, i: int) -> np.ndarray:
    """(N,) mask of the frames in the same shot as frame i; `signatures` (N, 16, 16) or (N, 256)."""
    flat = signatures.reshape(len(signatures), -1)
    return np.abs(flat - flat[i]).mean(axis=1) <= SAME_SHOT
