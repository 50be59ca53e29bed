"""The live view: each source's overlaid picture in a browser, as MJPEG over HTTP.

One view for `watch --view-port` and `serve`, on the product's one HTTP stack (`stream.outputs.serving`):
a page shows one tile per source, each an `<img>` on an MJPEG stream (`multipart/x-mixed-replace`,
which every browser plays without a script). `watch` serves it on its own port (the page at `/`,
tile i at `/stream/i.mjpg`, bound to 127.0.0.1 unless asked otherwise: the picture of a camera is
not something to publish by default); `serve` mounts it on the service's port (`/view`, a camera
at `/view/NAME.mjpg`; a camera that leaves takes its tile with it).

The analysis never waits for a viewer. Each sample only swaps a reference to its newest
frame (and the prediction and totals to draw on it); nothing queues. Drawing and JPEG encoding
happen in the HTTP threads, at most `fps` times a second per source and only while someone
watches; viewers of the same source share one encode per frame. A slow viewer misses frames,
it never holds one back.
"""

from __future__ import annotations

import asyncio
import html
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import assert_never
from urllib.parse import quote

import cv2
import numpy as np

from stream.defaults import VIEW_FPS, VIEW_HOST
from stream.errors import BadInputError
from stream.outputs import events as ev
from stream.outputs.events import Event, OutputBase
from stream.outputs.overlay import annotate
from stream.records import Prediction

log = logging.getLogger(__name__)

BOUNDARY = "frame"
JPEG_QUALITY = 80
MAX_WIDTH = 1280  # wider pictures are scaled down for the browser (a 4K camera is 2 MB a JPEG)
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
        self.viewers = 0  # streams open on it now (a cluster's camera sends pictures only while watched)

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
    """Every source's tile, fed by the run's events; served by `routes()`.

    `by_name`: tiles are named by the source's name (a fleet's cameras: `/view/NAME.mjpg`) and
    leave with their source; otherwise they are numbered in the order the sources started and stay
    (with their last picture) after it has ended. `port`: serve the view on its own port (`watch`),
    bound now, so a port in use is bad input before any work, and closed with the run.
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = VIEW_HOST,
        fps: float = VIEW_FPS,
        by_name: bool = False,
    ) -> None:
        if fps <= 0:
            raise BadInputError("--view-fps must be > 0")
        self.interval_s = 1.0 / fps
        self.by_name = by_name
        self.tiles: dict[str, Tile] = {}  # by URL id, in the order added
        self._of_key: dict[int, Tile] = {}  # source key -> its tile
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = None
        if port is not None:
            from starlette.applications import Starlette

            from stream.outputs.serving import HttpServer

            app = Starlette(routes=self.routes(page="/", streams="/stream"))
            self._server = HttpServer(app, host, port, f"--view-port {port}", thread="liveview")

    @property
    def port(self) -> int:
        assert self._server is not None, "a view mounted on another server has no port of its own"
        return self._server.port

    @property
    def host(self) -> str:
        assert self._server is not None
        return self._server.host

    @property
    def url(self) -> str:
        return f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.port}/"

    def __enter__(self) -> LiveView:
        if self._server is not None and not self.stopping.is_set():
            self._server.start()
            log.info("live view: %s", self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, event: Event) -> None:
        match event:
            case ev.Started(tag=tag):
                with self._lock:
                    tile = Tile(tag.name if self.by_name else tag.source)
                    self.tiles[tag.name if self.by_name else str(len(self.tiles))] = tile
                    self._of_key[tag.key] = tile
            case ev.Sampled(tag=tag, prediction=prediction, frame=frame, stats=stats):
                tile = self._of_key[tag.key]
                tile.label(prediction, dict(stats.totals))
                if frame.image is not None:
                    tile.offer(frame.image, frame.t_s)
            case ev.Pictured(tag=tag, frame=frame):
                if frame.image is not None and tag.key in self._of_key:
                    self._of_key[tag.key].offer(frame.image, frame.t_s)
            case ev.Ended(tag=tag):
                if self.by_name:
                    with self._lock:
                        gone = self._of_key.pop(tag.key, None)
                        self.tiles = {k: t for k, t in self.tiles.items() if t is not gone}
                    if gone is not None:
                        gone.wake()
            case ev.SourceLost() | ev.SourceBack() | ev.ClockJumped() | ev.Checkpoint() | ev.Tick():
                pass
            case _:
                assert_never(event)

    def close(self) -> None:
        """Stop serving, end every viewer's stream and join the server's thread (idempotent)."""
        with self._lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
        for tile in list(self.tiles.values()):
            tile.wake()
        if self._server is not None:
            self._server.stop()

    def page(self, streams: str) -> str:
        figures = "\n".join(
            f'<figure><img src="{streams}/{quote(key, safe="")}.mjpg" alt="{html.escape(t.name)}">'
            f"<figcaption>{html.escape(t.name)}</figcaption></figure>"
            for key, t in list(self.tiles.items())
        )
        return PAGE.format(tiles=figures, fps=f"{1 / self.interval_s:g}")

    async def stream(self, key: str, disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
        """The tile's pictures as MJPEG parts, at most one per interval, until its source leaves,
        the view stops or the viewer goes; a slow viewer misses pictures, it never holds one back."""
        from starlette.concurrency import run_in_threadpool

        tile = self.tiles.get(key)
        version = 0  # none sent yet
        loop = asyncio.get_running_loop()
        due = loop.time()
        if tile is None:
            return
        tile.viewers += 1  # only this event loop's thread changes it
        try:
            while self.tiles.get(key) is tile and not self.stopping.is_set():
                if await disconnected():
                    return
                await asyncio.sleep(max(0.0, due - loop.time()))
                got = await run_in_threadpool(tile.jpeg, version, POLL_S)
                if got is None:
                    continue
                data, version = got
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                yield head.encode() + data + b"\r\n"
                due = max(due + self.interval_s, loop.time())
        finally:
            tile.viewers -= 1

    def watched(self, key: str) -> bool:
        """Whether someone is watching the tile `key` now."""
        tile = self.tiles.get(key)
        return tile is not None and tile.viewers > 0

    def routes(self, page: str, streams: str) -> list:
        """The page at `page`, each tile at `streams/ID.mjpg` (404 for no such tile)."""
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        async def show(request: Request) -> Response:
            return HTMLResponse(self.page(streams))

        async def pictures(request: Request) -> Response:
            key = request.path_params["key"]
            if key not in self.tiles:
                return JSONResponse({"error": "no such source"}, 404)
            return StreamingResponse(
                self.stream(key, request.is_disconnected),
                media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                headers={"Cache-Control": "no-cache, no-store"},
            )

        return [
            Route(page, show, methods=["GET"]),
            Route(f"{streams}/{{key:path}}.mjpg", pictures, methods=["GET"]),
        ]


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
