"""The live view: each source's overlaid picture in a browser, as MJPEG over HTTP.

A page at `/` shows one tile per source; each tile is an `<img>` on `/stream/<i>.mjpg`
(`multipart/x-mixed-replace`, which every browser plays without a script). Bound to 127.0.0.1
unless asked otherwise: the picture of a camera is not something to publish by default.

The analysis never waits for a viewer. Each sample only swaps a reference to its newest
frame (and the prediction and totals to draw on it); nothing queues. Drawing and JPEG encoding
happen in the HTTP threads, at most `fps` times a second per source and only while someone
watches; viewers of the same source share one encode per frame. A slow viewer misses frames,
it never holds one back.
"""

from __future__ import annotations

import contextlib
import html
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import assert_never

import cv2
import numpy as np

from stream.defaults import VIEW_FPS, VIEW_HOST
from stream.errors import BadInputError
from stream.records import Prediction
from stream.sinks import (
    Checkpoint,
    ClockJumped,
    Ended,
    Event,
    OutputBase,
    Pictured,
    Sampled,
    SourceBack,
    SourceLost,
    Started,
    Tick,
)
from stream.sinks.overlay import annotate

log = logging.getLogger(__name__)

BOUNDARY = "frame"
JPEG_QUALITY = 80
MAX_WIDTH = 1280  # wider pictures are scaled down for the browser (a 4K camera is 2 MB a JPEG)
CLIENT_TIMEOUT_S = 3.0  # a viewer that stops reading (or never sends a request) is dropped after this
POLL_S = 0.25  # how often a waiting viewer's thread looks at the stop event


class Tile:
    """One source's newest picture, and its JPEG once some viewer has asked for it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._fresh = threading.Condition(self._lock)
        self._image: np.ndarray | None = None
        self._t_s = float("-inf")
        self._prediction: Prediction | None = None
        self._totals: dict[str, float] = {}
        self._version = 0  # bumped per new picture: 0 until the first
        self._encoding = threading.Lock()  # guards the two below
        self._jpeg: bytes | None = None
        self._jpeg_version = -1

    def offer(self, image: np.ndarray, t_s: float) -> None:
        """Keep `image` if it is newer than the one held (a sampled frame reaches `update` after
        newer frames reached `frame`); constant time, called on the analysis path."""
        with self._lock:
            if t_s < self._t_s:
                return
            self._image, self._t_s = image, t_s
            self._version += 1
            self._fresh.notify_all()

    def label(self, prediction: Prediction, totals: dict[str, float]) -> None:
        with self._lock:
            self._prediction, self._totals = prediction, totals

    def wake(self) -> None:
        with self._lock:
            self._fresh.notify_all()

    def jpeg(self, after: int, timeout_s: float) -> tuple[bytes, int] | None:
        """The JPEG of a picture newer than version `after` (0: any), waiting up to `timeout_s` for one.

        Drawing and encoding hold only the encoder's lock, never the one `offer` takes, so the
        analysis is not held up while a viewer's picture is made."""
        with self._lock:
            if self._version <= after and not self._fresh.wait_for(lambda: self._version > after, timeout_s):
                return None
            image, version, prediction, totals = self._image, self._version, self._prediction, self._totals
        with self._encoding:
            if self._jpeg is None or self._jpeg_version < version:  # the first viewer to ask encodes; others share it
                assert image is not None  # a version above `after` (>= 0) comes only from offer(image)
                data = encode(annotate(image, prediction, totals))
                if data is None:
                    return None
                self._jpeg, self._jpeg_version = data, version
            return self._jpeg, self._jpeg_version


