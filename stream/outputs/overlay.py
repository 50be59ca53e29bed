"""The overlaid output video: every input frame, with the current class and running counters.

Drawing (`annotate`) is a pure function apart from writing. Writing is PyAV: H.264 (libx264,
yuv420p) plays in browsers and common players; OpenCV's own wheels cannot write H.264. Frames
carry their source timestamps as presentation times, so the output keeps the source's rate,
variable or not. Encoding runs in its own thread.

Files get an MP4 with the index at the front (`faststart`): it is written once, at the end, so
the whole file can be indexed. A live source has no end that can be relied on (a power cut, an
OOM kill), and a faststart MP4 holds only its 48-byte header until it is closed, so a live run
writes a fragmented MP4 instead: an empty index up front, then self-describing fragments of about
`KEYFRAME_S` each, flushed to the file as they complete. Whatever is on disk plays; a crash loses
the fragment in progress and nothing before it. Memory holds one fragment, never the run.

A write failure (disk full, permission denied, path gone) is kept, not logged: from then on frames
are discarded without blocking, and `close` raises it as one `OutputError` line.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import assert_never

import av
import cv2
import numpy as np

from stream.defaults import SEGMENT_MINUTES
from stream.errors import OutputError
from stream.model.card import ModelCard
from stream.outputs import events as ev
from stream.outputs.events import Event, OutputBase
from stream.records import Frame, Prediction, VideoInfo

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)
DEFAULT_FPS = 25
KEYFRAME_S = 1.0  # live: at most this much video between keyframes, so per fragment and lost in a crash
FILE_OPTIONS = {"movflags": "+faststart"}
# Live: fragmented MP4 (a fragment per keyframe) or Matroska (a cluster per KEYFRAME_S). FFmpeg's
# I/O layer keeps up to 32 KiB in memory otherwise; flush_packets hands each finished fragment to
# the operating system at once, so it survives the process being killed.
LIVE_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "flush_packets": "1",
}
LIVE_MKV_OPTIONS = {"cluster_time_limit": str(round(KEYFRAME_S * 1000)), "flush_packets": "1"}
_STOP = object()


def annotate(image: np.ndarray, prediction: Prediction | None, totals: dict[str, float]) -> np.ndarray:
    """Draw the current class, its confidence and the running totals on a copy of `image`."""
    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.35, min(1.0, w / 900))
    thick = max(1, round(scale * 2))
    line_h = int(28 * scale) + 6
    lines = [f"{prediction.label.upper()} {prediction.confidence:.0%}" if prediction else "..."]
    lines += [f"{name}: {seconds:.1f} s" for name, seconds in totals.items()]
    box_h = min(h, line_h * len(lines) + 8)
    cv2.rectangle(out, (0, 0), (min(w, int(320 * scale) + 20), box_h), (0, 0, 0), -1)
    for i, text in enumerate(lines):
        color = (0, 255, 255) if i == 0 else (255, 255, 255)
        cv2.putText(out, text, (8, line_h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)
    return out


def pick_codec() -> str:
    """libx264 when PyAV has it (its wheels do), else MPEG-4 Part 2 with a warning."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except Exception:  # codec missing from a custom FFmpeg build
        log.warning("libx264 not available in PyAV; overlay video uses mpeg4 (may not play in browsers)")
        return "mpeg4"


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p halves the chroma planes, so H.264 wants even sides: an odd side gets one more
    row or column (`fit_to`), so the overlay keeps every pixel of the source at its size."""
    return max(2, width + width % 2), max(2, height + height % 2)


def fit_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The picture at the video's size: padded by its own edge pixels to even sides (641x359 ->
    642x360), scaled only if the stream changed size."""
    height, width = image.shape[:2]
    pad_w, pad_h = size[0] - width, size[1] - height
    if 0 <= pad_w <= 1 and 0 <= pad_h <= 1:
        return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_w or pad_h else image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def segment_path(path: Path, number: int) -> Path:
    """OUT.mp4 -> OUT-0001.mp4: numbered so that a directory listing is in recording order."""
    return path.with_name(f"{path.stem}-{number:04d}{path.suffix}")


