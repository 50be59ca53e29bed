"""Black bars (letterbox, pillarbox, both) found and cropped before a frame is resized for the model.

FFmpeg's `cropdetect` is the reference: a line (row or column) belongs to the picture when its
mean luma is above a threshold (24 of 255); the active area is the widest one seen over many
frames (a dark scene shrinks one frame's area, never the union), rounded. Unlike `cropdetect`,
which rounds sizes to 16 for encoders, the area is rounded to even pixels: we keep the picture,
not a codec's block size. A frame that is dark everywhere says nothing and is skipped, and the
area is only cropped once enough frames showed it (`CROP_FRAMES`): one dark scene is not a bar.
The detector starts over when the picture size changes (a camera that reconnects at another size).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

LUMA_THRESHOLD = 24.0  # cropdetect's default `limit` for 8-bit video
CROP_FRAMES = 8  # informative frames needed before bars are cropped
MIN_BAR_PX = 4  # thinner bars than this are left (encoder edge noise, not a format)
AUTO, NONE = "auto", "none"


@dataclass(frozen=True)
class Crop:
    """The active area: `width` x `height` at (`x`, `y`) of a frame of `frame_size` (width, height)."""

    width: int
    height: int
    x: int
    y: int

    @property
    def spec(self) -> str:
        """The `--crop W:H:X:Y` (FFmpeg's crop filter order) that reproduces it."""
        return f"{self.width}:{self.height}:{self.x}:{self.y}"

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The area's pixels (a view; nothing copied); the whole frame if the area does not fit it."""
        if self.x + self.width > image.shape[1] or self.y + self.height > image.shape[0]:
            return image
        return image[self.y : self.y + self.height, self.x : self.x + self.width]

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "x": self.x, "y": self.y}


def parse_crop(text: str) -> str | Crop:
    """`auto`, `none` or `W:H:X:Y`; ValueError (with a one-line reason) for anything else."""
    value = text.strip().lower()
    if value in (AUTO, NONE):
        return value
    match = re.fullmatch(r"(\d+):(\d+):(\d+):(\d+)", value)
    if not match:
        raise ValueError(f"--crop takes auto, none or W:H:X:Y (pixels), got {text!r}")
    w, h, x, y = (int(g) for g in match.groups())
    if w <= 0 or h <= 0:
        raise ValueError(f"--crop {text}: width and height must be positive")
    return Crop(w, h, x, y)


