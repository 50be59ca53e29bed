"""Video sources: one class per kind (file, webcam, network), one factory `open_source`.

Files, and recordings on web servers (an http(s) URL with a length, an HLS playlist that ends:
`stream.sources.probe` asks), are decoded by PyAV (`stream.sources.file`); live streams (RTSP, RTMP, UDP/RTP
TS, live HLS, HTTP live and MJPEG) by PyAV too (`stream.sources.network`: it decodes only the frames
sampling needs); webcams, and RTSP with `--rtsp-backend opencv`, by OpenCV here. A URL this
build cannot read is refused before anything starts (`stream.sources.probe.check_scheme`).

A source only grabs and decodes; it never invents frames (no filler, no repeats). Time comes
from the stream's own timestamps (`stream.sources.mediaclock`), so it is right for variable-frame-rate
files and streams whatever FPS they report; OpenCV's sources use the monotonic clock.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from enum import StrEnum
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from stream.defaults import OPEN_TIMEOUT_S, RTSP_TRANSPORT, TIMEOUT_S
from stream.errors import SourceConnectionError, SourceError
from stream.records import VideoInfo
from stream.settings import SourceSettings
from stream.sources.capture import CaptureBase
from stream.sources.file import FileSource
from stream.sources.network import PyAVNetworkSource
from stream.sources.probe import WEB_SCHEMES, UrlKind, check_scheme, web_kind
from stream.sources.urls import mask_text, mask_url


class SourceKind(StrEnum):
    FILE = "file"
    WEBCAM = "webcam"
    NETWORK = "network"


def classify(spec: str) -> SourceKind:
    """A digit string is a webcam index, a URL a network stream (or a recording on a web server:
    see `open_source`), else a file."""
    if spec.isdigit():
        return SourceKind.WEBCAM
    return SourceKind.NETWORK if "://" in spec else SourceKind.FILE


class _LiveSource(CaptureBase):
    """Shared by webcams and network streams: monotonic timestamps from the first frame."""

    live = True
    reconnectable = False

    def __init__(self, name: str) -> None:
        self.name = name
        self._cap: cv2.VideoCapture | None = None
        self._t0: float | None = None

    def _info(self, cap: cv2.VideoCapture) -> VideoInfo:
        return VideoInfo(
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=_sane_fps(cap.get(cv2.CAP_PROP_FPS)),
            frame_count=None,
            live=True,
        )

    def grab(self) -> float | None:
        assert self._cap is not None, "open() first"
        if not self._cap.grab():
            return None
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        return now - self._t0

    def clock(self) -> float:
        """Seconds on this source's clock now (for time that passes without frames)."""
        return 0.0 if self._t0 is None else time.monotonic() - self._t0

    def retrieve(self) -> np.ndarray | None:
        assert self._cap is not None, "open() first"
        ok, image = self._cap.retrieve()
        return image if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class WebcamSource(_LiveSource):
    def __init__(self, index: int) -> None:
        super().__init__(f"webcam {index}")
        self.index = index

    def open(self) -> VideoInfo:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise SourceConnectionError(f"{self.name}: no camera at index {self.index}")
        self._cap = cap
        return self._info(cap)