def describe(exc: BaseException) -> str:
    """One line for the user: errno and its text for I/O errors, never a traceback or FFmpeg's call name."""
    errno, text = getattr(exc, "errno", None), getattr(exc, "strerror", None)
    if isinstance(errno, int) and 0 < errno < 4096 and text:
        return f"[Errno {errno}] {text}"
    lines = (text or str(exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class VideoFile:
    """One open output file: its container and encoder, and the source time its timestamps start at."""

    def __init__(self, path: Path, size: tuple[int, int], rate: Fraction, live: bool, first_t_s: float) -> None:
        self.path = path
        self.live = live
        options = FILE_OPTIONS if not live else LIVE_MKV_OPTIONS if path.suffix.lower() == ".mkv" else LIVE_OPTIONS
        self.container = av.open(str(path), "w", container_options=options)
        try:
            stream = self.container.add_stream(pick_codec(), rate=rate)
            assert isinstance(stream, av.VideoStream)  # a video codec's stream
            self.stream = stream
            self.stream.width, self.stream.height = size
            self.stream.pix_fmt = "yuv420p"
            self.stream.time_base = self.stream.codec_context.time_base = TIME_BASE
            if live:
                self.stream.codec_context.gop_size = max(1, round(rate * KEYFRAME_S))
            if self.stream.name == "libx264":
                # zerolatency: no lookahead or B-frames, so each frame leaves the encoder at once.
                x264: dict[str, object] = {"crf": "23", "preset": "veryfast"}
                self.stream.options = x264 | ({"tune": "zerolatency"} if live else {})
        except BaseException:
            self.container.close()
            raise
        self.first_t_s = first_t_s
        self.last_pts = -1
        self.last_key_t_s: float | None = None

    def write(self, image: np.ndarray, t_s: float) -> None:
        video_frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        video_frame.pts = max(self.last_pts + 1, round((t_s - self.first_t_s) / TIME_BASE))
        video_frame.time_base = TIME_BASE
        # A keyframe by time, not only by count: a live source that delivers fewer frames than it
        # announced (or frames dropped here) would otherwise stretch a fragment over many seconds.
        if self.live and (self.last_key_t_s is None or t_s - self.last_key_t_s >= KEYFRAME_S):
            video_frame.pict_type = av.video.frame.PictureType.I
        self.last_pts = video_frame.pts
        packets = self.stream.encode(video_frame)
        if any(packet.is_keyframe for packet in packets):
            self.last_key_t_s = t_s
        self.container.mux(packets)

    def close(self) -> None:
        """Drain the encoder and write the trailer; the container is closed even if that fails."""
        try:
            self.container.mux(self.stream.encode())
        finally:
            self.container.close()

    def abandon(self) -> None:
        """After a failure: release the file; a second error (the trailer on a full disk) adds nothing."""
        with contextlib.suppress(Exception):
            self.container.close()


class OverlaySink(OutputBase):
    """Writes the overlaid video. Files: every frame, in order, never dropped. Live: drops counted.

    `segment_minutes` > 0 (live only) starts OUT-0001.mp4, OUT-0002.mp4 ... every so many minutes
    of video instead of one OUT.mp4, so a week-long run is many files of a manageable size.
    """

    def __init__(
        self, path: Path, live: bool = False, queue_size: int = 32, segment_minutes: float = SEGMENT_MINUTES
    ) -> None:
        self.path = Path(path)
        self.live = live
        self.segment_s = segment_minutes * 60 if live and segment_minutes > 0 else None
        self.dropped = 0  # live frames the encoder could not keep up with
        self.discarded = 0  # frames not written because writing had failed
        self.written = 0
        self.paths: list[Path] = []  # files started, in order
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._totals: dict[str, float] = {}
        self._current: Prediction | None = None
        self._failed = threading.Event()
        self._error: tuple[Path, BaseException] | None = None

    def handle(self, event: Event) -> None:
        """One source's events (the run attaches it to one)."""
        match event:
            case ev.Started(info=info, card=card):
                self._start(info, card)
            case ev.Sampled(prediction=prediction, stats=stats):
                self._current = prediction
                self._totals = dict(stats.totals)
            case ev.Pictured(frame=frame, prediction=prediction):
                self._frame(frame, prediction)
            case ev.Ended():
                self._close()
            case ev.SourceLost() | ev.SourceBack() | ev.ClockJumped() | ev.Checkpoint() | ev.Tick():
                pass
            case _:
                assert_never(event)

    def _start(self, info: VideoInfo, card: ModelCard) -> None:
        # A live source may not know its size before it connects (0 x 0): the first frame decides then.
        self._size = even_size(info.width, info.height) if info.width and info.height else None
        self._rate = Fraction(info.fps or DEFAULT_FPS).limit_denominator(1001)
        self._totals = {c: 0.0 for c in card.classes}
        self._thread = threading.Thread(target=self._write_loop, name="overlay-writer", daemon=True)
        self._thread.start()

    def _frame(self, frame: Frame, prediction: Prediction | None = None) -> None:
        """Queue one frame; on a live source a full queue drops it (counted) rather than stall."""
        if frame.image is None or self._thread is None:
            return
        if self._failed.is_set():  # nothing more can be written: never make the producer wait for it
            self.discarded += 1
            return
        item = (frame, prediction or self._current, dict(self._totals))
        if self.live:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.dropped += 1
        else:
            self._queue.put(item)  # if the writer fails meanwhile, it drains the queue, so this returns

    def _write_loop(self) -> None:
        out: VideoFile | None = None
        path = self.path
        stopped = False
        try:
            while (item := self._queue.get()) is not _STOP:
                frame, prediction, totals = item
                if out is None or (self.segment_s is not None and frame.t_s - out.first_t_s >= self.segment_s):
                    if out is not None:
                        out.close()
                        out = None
                    path = self.path if self.segment_s is None else segment_path(self.path, len(self.paths) + 1)
                    out = self._open(path, frame)
                image = annotate(frame.image, prediction, totals)
                assert self._size is not None  # set when the first file opened
                if (image.shape[1], image.shape[0]) != self._size:  # odd size, or a stream that changed size
                    image = fit_to(image, self._size)
                out.write(image, frame.t_s)
                self.written += 1
            stopped = True
            closing, out = out, None
            if closing is not None:
                closing.close()
        except BaseException as exc:
            log.debug("overlay video %s failed", path, exc_info=exc)
            self._error = (path, exc)
            self._failed.set()
            if out is not None:
                out.abandon()
            while not stopped and self._queue.get() is not _STOP:  # unblock a producer waiting on a full queue
                pass

    def _open(self, path: Path, frame: Frame) -> VideoFile:
        assert frame.image is not None  # frame() queues only frames with a picture
        if self._size is None:
            height, width = frame.image.shape[:2]
            self._size = even_size(width, height)
        self.paths.append(path)
        return VideoFile(path, self._size, self._rate, self.live, frame.t_s)

    def __exit__(self, *exc: object) -> None:
        self._close()  # nothing left to finish after `Ended`: a no-op then

    def _close(self) -> None:
        """Finish the video; raise `OutputError` (one line, naming the file) if any of it failed to write."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None
        if self._error is not None:
            path, exc = self._error
            raise OutputError(f"overlay video {path}: {describe(exc)}") from exc
        if self.dropped:
            log.warning("overlay video: %d frames dropped (encoder slower than the stream)", self.dropped)
