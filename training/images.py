"""Reading labelled frames from disk exactly as the stream side sees video frames (no TensorFlow),
black bars cut (stream.frames.crop) as the stream cuts them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from stream.errors import BadInputError
from stream.frames.crop import AUTO, NONE, Crop, detect
from stream.frames.preprocess import batch_frames
from training.extract import CROP_JSON

DETECT_FRAMES = 48  # frames of a set, spread over it, that decide its crop when no crop.json says


def read_images(paths: Sequence[Path], crops: Sequence[Crop | None] | Crop | None = None) -> list[np.ndarray]:
    """Read frames as OpenCV decodes video in the stream: BGR, at their own size, with each
    frame's crop (one for all, or one per path) applied."""
    images = []
    for i, path in enumerate(paths):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise BadInputError(f"{path}: not an image OpenCV can read")
        crop = crops[i] if isinstance(crops, Sequence) else crops
        images.append(np.ascontiguousarray(crop.apply(image)) if crop else image)
    return images


def load_images(
    paths: Sequence[Path], size: tuple[int, int], crops: Sequence[Crop | None] | Crop | None = None
) -> np.ndarray:
    """Read frames as OpenCV does in the stream (BGR), crop and resize them the same way."""
    return batch_frames(read_images(paths, crops), size)


def set_crop(directory: Path, paths: Sequence[Path], mode: str | Crop = AUTO) -> Crop | None:
    """One set's crop (each set has its own bars): a fixed one as given; `auto` as `extract`
    recorded it for the video (crop.json), else found from up to DETECT_FRAMES of the frames."""
    if isinstance(mode, Crop):
        return mode
    if mode == NONE or not paths:
        return None
    recorded = Path(directory) / CROP_JSON
    if recorded.is_file():
        area = json.loads(recorded.read_text()).get("area")
        return Crop(**area) if area else None
    step = max(1, len(paths) // DETECT_FRAMES)
    images = [im for im in (cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths[::step]) if im is not None]
    if not images:
        return None
    size = Counter((im.shape[1], im.shape[0]) for im in images).most_common(1)[0][0]
    return detect([im for im in images if (im.shape[1], im.shape[0]) == size])


def path_crops(paths: Sequence[Path], mode: str | Crop = AUTO) -> list[Crop | None]:
    """Each frame's crop, deciding it once per directory (a labelled set, one video)."""
    by_dir: dict[Path, list[Path]] = {}
    for p in paths:
        by_dir.setdefault(Path(p).parent, []).append(Path(p))
    found = {d: set_crop(d, ps, mode) for d, ps in by_dir.items()}
    return [found[Path(p).parent] for p in paths]
