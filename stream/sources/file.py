"""Video files, decoded by PyAV: pictures turned upright, times from the frames, and, when
sampled sparsely, only the pictures sampling looks at decoded.

Every file goes through this one decoder, so a clip is analysed the same with or without an
overlay video; OpenCV (kept for webcams and streams) turns pictures by its own rules, can seek
only by a frame number it derives from the reported FPS (wrong on variable-frame-rate files),
and cannot drop frames. Pictures are turned as the container's display matrix says
(`stream.sources.orientation`), the way players show them.

Sampling a film once a second while it runs at 25 fps means decoding 25 frames to analyse one.
With `sparse_every_s`, two things make that cheaper without changing which frames are analysed:
- non-reference frames (most B-frames) before the next sample are dropped by the decoder
  unread: no later frame is decoded from them, so the frames kept are bit-identical;
- where keyframes come more often than samples (`worth_seeking`) and the container's seeks are
  exact (`exact_seeks`: it has an index, as MP4/MKV/WebM/AVI do), the source seeks to the last
  keyframe before the next sample and skips whole GOPs. MPEG-TS/PS have no index: FFmpeg's seeks
  there land near a byte position, often past the frame that is due, so they decode forward
  (dropping non-reference frames). Every seek is checked where it lands: packets before the
  keyframe are passed by undecoded, and one that landed past it reopens the file and demuxes
  forward to it (no decoding), never losing a frame.
Every frame's timestamp still reaches the reader, read from an index of the demuxed packets (one
pass, no decoding), so sampling and time accounting see exactly what sequential decoding gives;
only pictures nobody will look at go undecoded. An overlay video needs every picture, so it is
made with `sparse_every_s=None`: every frame decoded in order, no index.

It runs past 300 lines because the index, the checked seek and the in-order clock are one
decoder's state: split, each part would reach into the others' fields.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from statistics import median

import av
import numpy as np

from stream.errors import BadInputError
from stream.records import VideoInfo
from stream.sources.capture import CaptureBase
from stream.sources.deinterlace import deinterlaced
from stream.sources.mediaclock import FORWARD_FRAMES, TS_DISCONT, Discontinuity, MediaClock
from stream.sources.orientation import UPRIGHT, orientation_of
from stream.sources.urls import mask_text, mask_url

log = logging.getLogger(__name__)

_EPS = 1e-6
URL_TIMEOUT_S = 30.0  # a web server that sends nothing for this long has failed
MIN_SKIP_S = 0.25  # a seek costs a decoder flush; skip less than this by decoding on
DROP_MARGIN_S = 1e-3  # a frame is droppable only if it starts this long before the next sample
# FFmpeg's AVFMT_* flags of a demuxer whose seeks are not exact: timestamps may jump (MPEG-TS/PS),
# or the index is built while reading (raw H.264/HEVC elementary streams).
_INEXACT_SEEK_FLAGS = 0x200 | 0x100  # AVFMT_TS_DISCONT | AVFMT_GENERIC_INDEX


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
    """One demux pass over the video stream (no decoding); BadInputError if timestamps are missing,
    repeat or jump (see stream.sources.mediaclock), where only sequential decoding can be trusted."""
    pts: list[int] = []
    keys: list[int] = []
    try:
        with av.open(str(path), timeout=URL_TIMEOUT_S if "://" in str(path) else None) as container:
            stream = container.streams.video[0]
            jump = _forward_jump(container, stream)
            last_dts: int | None = None
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:  # the end-of-stream flush; edit-list pre-roll
                    continue
                if packet.pts is None:
                    raise BadInputError(f"{path}: packets without timestamps")
                dts = packet.dts if packet.dts is not None else packet.pts
                if last_dts is not None and (dts < last_dts or (jump is not None and dts - last_dts > jump)):
                    raise BadInputError(f"{path}: timestamps jump at pts {packet.pts}")
                last_dts = dts
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
            start, time_base = stream.start_time or 0, stream.time_base
    except (av.FFmpegError, IndexError) as exc:
        raise BadInputError(f"{path}: cannot index frames ({exc})") from None
    if len(set(pts)) != len(pts):
        raise BadInputError(f"{path}: repeated frame timestamps")
    assert time_base is not None  # FFmpeg gives every demuxed stream a time base
    return FrameIndex(sorted(pts), sorted(keys), start, time_base)


def _forward_jump(container, stream) -> int | None:
    """How far apart (in the stream's time base) two frames' timestamps may be before that is a
    jump, for containers whose timestamps may jump; None elsewhere."""
    rate = stream.average_rate or stream.guessed_rate
    if not container.format.flags & TS_DISCONT or not rate:
        return None
    return int(FORWARD_FRAMES / (rate * stream.time_base))


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


def exact_seeks(format_flags: int) -> bool:
    """Whether a demuxer with these AVFMT_* flags seeks to the keyframe asked for (an indexed
    container), not near it."""
    return not format_flags & _INEXACT_SEEK_FLAGS


class _Overshot(Exception):
    """A seek landed past the keyframe it was asked for."""


class FileSource(CaptureBase):
    """A video file. With `sparse_every_s` the reader samples about that often and calls
    `skip_to(next due time)` after each sample; pictures before it are then not decoded, and
    `retrieve` returns None for them (never for a frame the sampler takes). Without it every
    frame is decoded in order."""

    live = False
    reconnectable = False

    def __init__(
        self, path: str | os.PathLike[str], sparse_every_s: float | None = None, threads: int | None = None
    ) -> None:
        self.spec = str(path)  # what FFmpeg opens: a path, or the URL of a recording on a web server
        self.is_url = "://" in self.spec
        self.recording = self.spec  # the crop's look over the whole file opens it again
        self.path = Path(path)
        self.name = mask_url(self.spec)
        self.sparse_every_s = sparse_every_s
        self.threads = threads  # decoder threads; None: half the cores (a batch decodes many files, one core each)
        self.index: FrameIndex | None = None  # built at open() when sampling sparsely
        self.seek = False  # jump to keyframes (sparse only; dropping non-reference frames always is)
        self.seeks = 0
        self.decoded: int = 0  # pictures the decoder returned
        self.orientation = UPRIGHT
        self._container: av.container.InputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._pending: av.VideoFrame | None = None  # decoded, not yet handed out
        self._frame: av.VideoFrame | None = None
        self._next = 0  # position in index.pts
        self._last_t: float | None = None
        self._due_s: float | None = None
        self._resume_pts: int | None = None  # after a seek: frames before this are not decoded
        self._clock = MediaClock()  # decoding in order: timestamps made continuous (set at open)

    def open(self) -> VideoInfo:
        """Open and read the first picture (its display matrix says which way up the file is);
        BadInputError, one line, for anything that is not a playable video."""
        if not self.is_url:
            _check_path(self.path, self.name)
        self._open_container()
        assert self._container is not None  # _open_container raises where it cannot open
        if not self._container.streams.video:
            self.close()
            raise BadInputError(f"{self.name}: contains no video frames (empty or audio-only file)")
        assert self._stream is not None  # set by _open_container when there is a video stream
        rate = self._stream.average_rate or self._stream.guessed_rate
        discont = bool(self._container.format.flags & TS_DISCONT)
        self._clock = MediaClock(1 / float(rate) if rate else None, forward_jumps=discont)
        if self.sparse_every_s:
            self._index(self.sparse_every_s)
        self._frames = self._decode()
        first = self._next_picture()
        if first is None:
            self.close()
            raise BadInputError(f"{self.name}: no video frame could be decoded")
        self._pending = first
        self.orientation = orientation_of(first, dict(self._stream.metadata))
        width, height = self.orientation.size(first.width, first.height)
        rate = self._stream.average_rate
        fps = float(rate) if rate else None
        count = len(self.index.pts) if self.index is not None else self._stream.frames
        return VideoInfo(
            width=width,
            height=height,
            fps=fps if fps and 0.5 <= fps <= 1000 else None,  # only a hint, for the overlay's rate
            frame_count=count or None,
            live=False,
        )

    def _open_container(self) -> None:
        try:
            self._container = av.open(self.spec, timeout=URL_TIMEOUT_S if self.is_url else None)
        except PermissionError:
            raise BadInputError(f"{self.name}: permission denied") from None
        except av.FFmpegError as exc:
            if self.is_url:
                raise BadInputError(f"{self.name}: cannot read ({mask_text(exc.strerror or str(exc))})") from None
            raise BadInputError(f"{self.name}: not a video ({exc.strerror})") from None
        except OSError as exc:
            raise BadInputError(f"{self.name}: cannot read ({exc.strerror})") from None
        if not self._container.streams.video:
            return
        self._stream = self._container.streams.video[0]
        # Frame threads on half the cores: inference needs the rest (on two cores, decoding in one
        # thread costs less CPU in all, and drops more frames: threads decode ahead of `skip_to`).
        self._stream.thread_type = "AUTO"
        self._stream.thread_count = self.threads or max(1, (os.cpu_count() or 2) // 2)

    def _index(self, every_s: float) -> None:
        """Index the packets for sparse decoding; where that cannot be trusted, decode in order."""
        try:
            self.index = index_frames(self.spec)
        except BadInputError as exc:
            log.debug("%s; decoding every frame", mask_text(str(exc)))
            return
        assert self._container is not None  # indexed at open(), after the container opened
        self.seek = worth_seeking(self.index.keyframes_s, every_s) and exact_seeks(self._container.format.flags)
        if self.seek:
            spacing = _spacing(self.index.keyframes_s)
            log.info("%s: seeking keyframes (one every %.1f s, sampling every %g s)", self.name, spacing, every_s)

    def _decode(self, from_pts: int | None = None) -> Iterator[av.VideoFrame]:
        """Decoded pictures in presentation order; packets that start before the next sample may be
        dropped by the decoder if nothing references them. With `from_pts` (after a seek to that
        keyframe) packets before it are passed by undecoded; a seek that landed past it reopens
        the file and demuxes forward to it."""
        try:
            yield from self._decode_from(from_pts)
        except _Overshot:
            log.info("%s: a seek landed past its keyframe; demuxing forward from the start instead", self.name)
            self.seek = False  # this container's seeks cannot be trusted: decode forward from now on
            assert self._container is not None  # decoding: open
            self._container.close()
            self._open_container()
            yield from self._decode_from(from_pts, overshoot_ok=False)

    def _decode_from(self, from_pts: int | None, overshoot_ok: bool = True) -> Iterator[av.VideoFrame]:
        assert self._container is not None and self._stream is not None  # decoding: open
        codec = self._stream.codec_context
        for packet in self._container.demux(self._stream):
            if from_pts is not None:
                if packet.pts is None or packet.pts < from_pts or (packet.pts == from_pts and not packet.is_keyframe):
                    continue  # before the keyframe decoding starts from: nothing needs it
                if packet.pts > from_pts:
                    if overshoot_ok:
                        raise _Overshot
                    continue
                from_pts = None
            droppable = (
                self._due_s is not None  # set only by skip_to, and only when there is an index
                and self.index is not None
                and packet.pts is not None
                and self.index.time(packet.pts) + DROP_MARGIN_S < self._due_s
            )
            codec.skip_frame = "NONREF" if droppable else "DEFAULT"
            try:
                yield from packet.decode()
            except av.FFmpegError as exc:  # a damaged packet: go on, as players do
                log.debug("%s: packet at pts %s not decoded (%s)", self.name, packet.pts, exc)

    def _next_picture(self) -> av.VideoFrame | None:
        """The next decoded picture (the one put back first), or None when there are no more."""
        picture: av.VideoFrame | None
        if self._pending is not None:
            picture, self._pending = self._pending, None
            return picture
        assert self._frames is not None  # set at open()
        try:
            picture = next(self._frames, None)
        except av.FFmpegError as exc:  # damaged past this point: no more pictures
            log.warning("%s: decoding stopped (%s)", self.name, exc)
            self._frames = iter(())
            return None
        if picture is not None:
            self.decoded += 1
        return picture

    def _picture(self, pts: int) -> av.VideoFrame | None:
        """The decoded picture of the frame at `pts`, or None if the decoder dropped or lost it."""
        while (picture := self._next_picture()) is not None:
            found = picture.pts if picture.pts is not None else pts
            if found > pts:  # the decoder is past this frame: it was dropped
                self._pending = picture
                return None
            if found == pts:
                return picture
            # found < pts: a picture the index does not list (or from before a seek); pass it by
        return None

    def grab(self) -> float | None:
        """The next frame's time in seconds from the stream's start (never decreasing), its picture
        decoded if needed; None at the end."""
        if self.index is None:
            return self._grab_in_order()
        if self._next >= len(self.index.pts):
            return None
        pts = self.index.pts[self._next]
        self._next += 1
        self._frame = None
        if self._resume_pts is None or pts >= self._resume_pts:
            self._frame = self._picture(pts)
        self._last_t = self.index.time(pts)
        return self._last_t

    def _grab_in_order(self) -> float | None:
        self._frame = self._next_picture()
        if self._frame is None:
            return None
        pts = self._frame.pts if self._frame.pts is not None else self._frame.dts
        if pts is None:  # no timestamp: the same time as the frame before
            self._last_t = self._last_t if self._last_t is not None else 0.0
            return self._last_t
        # Repeated timestamps keep their time; jumps are made continuous (stream.sources.mediaclock).
        assert self._stream is not None and self._stream.time_base is not None  # a picture was decoded from it
        self._last_t = self._clock(float((pts - (self._stream.start_time or 0)) * self._stream.time_base))
        return self._last_t

    def clock(self) -> float:
        """A file's clock is its media time: where the last grabbed frame starts."""
        return self._last_t or 0.0

    def end_after_s(self, last_t_s: float, interval_s: float | None) -> float:
        """Where the last frame (at `last_t_s`) ends: at the stream's (or container's) stated end
        where there is one just after it, else one frame later (as long as the last interval
        between frames: right for variable rates; the stream's rate for a one-frame video)."""
        stream, container = self._stream, self._container
        rate = (stream.average_rate or stream.guessed_rate) if stream is not None else None
        frame_s = 1 / float(rate) if rate and 0.5 <= float(rate) <= 1000 else interval_s
        fallback = last_t_s + (interval_s or frame_s or 0.0)
        if stream is None or container is None or self.discontinuities or container.format.flags & TS_DISCONT:
            return fallback  # TS/PS durations are estimates from the bitrate
        end: float | None = None
        assert stream.time_base is not None  # FFmpeg gives every demuxed stream a time base
        if stream.duration:
            end = float(stream.duration * stream.time_base)
        elif container.duration:
            start = float((stream.start_time or 0) * stream.time_base)
            end = (container.duration + (container.start_time or 0)) / av.time_base - start
        # A stated end far past the last frame is a file cut short (its header written first), not
        # a long last frame: believed only within two frame durations.
        limit = 2 * max(interval_s or 0.0, frame_s or 0.0)
        if end is not None and last_t_s < end <= last_t_s + limit:
            return end
        return fallback

    @property
    def discontinuities(self) -> Sequence[Discontinuity]:
        """Where the file's timestamps jumped so far (an indexed file has none: it would not be)."""
        return self._clock.discontinuities

    def retrieve(self) -> np.ndarray | None:
        """The grabbed frame's picture, BGR, upright and deinterlaced, or None if it was not decoded."""
        if self._frame is None:
            return None
        return self.orientation.apply(deinterlaced(self._frame).to_ndarray(format="bgr24"))

    def skip_to(self, due_s: float) -> None:
        """The next sample is due at `due_s`: frames before it need no picture. Non-reference ones
        are dropped from here on; with `seek`, decoding jumps to the last keyframe before it if
        that skips frames. Decoding in order, nothing is skipped."""
        if self.index is None:
            return
        self._due_s = due_s
        target = seek_target(self.index.keyframes_s, self._last_t, due_s) if self.seek else None
        if target is None:
            return
        key_pts = self.index.keyframe_pts[bisect.bisect_left(self.index.keyframes_s, target - _EPS)]
        assert self._container is not None  # sampling: open
        self._container.seek(key_pts, stream=self._stream, backward=True)
        self._frames, self._pending, self._resume_pts = self._decode(key_pts), None, key_pts
        self.seeks += 1

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def _check_path(path: Path, name: str) -> None:
    """What the file system already tells: the messages a user can act on without FFmpeg's words."""
    if not path.exists():
        raise BadInputError(f"{name}: no such file")
    if path.is_dir():
        raise BadInputError(f"{name}: is a directory, not a video")
    if path.stat().st_size == 0:
        raise BadInputError(f"{name}: is empty (0 bytes), not a video")
    if not os.access(path, os.R_OK):
        raise BadInputError(f"{name}: permission denied")


def _spacing(keyframes_s: list[float]) -> float:
    return median(b - a for a, b in itertools.pairwise(keyframes_s))
