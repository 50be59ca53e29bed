"""The overlaid output video: every input frame, with the current class and running counters.

Drawing (`annotate`) is a pure function apart from writing. Writing is PyAV: H.264 (libx264,
yuv420p, MP4 with the index at the front) plays in browsers and common players; OpenCV's own
wheels cannot write H.264. Frames carry their source timestamps as presentation times, so the
output keeps the source's rate, variable or not. Encoding runs in its own thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from stream.modelcard import ModelCard
from stream.records import Frame, Prediction, VideoInfo
from stream.report import Report
from stream.sinks import BaseSink

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)
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


class OverlaySink(BaseSink):
    """Writes the overlaid video. Files: every frame, in order, never dropped. Live: drops counted."""

    def __init__(self, path: Path, live: bool = False, queue_size: int = 32) -> None:
        self.path = path
        self.live = live
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._totals: dict[str, float] = {}
        self._current: Prediction | None = None
        self._error: BaseException | None = None

    def start(self, info: VideoInfo, card: ModelCard) -> None:
        self._size = (info.width - info.width % 2, info.height - info.height % 2)
        self._rate = Fraction(info.fps or 25).limit_denominator(1001)
        self._totals = {c: 0.0 for c in card.classes}
        self._thread = threading.Thread(target=self._write_loop, name="overlay-writer", daemon=True)
        self._thread.start()

    def update(self, prediction: Prediction, frame: Frame, stats) -> None:
        self._current = prediction
        self._totals = dict(stats.totals)

    def frame(self, frame: Frame, prediction: Prediction | None = None) -> None:
        """Queue one frame; on a live source a full queue drops it (counted) rather than stall."""
        if frame.image is None or self._thread is None:
            return
        item = (frame, prediction or self._current, dict(self._totals))
        if self.live:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.dropped += 1
        else:
            self._queue.put(item)

    def _write_loop(self) -> None:
        container = None
        try:
            container = av.open(str(self.path), "w", options={"movflags": "+faststart"})
            stream = container.add_stream(pick_codec(), rate=self._rate)
            stream.width, stream.height = self._size
            stream.pix_fmt = "yuv420p"
            stream.time_base = stream.codec_context.time_base = TIME_BASE
            if stream.name == "libx264":
                stream.options = {"crf": "23", "preset": "veryfast"}
            first_t: float | None = None
            last_pts = -1
            while (item := self._queue.get()) is not _STOP:
                frame, prediction, totals = item
                image = annotate(frame.image, prediction, totals)
                if (image.shape[1], image.shape[0]) != self._size:  # odd size, or a stream that changed size
                    image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
                first_t = frame.t_s if first_t is None else first_t
                video_frame = av.VideoFrame.from_ndarray(image, format="bgr24")
                video_frame.pts = max(last_pts + 1, round((frame.t_s - first_t) / TIME_BASE))
                video_frame.time_base = TIME_BASE
                last_pts = video_frame.pts
                container.mux(stream.encode(video_frame))
                self.written += 1
            container.mux(stream.encode())
        except BaseException as exc:
            self._error = exc
            while self._queue.get() is not _STOP:  # keep the producer from blocking forever
                pass
        finally:
            if container is not None:
                container.close()

    def close(self, report: Report | None) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None
        if self._error is not None:
            log.error("overlay video %s failed: %s", self.path, self._error)
        elif self.dropped:
            log.warning("overlay video: %d frames dropped (encoder slower than the stream)", self.dropped)
