"""Backbone features, computed once per frame and cached on disk by the frame's content.

The backbone is frozen, so its output for a frame never changes. The cache is keyed per frame
(content hash, under a key for the backbone's weights, input size, pooled layers and view), not
per list of frames: adding 20 newly labelled frames to a set costs 20 backbone passes, and a
retrain on the old frames plus the new ones takes seconds instead of a full feature pass. A
frame copied, renamed or shared by two sets is computed once.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from rich.progress import Progress

from stream.frames.crop import Crop
from stream.frames.preprocess import fit_frame
from training.images import read_images
from training.model import FEATURE_LAYERS, Backbone, feature_extractor

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    base = os.environ.get("SCREENTIME_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "screentime" / "features"


# Views of a training frame the head learns from. The stream only ever sees "full"; the others are
# augmentations whose features are cached like the originals, so they cost one backbone pass each.
# Each takes a frame as decoded (BGR, any size) and the model's (width, height).
def _recolour(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Another palette: hue turned 10 degrees, saturation 0.75x, a little brighter (another print
    or season of the same show)."""
    hsv = cv2.cvtColor(fit_frame(image, size), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + 5) % 180
    hsv[..., 1] *= 0.75
    hsv[..., 2] = np.minimum(hsv[..., 2] * 1.1 + 8, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


def _other_print(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Another print of the same film: flatter contrast, lifted gamma, faded colour, a softer
    picture and blocky low-quality compression (what archive transfers and web copies do)."""
    small = fit_frame(image, size).astype(np.float32) / 255.0
    small = np.power(np.clip((small - 0.5) * 0.8 + 0.53, 0, 1), 0.85)  # contrast 0.8, a little brighter
    hsv = cv2.cvtColor((small * 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 1] *= 0.7
    faded = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    soft = cv2.GaussianBlur(faded, (0, 0), 0.8)
    ok, data = cv2.imencode(".jpg", soft, [cv2.IMWRITE_JPEG_QUALITY, 25])
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
    return decoded if decoded is not None else soft


def _centre_4_3(image: np.ndarray) -> tuple[int, int]:
    """Columns [x0, x1) of the centred 4:3 part of a wide frame."""
    width = min(image.shape[1], round(image.shape[0] * 4 / 3))
    x0 = (image.shape[1] - width) // 2
    return x0, x0 + width


def _pillarbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame as a 4:3 show looks in a 16:9 picture: the centre kept, black bars either side."""
    x0, x1 = _centre_4_3(image)
    boxed = np.zeros_like(image)
    boxed[:, x0:x1] = image[:, x0:x1]
    return fit_frame(boxed, size)


def _cropped_4_3(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A pillarboxed frame with its bars cropped before resizing: the 4:3 centre, stretched."""
    x0, x1 = _centre_4_3(image)
    return fit_frame(np.ascontiguousarray(image[:, x0:x1]), size)


VIEWS: dict[str, Callable[[np.ndarray, tuple[int, int]], np.ndarray]] = {
    "full": fit_frame,
    "flip": lambda image, size: fit_frame(image, size)[:, ::-1],  # mirrored: a character faces either way
    # Measured by benchmarks/accuracy.py (transfer rows), not used by default:
    "colour": _recolour,
    "print": _other_print,
    "pillarbox": _pillarbox,
    "crop43": _cropped_4_3,
}


def backbone_key(backbone: Backbone, view: str = "full") -> str:
    """Everything besides the frame that decides its features: weights, input size, layers, view."""
    digest = hashlib.sha256(backbone.fingerprint.encode())
    digest.update(f"view:{view}".encode())
    digest.update(repr(backbone.model.input_shape).encode())
    digest.update(repr(FEATURE_LAYERS).encode())  # what is pooled is part of what is cached
    return digest.hexdigest()[:24]


def frame_digest(path: Path) -> str:
    """The frame's content hash: the same picture under another name or set hits the cache."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:32]


class FeatureCache:
    """One small `.npy` file per (backbone key, frame digest); any file may vanish at any time."""

    def __init__(self, key: str, root: Path | None = None) -> None:
        self.directory = (root or cache_dir()) / key
        self.writable = True

    def _path(self, digest: str) -> Path:
        return self.directory / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        try:
            return np.load(self._path(digest))
        except (OSError, ValueError):  # absent, or torn by a crash: recompute
            return None

    def put(self, digest: str, vector: np.ndarray) -> None:
        if not self.writable:
            return
        path = self._path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, vector)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only or full home must not stop training
            log.warning("feature cache not written (%s)", exc)
            self.writable = False


def backbone_features(
    backbone: Backbone,
    paths: Sequence[Path],
    batch_size: int = 16,
    progress: bool = True,
    use_cache: bool = True,
    view: str = "full",
    crops: Sequence[Crop | None] | None = None,
) -> np.ndarray:
    """Pooled feature vectors (N, 1024) for `view` of the frames at `paths`; only frames not
    in the cache go through the backbone. `crops` (one per frame, training.images.path_crops):
    black bars cut before the view; a cropped frame is cached apart from the whole one."""
    return cached_pass(
        backbone,
        lambda: feature_extractor(backbone),
        backbone_key(backbone, view),
        paths,
        batch_size=batch_size,
        progress=progress,
        use_cache=use_cache,
        view=view,
        crops=crops,
        what="backbone features",
    )


def cached_pass(
    backbone: Backbone,
    make_model: Callable[[], object],
    key: str,
    paths: Sequence[Path],
    batch_size: int = 16,
    progress: bool = True,
    use_cache: bool = True,
    view: str = "full",
    crops: Sequence[Crop | None] | None = None,
    what: str = "backbone features",
    dtype: str = "float32",
) -> np.ndarray:
    """One output per frame of the model `make_model()` builds (frames in), for `view` of the
    frames at `paths`, cached per frame under `key`: the pooled features here, the frozen part's
    maps for fine-tuning (training.tune). Only frames not in the cache pass through the model."""
    if not paths:
        return np.zeros((0, 0), dtype)
    transform = VIEWS[view]
    crops = list(crops) if crops is not None else [None] * len(paths)
    digests = [
        frame_digest(p) + (f"-{c.spec.replace(':', 'x')}" if c else "") for p, c in zip(paths, crops, strict=True)
    ]
    cache = FeatureCache(key) if use_cache else None
    found = {d: v for d in set(digests) if cache and (v := cache.get(d)) is not None}
    todo: dict[str, int] = {}  # one backbone pass per distinct picture: digest -> a frame showing it
    for i, d in enumerate(digests):
        if d not in found:
            todo.setdefault(d, i)
    if todo:
        log.info("%s: %d of %d frames not cached", what, len(todo), len(paths))
        indices = list(todo.values())
        size = (backbone.model.input_shape[2], backbone.model.input_shape[1])
        model = make_model()
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(what + ("" if view == "full" else f" ({view})"), total=len(indices))
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                images = np.stack(
                    [
                        transform(image, size)
                        for image in read_images([paths[i] for i in chunk], [crops[i] for i in chunk])
                    ]
                )
                out = np.asarray(model.predict(images.astype(np.float32), verbose=0)).astype(dtype)  # type: ignore[attr-defined]
                for i, vector in zip(chunk, out, strict=True):
                    found[digests[i]] = vector
                    if cache:
                        cache.put(digests[i], vector)
                bar.advance(task, len(chunk))
    return np.stack([found[d] for d in digests])
