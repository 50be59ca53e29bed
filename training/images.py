"""Reading labelled frames from disk exactly as the stream side sees video frames (no TensorFlow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from stream.errors import BadInputError
from stream.preprocess import batch_frames


def read_images(paths: Sequence[Path]) -> list[np.ndarray]:
    """Read frames as OpenCV decodes video in the stream: BGR, at their own size."""
    images = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise BadInputError(f"{path}: not an image OpenCV can read")
        images.append(image)
    return images


def load_images(paths: Sequence[Path], size: tuple[int, int]) -> np.ndarray:
    """Read frames as OpenCV does in the stream (BGR) and resize them the same way."""
    return batch_frames(read_images(paths), size)
