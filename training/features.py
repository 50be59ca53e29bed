"""Backbone features, computed once per (backbone, frame set) and cached on disk.

The backbone is frozen, so its output for a frame never changes: a second `train` on the same
frames (another seed, more epochs, a different head) skips the expensive part.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from rich.progress import Progress

from stream.preprocess import fit_frame
from training.images import read_images
from training.model import FEATURE_LAYERS, Backbone, feature_extractor

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    base = os.environ.get("SCREENTIME_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "screentime" / "features"


# Views of a training frame the head learns from. The stream only ever sees "full"; the others are
# augmentations whose features are cached like the originals, so they cost one backbone pass each.
# Each takes a frame as decoded (BGR, any size) and the model's (width, height).
VIEWS: dict[str, Callable[[np.ndarray, tuple[int, int]], np.ndarray]] = {
    "full": fit_frame,
    "flip": lambda image, size: fit_frame(image, size)[:, ::-1],  # mirrored: a character faces either way
}


def cache_key(backbone: Backbone, paths: Sequence[Path], view: str = "full") -> str:
    digest = hashlib.sha256(backbone.fingerprint.encode())
    if view != "full":  # keys of unaugmented features stay what they were
        digest.update(f"view:{view}".encode())
    digest.update(repr(backbone.model.input_shape).encode())
    digest.update(repr(FEATURE_LAYERS).encode())  # what is pooled is part of what is cached
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def backbone_features(
    backbone: Backbone,
    paths: Sequence[Path],
    batch_size: int = 16,
    progress: bool = True,
    use_cache: bool = True,
    view: str = "full",
) -> np.ndarray:
    """Pooled feature vectors (N, 1024) for `view` of the frames at `paths`, cached."""
    transform = VIEWS[view]
    path = cache_dir() / f"{cache_key(backbone, paths, view)}.npy"
    if use_cache and path.exists():
        log.info("backbone features from cache %s", path)
        return np.load(path)
    size = (backbone.model.input_shape[2], backbone.model.input_shape[1])
    model = feature_extractor(backbone)
    chunks = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("backbone features" + ("" if view == "full" else f" ({view})"), total=len(paths))
        for start in range(0, len(paths), batch_size):
            chunk = list(paths[start : start + batch_size])
            images = np.stack([transform(image, size) for image in read_images(chunk)])
            chunks.append(model.predict(images.astype(np.float32), verbose=0))
            bar.advance(task, len(chunk))
    features = np.concatenate(chunks)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, features)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only home must not stop training
            log.warning("feature cache not written (%s)", exc)
    return features
