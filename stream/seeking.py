"""Keyframe seeking for sparse sampling of files: jump over whole GOPs instead of decoding them.

Sampling a film once every 10 s while it has a keyframe every 2 s means decoding 250 frames
(1080p: most of a second) to analyse one. Seeking to the last keyframe before the next sample and
decoding from there gives the same frame for a fraction of the work. OpenCV can only seek by
frame number, which it derives from the reported FPS, so on variable-frame-rate files it lands on
the wrong frame; this source decodes with PyAV (the FFmpeg OpenCV uses) and seeks by presentation
timestamp, so the samples are the ones sequential decoding gives, on any file.

It is used only where it pays: a file, no overlay video (that needs every frame), and keyframes
closer together than the sampling interval (`worth_seeking`).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
from pathlib import Path
from statistics import median

import av
import numpy as np

from stream.errors import BadInputError
from stream.records import VideoInfo
from stream.sources import FileSource

log = logging.getLogger(__name__)

_EPS = 1e-6
MIN_SKIP_S = 0.25  # a seek costs a decoder flush; skip less than this by decoding on


def keyframe_times(path: str | os.PathLike[str]) -> list[float]:
    """Presentation times (s, from the stream's start) of the video's keyframes: a demux pass, no decoding."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            start = stream.start_time or 0
            times = [
                float((packet.pts - start) * packet.time_base)
                for packet in container.demux(stream)
                if packet.is_keyframe and packet.pts is not None
            ]
    except (av.FFmpegError, IndexError) as exc:
        raise BadInputError(f"{path}: cannot index keyframes ({exc})") from None
    return sorted(times)


def seek_target(keyframes_s: list[float], position_s: float | None, due_s: float) -> float | None:
    """The keyframe to seek to before decoding towards `due_s`, or None to decode on.

    That is the last keyframe at or before `due_s`, if it lies far enough past the frame last
    decoded (`position_s`, None before the first): decoding from it gives the same frames.
    """
    i = bisect.bisect_right(keyframes_s, due_s + _EPS) - 1
    if i < 0:
        return None
    target = keyframes_s[i]
    if position_s is not None and target <= position_s + MIN_SKIP_S:
        return None
    return target


def worth_seeking(keyframes_s: list[float], every_s: float) -> bool:
    """Seeking pays when keyframes typically come more often than samples are taken."""
    return len(keyframes_s) >= 3 and every_s > 0 and _spacing(keyframes_s) < every_s


class SeekingFileSource:
    """A video file decoded by PyAV that jumps to keyframes between sparse samples (`skip_to`)."""

    live = False
    reconnectable = False

    def __init__(self, path: str | os.PathLike[str], keyframes_s: list[float]) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.keyframes_s = keyframes_s
        self.seeks = 0
        self._container = None
        self._stream = None
        self._frames = None
        self._frame: av.VideoFrame | None = None
        self._last_t: float | None = None

    def open(self) -> VideoInfo:
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError) as exc:
            raise BadInputError(f"{self.name}: cannot decode ({exc})") from None
        self._stream.thread_type = "AUTO"  # frame threads: both cores decode
        self._frames = self._container.decode(self._stream)
        rate = self._stream.average_rate
        return VideoInfo(
            width=self._stream.codec_context.width,
            height=self._stream.codec_context.height,
            fps=float(rate) if rate else None,
            frame_count=self._stream.frames or None,
            live=False,
        )

    def grab(self) -> float | None:
        """Decode the next frame (not yet converted to BGR); its timestamp, or None at the end."""
        frame = next(self._frames, None)
        if frame is None:
            return None
        pts = frame.pts if frame.pts is not None else 0
        t_s = float((pts - (self._stream.start_time or 0)) * frame.time_base)
        t_s = t_s if self._last_t is None else max(t_s, self._last_t)  # time never runs backwards
        self._frame, self._last_t = frame, t_s
        return t_s

    def retrieve(self) -> np.ndarray | None:
        return None if self._frame is None else self._frame.to_ndarray(format="bgr24")

    def skip_to(self, due_s: float) -> None:
        """The next sample is due at `due_s`: jump to the last keyframe before it if that skips frames."""
        target = seek_target(self.keyframes_s, self._last_t, due_s)
        if target is None:
            return
        start = self._stream.start_time or 0
        self._container.seek(start + round(target / self._stream.time_base), stream=self._stream, backward=True)
        self._frames = self._container.decode(self._stream)
        self.seeks += 1

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def seeking_source(source, every_s: float, decode_all: bool):
    """`source` itself, or, for an opened file sampled sparsely enough that seeking pays, a
    SeekingFileSource over the same file (the OpenCV capture is closed)."""
    if not isinstance(source, FileSource) or decode_all or every_s <= 0:
        return source
    try:
        keyframes = keyframe_times(source.path)
    except BadInputError as exc:  # OpenCV read it; decoding on without seeking is still right
        log.debug("%s", exc)
        return source
    if not worth_seeking(keyframes, every_s):
        return source
    seeking = SeekingFileSource(source.path, keyframes)
    seeking.open()
    source.close()
    log.info("%s: seeking keyframes (one every %.1f s, sampling every %g s)", source.name, _spacing(keyframes), every_s)
    return seeking


def _spacing(keyframes_s: list[float]) -> float:
    return median(b - a for a, b in itertools.pairwise(keyframes_s))