def luma(image: np.ndarray) -> np.ndarray:
    """The frame's luma (BT.601, as cropdetect reads Y), for BGR or grey frames."""
    if image.ndim == 2:
        return image.astype(np.float32)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def frame_area(image: np.ndarray, threshold: float = LUMA_THRESHOLD) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), exclusive ends, of the rows and columns whose mean luma passes the
    threshold in one frame; None for a frame dark everywhere."""
    y = luma(image)
    cols = np.flatnonzero(y.mean(axis=0) > threshold)
    rows = np.flatnonzero(y.mean(axis=1) > threshold)
    if not len(cols) or not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def widest(areas: Iterable[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
    """The union of the areas: what any frame showed is picture."""
    found = list(areas)
    if not found:
        return None
    return min(a[0] for a in found), min(a[1] for a in found), max(a[2] for a in found), max(a[3] for a in found)


def to_crop(area: tuple[int, int, int, int], frame_size: tuple[int, int], min_bar: int = MIN_BAR_PX) -> Crop | None:
    """The area as a crop, to even pixels inward of each bar; None when no side has a bar of
    at least `min_bar` pixels (nothing worth cropping)."""
    width, height = frame_size
    x0, y0, x1, y1 = area
    # Bars thinner than min_bar are kept as picture; the rest are cut, rounded to even pixels.
    x0 = 0 if x0 < min_bar else x0 + (x0 % 2)
    y0 = 0 if y0 < min_bar else y0 + (y0 % 2)
    x1 = width if width - x1 < min_bar else x1 - (x1 % 2)
    y1 = height if height - y1 < min_bar else y1 - (y1 % 2)
    if (x0, y0, x1, y1) == (0, 0, width, height) or x1 - x0 < width // 4 or y1 - y0 < height // 4:
        return None  # no bars, or an "area" too small to be a picture format: leave the frame whole
    return Crop(x1 - x0, y1 - y0, x0, y0)


def detect(images: Iterable[np.ndarray], threshold: float = LUMA_THRESHOLD, min_frames: int = 1) -> Crop | None:
    """The crop of a set of frames of one size (a set of extracted frames, a video's samples)."""
    images = list(images)
    if not images:
        return None
    size = (images[0].shape[1], images[0].shape[0])
    areas = [a for im in images if (im.shape[1], im.shape[0]) == size and (a := frame_area(im, threshold))]
    if len(areas) < min_frames:
        return None
    area = widest(areas)
    return to_crop(area, size) if area else None


class Cropper:
    """Per source: the crop each frame gets before it is resized for the model.

    `auto` learns the area from the frames it is shown (the widest over the first `frames`
    informative ones, cropping nothing until then) and starts over on a new frame size;
    `none` never crops; a fixed `Crop` always applies.
    """

    def __init__(self, mode: str | Crop = AUTO, frames: int = CROP_FRAMES, threshold: float = LUMA_THRESHOLD) -> None:
        self.mode = mode
        self.frames = frames
        self.threshold = threshold
        self._size: tuple[int, int] | None = None
        self._areas: list[tuple[int, int, int, int]] = []
        self._crop: Crop | None = mode if isinstance(mode, Crop) else None

    @property
    def crop(self) -> Crop | None:
        return self._crop

    @property
    def settled(self) -> bool:
        """Whether the crop is decided (always, except `auto` still learning)."""
        return self.mode != AUTO or len(self._areas) >= self.frames

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.mode == NONE:
            return image
        if self.mode == AUTO:
            self._learn(image)
        return self._crop.apply(image) if self._crop else image

    def _learn(self, image: np.ndarray) -> None:
        size = (image.shape[1], image.shape[0])
        if size != self._size:  # first frame, or the source came back at another size
            self._size, self._areas, self._crop = size, [], None
        if len(self._areas) >= self.frames:
            return
        area = frame_area(image, self.threshold)
        if area is None:
            return
        self._areas.append(area)
        if len(self._areas) == self.frames:
            found = widest(self._areas)
            self._crop = to_crop(found, size) if found else None

    def prime(self, images: list[np.ndarray]) -> None:
        """`auto` on a file: decide the crop now from pictures spread over it (`scan_file`)."""
        if self.mode != AUTO or not images:
            return
        size = (images[0].shape[1], images[0].shape[0])
        areas = [a for im in images if (im.shape[1], im.shape[0]) == size and (a := frame_area(im, self.threshold))]
        self._size, self._areas = size, areas
        if areas:
            self._areas = areas + [areas[-1]] * max(0, self.frames - len(areas))  # settled: no more learning
            found = widest(areas)
            self._crop = to_crop(found, size) if found else None

    def describe(self) -> dict:
        """What the report states: the mode and the area cropped (None: the whole frame)."""
        mode = "fixed" if isinstance(self.mode, Crop) else self.mode
        size = list(self._size) if self._size else None  # JSON's own shape: a report reads back equal
        return {"mode": mode, "area": self._crop.to_dict() if self._crop else None, "frame_size": size}


SCAN_FRAMES = 24  # pictures spread over a file that decide its crop before the run starts


def scan_file(path, frames: int = SCAN_FRAMES) -> list[np.ndarray]:
    """About `frames` pictures spread evenly over a video file (seeking to keyframes), so a file's
    crop is decided from all of it before its first sample is classified."""
    from stream.sources.file import FileSource

    source = FileSource(path, sparse_every_s=1.0, threads=1)  # one open: one demux pass for the index
    duration = source.open().duration_s or 0.0
    step = duration / frames if duration > 0 else 1.0
    source.seek = True  # whatever the sampling rate at open suggested: a few pictures far apart
    images: list[np.ndarray] = []
    due = 0.0
    try:
        while len(images) < frames and (t_s := source.grab()) is not None:
            if t_s + 1e-6 < due:
                continue
            image = source.retrieve()
            if image is not None:
                images.append(image)
            due = t_s + step
            source.skip_to(due)
    finally:
        source.close()
    return images
