"""Decode only what sparse sampling needs: dropped non-reference frames and keyframe seeking.

Sampling a film once a second while it runs at 25 fps means decoding 25 frames to analyse one.
Two things make that cheaper without changing which frames are analysed:
- non-reference frames (most B-frames) before the next sample are dropped by the decoder
  unread: no later frame is decoded from them, so the frames kept are bit-identical;
- where keyframes come more often than samples (`worth_seeking`), the source seeks to the last
  keyframe before the next sample and skips whole GOPs.
Every frame's timestamp still reaches the reader, read from an index of the demuxed packets (one
pass, no decoding), so sampling and time accounting see exactly what sequential decoding gives;
only pictures nobody will look at go undecoded. OpenCV can only seek by frame number, which it
derives from the reported FPS (wrong on variable-frame-rate files), and cannot drop frames, so
this source decodes with PyAV (the FFmpeg OpenCV uses).

It is used for files sampled at an interval with no overlay video (that needs every frame).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
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
DROP_MARGIN_S = 1e-3  # a frame is droppable only if it starts this long before the next sample


@dataclass(frozen=True)
class FrameIndex:
    """Every frame's presentation timestamp, and which are keyframes, in presentation order."""

    pts: list[int]  # in `time_base` units, sorted
    keyframe_pts: list[int]
    start: int  # the stream's start time: times count from it
    time_base: Fraction

    def time(self, pts: int) -> float:
        return float((pts - self.start) * self.time_base)

    @cached_property  # asked for after every sample when seeking
    def keyframes_s(self) -> list[float]:
        return [self.time(p) for p in self.keyframe_pts]


def index_frames(path: str | os.PathLike[str]) -> FrameIndex:
    """One demux pass over the video stream (no decoding); BadInputError if timestamps are missing
    or repeat, where only sequential decoding can be trusted."""
    pts: list[int] = []
    keys: list[int] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:  # the end-of-stream flush; edit-list pre-roll
                    continue
                if packet.pts is None:
                    raise BadInputError(f"{path}: packets without timestamps")
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
            start, time_base = stream.start_time or 0, stream.time_base
    except (av.FFmpegError, IndexError) as exc:
        raise BadInputError(f"{path}: cannot index frames ({exc})") from None
    if len(set(pts)) != len(pts):
        raise BadInputError(f"{path}: repeated frame timestamps")
    return FrameIndex(sorted(pts), sorted(keys), start, time_base)


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


class SkippingFileSource:
    """A video file decoded by PyAV, every frame's timestamp given, only the needed pictures decoded.

    After each sample the reader calls `skip_to(next due time)`; until then nothing is dropped.
    `retrieve` returns None for a frame that was not decoded (never one the sampler can take).
    """

    live = False
    reconnectable = False

    def __init__(self, path: str | os.PathLike[str], index: FrameIndex, seek: bool = True) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.index = index
        self.seek = seek  # jump to keyframes; dropping non-reference frames is always on
        self.seeks = 0
        self.decoded = 0  # pictures the decoder returned
        self._container = None
        self._stream = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._pending: av.VideoFrame | None = None  # decoded, not yet reached in the index
        self._frame: av.VideoFrame | None = None
        self._next = 0  # position in index.pts
        self._last_t: float | None = None
        self._due_s: float | None = None
        self._resume_pts: int | None = None  # after a seek: frames before this are not decoded

    def open(self) -> VideoInfo:
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError) as exc:
            raise BadInputError(f"{self.name}: cannot decode ({exc})") from None
        # Frame threads on half the cores: inference needs the rest (on two cores, decoding in one
        # thread costs less CPU in all, and drops more frames: threads decode ahead of `skip_to`).
        self._stream.thread_type = "AUTO"
        self._stream.thread_count = max(1, (os.cpu_count() or 2) // 2)
        self._frames = self._decode()
        rate = self._stream.average_rate
        return VideoInfo(
            width=self._stream.codec_context.width,
            height=self._stream.codec_context.height,
            fps=float(rate) if rate else None,
            frame_count=len(self.index.pts) or None,
            live=False,
        )

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Decoded pictures in presentation order; packets that start before the next sample may be
        dropped by the decoder if nothing references them."""
        codec = self._stream.codec_context
        for packet in self._container.demux(self._stream):
            droppable = (
                self._due_s is not None
                and packet.pts is not None
                and self.index.time(packet.pts) + DROP_MARGIN_S < self._due_s
            )
            codec.skip_frame = "NONREF" if droppable else "DEFAULT"
            try:
                yield from packet.decode()
            except av.FFmpegError as exc:  # a damaged packet: go on, as OpenCV does
                log.debug("%s: packet at pts %s not decoded (%s)", self.name, packet.pts, exc)

    def _picture(self, pts: int) -> av.VideoFrame | None:
        """The decoded picture of the frame at `pts`, or None if the decoder dropped or lost it."""
        while True:
            if self._pending is None:
                try:
                    self._pending = next(self._frames, None)
                except av.FFmpegError as exc:  # damaged past this point: no more pictures
                    log.warning("%s: decoding stopped (%s)", self.name, exc)
                    self._frames = iter(())
                if self._pending is None:
                    return None
                self.decoded += 1
            found = self._pending.pts if self._pending.pts is not None else pts
            if found > pts:  # the decoder is past this frame: it was dropped
                return None
            picture, self._pending = self._pending, None
            if found == pts:
                return picture
            # found < pts: a picture the index does not list (or from before a seek); pass it by

    def grab(self) -> float | None:
        """The next frame's timestamp (its picture decoded if needed), or None at the end."""
        if self._next >= len(self.index.pts):
            return None
        pts = self.index.pts[self._next]
        self._next += 1
        self._frame = None
        if self._resume_pts is None or pts >= self._resume_pts:
            self._frame = self._picture(pts)
        self._last_t = self.index.time(pts)
        return self._last_t

    def retrieve(self) -> np.ndarray | None:
        return None if self._frame is None else self._frame.to_ndarray(format="bgr24")

    def skip_to(self, due_s: float) -> None:
        """The next sample is due at `due_s`: frames before it need no picture. Non-reference ones
        are dropped from here on; with `seek`, decoding jumps to the last keyframe before it if
        that skips frames."""
        self._due_s = due_s
        target = seek_target(self.index.keyframes_s, self._last_t, due_s) if self.seek else None
        if target is None:
            return
        key_pts = self.index.keyframe_pts[bisect.bisect_left(self.index.keyframes_s, target - _EPS)]
        self._container.seek(key_pts, stream=self._stream, backward=True)
        self._frames, self._pending, self._resume_pts = self._decode(), None, key_pts
        self.seeks += 1

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def skipping_source(source, every_s: float, decode_all: bool):
    """`source` itself, or, for an opened file sampled at an interval (and no overlay needing
    every frame), a SkippingFileSource over the same file (the OpenCV capture is closed)."""
    if not isinstance(source, FileSource) or decode_all or every_s <= 0:
        return source
    try:
        index = index_frames(source.path)
        skipping = SkippingFileSource(source.path, index, seek=worth_seeking(index.keyframes_s, every_s))
        skipping.open()
    except BadInputError as exc:  # OpenCV read it; decoding every frame with it is still right
        log.debug("%s", exc)
        return source
    source.close()
    if skipping.seek:
        spacing = _spacing(index.keyframes_s)
        log.info("%s: seeking keyframes (one every %.1f s, sampling every %g s)", source.name, spacing, every_s)
    return skipping


def _spacing(keyframes_s: list[float]) -> float:
    return median(b - a for a, b in itertools.pairwise(keyframes_s))