def encode(image: np.ndarray) -> bytes | None:
    """JPEG for the browser, scaled down to `MAX_WIDTH` if wider."""
    if image.shape[1] > MAX_WIDTH:
        height = round(image.shape[0] * MAX_WIDTH / image.shape[1])
        image = cv2.resize(image, (MAX_WIDTH, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return data.tobytes() if ok else None


class LiveView(OutputBase):
    """The HTTP server of the live view, one for the run.

    It listens from construction, so a port in use fails before any work; it serves while the
    run is open, and closing it (the run's end, whatever happened) joins every thread it started.
    """

    def __init__(self, port: int, host: str = VIEW_HOST, fps: float = VIEW_FPS) -> None:
        if fps <= 0:
            raise BadInputError("--view-fps must be > 0")
        self.tiles: list[Tile] = []  # one per source, in the order added; `/stream/<i>.mjpg` is tile i
        self.interval_s = 1.0 / fps
        self.stopping = threading.Event()
        try:
            self.server = _Server((host, port), _handler(self))
        except OSError as exc:
            raise BadInputError(f"--view-port {port}: cannot listen on {host} ({exc.strerror or exc})") from None
        self.server.daemon_threads = False  # so server_close() joins the viewers' threads: nothing left hanging
        self.server.block_on_close = True
        self._lock = threading.Lock()
        self._tile_of: dict[int, Tile] = {}  # source key -> its tile
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        assert isinstance(host, str)  # an IP server's address; bytes only for AF_UNIX
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/"

    def __enter__(self) -> LiveView:
        with self._lock:
            if self._thread is None and not self.stopping.is_set():
                self._thread = threading.Thread(target=self.server.serve_forever, name="liveview", daemon=True)
                self._thread.start()
                log.info("live view: %s", self.url)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def handle(self, event: Event) -> None:
        match event:
            case Started(tag=tag):  # a tile that stays (with its last picture) after the source has ended
                with self._lock:
                    self._tile_of[tag.key] = tile = Tile(tag.source)
                    self.tiles.append(tile)
            case Sampled(tag=tag, prediction=prediction, frame=frame, stats=stats):
                tile = self._tile_of[tag.key]
                tile.label(prediction, stats.totals)
                if frame.image is not None:
                    tile.offer(frame.image, frame.t_s)
            case Pictured(tag=tag, frame=frame):
                if frame.image is not None and tag.key in self._tile_of:
                    self._tile_of[tag.key].offer(frame.image, frame.t_s)
            case SourceLost() | SourceBack() | ClockJumped() | Checkpoint() | Tick() | Ended():
                pass
            case _:
                assert_never(event)

    def close(self) -> None:
        """Stop serving, end every viewer's stream and join their threads (idempotent)."""
        with self._lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
            thread, self._thread = self._thread, None
        for tile in self.tiles:
            tile.wake()
        if thread is not None:
            self.server.shutdown()
            thread.join()
        self.server.server_close()

    def page(self) -> bytes:
        tiles = "\n".join(
            f'<figure><img src="/stream/{i}.mjpg" alt="{html.escape(t.name)}">'
            f"<figcaption>{html.escape(t.name)}</figcaption></figure>"
            for i, t in enumerate(self.tiles)
        )
        return PAGE.format(tiles=tiles, fps=f"{1 / self.interval_s:g}").encode()

    def stream(self, handler: BaseHTTPRequestHandler, tile: Tile) -> None:
        """Send `tile`'s pictures as they come, at most one per interval, until the run ends or the viewer goes."""
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-cache, no-store")
        handler.end_headers()
        version = 0  # none sent yet
        due = time.monotonic()
        while not self.stopping.is_set():
            wait_s = due - time.monotonic()
            if wait_s > 0 and self.stopping.wait(wait_s):
                break
            got = tile.jpeg(version, POLL_S)
            if got is None:
                continue
            data, version = got
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
            handler.wfile.write(head.encode() + data + b"\r\n")
            handler.wfile.flush()
            due = max(due + self.interval_s, time.monotonic())


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """One log line, not socketserver's traceback on stderr: a viewer's failure is not the run's."""
        log.warning("live view: a viewer's request failed", exc_info=log.isEnabledFor(logging.DEBUG))


def _handler(view: LiveView) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT_S
        server_version = "screentime"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                body = view.page()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            index = _stream_index(path, len(view.tiles))
            if index is None:
                self.send_error(404)
                return
            with contextlib.suppress(ConnectionError, TimeoutError):  # the viewer went away or stopped reading
                view.stream(self, view.tiles[index])

        def log_message(self, format: str, *args) -> None:
            log.debug("live view %s: %s", self.address_string(), format % args)

    return Handler


def _stream_index(path: str, tiles: int) -> int | None:
    """`/stream/3.mjpg` -> 3 when there is such a tile."""
    prefix, suffix = "/stream/", ".mjpg"
    if not (path.startswith(prefix) and path.endswith(suffix)):
        return None
    number = path[len(prefix) : -len(suffix)]
    if not number.isdigit() or int(number) >= tiles:
        return None
    return int(number)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>screentime live view</title>
<style>
body {{ margin: 0; padding: 12px; background: #111; color: #ddd; font: 14px system-ui, sans-serif; }}
main {{ display: grid; gap: 12px; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); }}
figure {{ margin: 0; background: #000; }}
img {{ display: block; width: 100%; height: auto; min-height: 120px; }}
figcaption {{ padding: 4px 8px; overflow-wrap: anywhere; }}
</style>
</head>
<body>
<main>
{tiles}
</main>
<p>screentime · at most {fps} frames a second per camera</p>
</body>
</html>
"""
