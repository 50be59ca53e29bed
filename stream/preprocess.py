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


def batch_frames(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Stack frames into the (N, H, W, 3) uint8 tensor the model takes."""
    return np.stack([fit_frame(im, size) for im in images]).astype(np.uint8, copy=False)
