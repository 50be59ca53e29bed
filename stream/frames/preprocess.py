"""The one resize used by training, export calibration and the stream, so they cannot disagree."""

from __future__ import annotations

import cv2
import numpy as np


def fit_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a BGR uint8 frame to the model's (width, height); area filter when shrinking."""
    width, height = size
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = image.shape[1] > width or image.shape[0] > height
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


THUMB_SIZE = (32, 18)
# Mean grey levels on the thumbnail under which a sample reuses the last result. On the Tom and
# Jerry video it saves about a tenth of the inferences and changes no screen-time total
# (benchmarks/speed.py measures both).
SKIP_SIMILAR_DEFAULT = 0.3


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A 32x18 grey copy (of the model's input): enough to tell a held drawing from a new one."""
    grey = cv2.cvtColor(cv2.resize(image, THUMB_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return grey.astype(np.float32)


def near_duplicate(a: np.ndarray | None, b: np.ndarray | None, threshold: float) -> bool:
    """Mean absolute grey-level difference of two thumbnails under `threshold` (0 disables)."""
    if threshold <= 0 or a is None or b is None:
        return False
    return float(np.mean(np.abs(a - b))) < threshold


def batch_frames(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Stack frames into the (N, H, W, 3) uint8 tensor the model takes."""
    return np.stack([fit_frame(im, size) for im in images]).astype(np.uint8, copy=False)
