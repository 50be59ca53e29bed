"""What can be set for one source, in one frozen record validated once at the edge.

`watch`'s flags and keywords (`stream.options`), the fleet's camera config (`stream.fleet.config`)
and `batch` each build a `SourceSettings`; the run hands it down unchanged to the source, the
pipeline and the reader. A new per-source option is one field here (its default in
`stream.defaults`, its bound in `check`), one flag in `stream.options.WATCH_OPTIONS` and one key
in the fleet's schema; nothing forwards loose keywords through the layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stream.defaults import (
    BATCH_SIZE,
    CHECKPOINT_S,
    CROP,
    EVERY_S,
    OPEN_TIMEOUT_S,
    RTSP_BACKEND,
    RTSP_BACKENDS,
    RTSP_TRANSPORT,
    TIMEOUT_S,
)
from stream.errors import BadInputError
from stream.frames.crop import Crop, parse_crop
from stream.frames.preprocess import SKIP_SIMILAR_DEFAULT
from stream.sources.reconnect import ReconnectPolicy

RTSP_TRANSPORTS = ("tcp", "udp")


@dataclass(frozen=True)
class SourceSettings:
    """One source's settings; `__post_init__` refuses a bad one with a line naming the flag."""

    every_s: float = EVERY_S  # seconds between analysed frames (0: every frame)
    duration_s: float | None = None  # stop after this long (media time for files, wall clock live)
    batch_size: int = BATCH_SIZE  # sampled frames per model call (files; live sources take one at a time)
    max_reconnects: int | None = None  # a live source's failed reconnects before giving up; None: never
    rtsp_transport: str = RTSP_TRANSPORT
    rtsp_backend: str = RTSP_BACKEND  # pyav: decode only what sampling needs; opencv: every frame
    timeout_s: float = TIMEOUT_S  # seconds without a frame before a stream counts as lost
    open_timeout_s: float = OPEN_TIMEOUT_S  # seconds to wait for a stream's first picture
    checkpoint_s: float = CHECKPOINT_S  # seconds between reports handed to the outputs while it runs
    smoothing: int | None = None  # samples averaged per verdict; None: the model's default
    skip_similar: float = SKIP_SIMILAR_DEFAULT  # reuse the last result when a frame differs by less
    crop: Crop | str = CROP  # "auto", "none" or a fixed area: black bars cut before the model sees a frame
    every_frame: bool = False  # its own outputs need every decoded frame (an overlay video)
    view_every_s: float | None = None  # live: also a picture this often between samples (the live view)

    def __post_init__(self) -> None:
        if isinstance(self.crop, str):
            try:
                object.__setattr__(self, "crop", parse_crop(self.crop))
            except ValueError as exc:
                raise BadInputError(str(exc)) from None
        check(self)

    @property
    def sparse_every_s(self) -> float | None:
        """How often it is sampled when nothing needs every frame (files and PyAV cameras then
        decode only what sampling needs): the one rule "decode sparsely unless an output needs all"."""
        return self.every_s if not self.every_frame and self.every_s > 0 else None

    @property
    def reconnect(self) -> ReconnectPolicy:
        return ReconnectPolicy(max_attempts=self.max_reconnects)


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def check(s: SourceSettings) -> None:
    """Each bound once, named by the `watch` flag a person would fix."""
    rules = [
        (_finite(s.every_s) and s.every_s >= 0, "--every must be >= 0"),
        (s.duration_s is None or (_finite(s.duration_s) and s.duration_s > 0), "--duration must be > 0"),
        (s.batch_size >= 1, "--batch-size must be >= 1"),
        (s.max_reconnects is None or s.max_reconnects >= 0, "--max-reconnects must be >= 0"),
        (s.rtsp_transport in RTSP_TRANSPORTS, f"--rtsp-transport must be one of {', '.join(RTSP_TRANSPORTS)}"),
        (s.rtsp_backend in RTSP_BACKENDS, f"--rtsp-backend must be one of {', '.join(RTSP_BACKENDS)}"),
        (_finite(s.timeout_s) and s.timeout_s > 0, "--timeout must be > 0"),
        (_finite(s.open_timeout_s) and s.open_timeout_s > 0, "--open-timeout must be > 0"),
        (_finite(s.checkpoint_s) and s.checkpoint_s > 0, "--checkpoint must be > 0"),
        (s.smoothing is None or s.smoothing >= 0, "--smooth must be >= 0"),
        (_finite(s.skip_similar) and s.skip_similar >= 0, "--skip-similar must be >= 0"),
        (s.view_every_s is None or (_finite(s.view_every_s) and s.view_every_s > 0), "--view-fps must be > 0"),
    ]
    for ok, problem in rules:
        if not ok:
            raise BadInputError(problem)