class NetworkSource(_LiveSource):
    """RTSP/HTTP stream through FFmpeg, with open and read timeouts so no call hangs.

    Opening waits up to `open_timeout_s` for the first decoded picture: a camera sends one only
    at its next keyframe, which can be 10 s away. After that a stream that delivers nothing for
    `timeout_s` counts as lost (for RTSP the socket itself times out after `timeout_s`; OpenCV's
    own read timeout is fixed at open, so it stays the longer limit). A camera that hangs is
    reported as lost, like one that stops sending, so the reader reconnects instead of counting a
    stale picture: a grab that waited out the timeout (OpenCV then hands back the previous
    picture, with a timestamp that still advances), or a stream whose own timestamps stop
    advancing for `timeout_s` (a decoder replaying one frame).
    """

    reconnectable = True

    def __init__(
        self,
        url: str,
        timeout_s: float = TIMEOUT_S,
        rtsp_transport: str = RTSP_TRANSPORT,
        open_timeout_s: float = OPEN_TIMEOUT_S,
    ) -> None:
        super().__init__(mask_url(url))
        self.url = url
        self.set_timeouts(timeout_s, open_timeout_s)
        self.rtsp_transport = rtsp_transport
        self.decoded: int = 0  # pictures decoded: OpenCV's grab decodes every frame, sampled or not
        self._primed_t: float | None = None
        self._reset_hang_watch()

    def _reset_hang_watch(self) -> None:
        """Forget what the hang checks in `grab` learnt about the previous connection."""
        self._pts_seen_advancing = False
        self._last_pts: float | None = None
        self._frozen_since: float | None = None

    def grab(self) -> float | None:
        t_s: float | None
        if self._primed_t is not None:  # the picture open() waited for
            t_s, self._primed_t = self._primed_t, None
            return t_s
        started = time.monotonic()
        t_s = super().grab()
        if t_s is None or self._cap is None:
            return t_s
        self.decoded += 1
        if time.monotonic() - started >= 0.9 * self.timeout_s:
            return None  # the read timed out: what OpenCV returns now is stale
        pts = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if self._last_pts is not None and pts == self._last_pts and self._pts_seen_advancing:
            self._frozen_since = self._frozen_since if self._frozen_since is not None else t_s
            if t_s - self._frozen_since > self.timeout_s:
                return None  # frozen: treated as a dropped stream
        else:
            self._pts_seen_advancing |= self._last_pts is not None and pts != self._last_pts
            self._frozen_since = None
        self._last_pts = pts
        return t_s

    def open(self) -> VideoInfo:
        """Connect and wait for the first decoded picture (SourceConnectionError if none comes)."""
        ms = int(self.open_timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        # No `fflags nobuffer`: it makes FFmpeg drop what it read while probing the stream (~1.2 s),
        # the keyframe a camera sends on connect included, so the first picture waited for the
        # NEXT keyframe (10 s more on a 10 s-GOP camera, at every reconnect). Without it the first
        # pictures are up to the probe's length old; the newest-frame buffer drains them at once.
        options = f"rtsp_transport;{self.rtsp_transport}"
        if self.url.lower().startswith(("rtsp://", "rtsps://")):
            options += f"|timeout;{int(self.timeout_s * 1e6)}"  # socket inactivity, microseconds
        with _ffmpeg_options(options):
            cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise SourceConnectionError(f"{self.name}: cannot connect")
        self._cap = cap
        self._reset_hang_watch()
        if not cap.grab():
            self.close()
            raise SourceConnectionError(f"{self.name}: connected, but no picture within {self.open_timeout_s:g} s")
        self.decoded += 1
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._primed_t = now - self._t0
        self._last_pts = cap.get(cv2.CAP_PROP_POS_MSEC)
        return self._info(cap)


Source = FileSource | WebcamSource | NetworkSource | PyAVNetworkSource


def open_source(spec: str, settings: SourceSettings | None = None) -> Source:
    """Build (not yet open) the source a user's SOURCE argument names, with its settings (its
    timeouts, RTSP transport and backend; `sparse_every_s`: files and PyAV cameras decode only
    what sampling needs). BadInputError for a URL this build cannot read, or a web address that
    says it never will."""
    s = settings or SourceSettings(every_s=0)
    timeout_s, rtsp_transport, open_timeout_s = s.timeout_s, s.rtsp_transport, s.open_timeout_s
    sparse_every_s, rtsp_backend = s.sparse_every_s, s.rtsp_backend
    kind = classify(spec)
    if kind is SourceKind.WEBCAM:
        return WebcamSource(int(spec))
    if kind is SourceKind.NETWORK and spec.lower().startswith("file://"):
        return FileSource(unquote(urlsplit(spec).path), sparse_every_s)  # a local file, written as a URL
    if kind is SourceKind.NETWORK:
        scheme = check_scheme(spec)
        if scheme in WEB_SCHEMES and web_kind(spec) is UrlKind.FILE:
            return FileSource(spec, sparse_every_s)
        if rtsp_backend == "opencv" and scheme in ("rtsp", "rtsps"):
            return NetworkSource(
                spec, timeout_s=timeout_s, rtsp_transport=rtsp_transport, open_timeout_s=open_timeout_s
            )
        return PyAVNetworkSource(
            spec,
            sparse_every_s=sparse_every_s,
            timeout_s=timeout_s,
            rtsp_transport=rtsp_transport,
            open_timeout_s=open_timeout_s,
        )
    return FileSource(spec, sparse_every_s)


_OPTIONS_LOCK = threading.Lock()


@contextlib.contextmanager
def _ffmpeg_options(options: str | None) -> Iterator[None]:
    """OpenCV takes FFmpeg options only from an environment variable, read when a capture opens.

    Set it for this one open and put it back, so a stream's options never leak into a file's
    capture opened later (or in another source's thread: the lock serialises opens).
    """
    key = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
    with _OPTIONS_LOCK:
        previous = os.environ.get(key)
        if options is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = options
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = previous


def _sane_fps(fps: float) -> float | None:
    """Reported FPS, or None when it is 0, NaN or absurd (it is only a hint for output)."""
    return fps if 0.5 <= fps <= 1000 else None


__all__ = [
    "FileSource",
    "NetworkSource",
    "PyAVNetworkSource",
    "Source",
    "SourceError",
    "SourceKind",
    "WebcamSource",
    "classify",
    "mask_text",
    "mask_url",
    "open_source",
]
