"""The live view on the service's own port: `/view` a page of every camera, `/view/NAME.mjpg`
its overlaid picture as MJPEG (the tiles and drawing of `stream.sinks.liveview`).

Each camera's tile is offered its sampled frames only (a fleet decodes nothing extra for a view
nobody may be watching); drawing and encoding happen for viewers, at most `VIEW_FPS` pictures a
second each, once per picture however many watch.
"""

from __future__ import annotations

import asyncio
import html
import threading
from collections.abc import AsyncIterator
from typing import assert_never

from starlette.concurrency import run_in_threadpool

from stream.defaults import VIEW_FPS
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
from stream.sinks.liveview import BOUNDARY, PAGE, POLL_S, Tile


class FleetView(OutputBase):
    """A tile per running camera, by name; a removed camera's tile goes with it."""

    def __init__(self, fps: float = VIEW_FPS) -> None:
        self.interval_s = 1.0 / fps
        self.tiles: dict[str, Tile] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def handle(self, event: Event) -> None:
        match event:
            case Started(tag=tag):
                with self._lock:
                    self.tiles[tag.name] = Tile(tag.name)
            case Sampled(tag=tag, prediction=prediction, frame=frame, stats=stats):
                tile = self.tiles.get(tag.name)
                if tile is not None:
                    tile.label(prediction, dict(stats.totals))
                    if frame.image is not None:
                        tile.offer(frame.image, frame.t_s)
            case Ended(tag=tag):
                with self._lock:
                    gone = self.tiles.pop(tag.name, None)
                if gone is not None:
                    gone.wake()
            case Pictured() | SourceLost() | SourceBack() | ClockJumped() | Checkpoint() | Tick():
                pass
            case _:
                assert_never(event)

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for tile in list(self.tiles.values()):
            tile.wake()

    def page(self) -> str:
        figures = "\n".join(
            f'<figure><img src="/view/{html.escape(name)}.mjpg" alt="{html.escape(name)}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
            for name in sorted(self.tiles)
        )
        return PAGE.format(tiles=figures, fps=f"{1 / self.interval_s:g}")

    async def stream(self, name: str, disconnected) -> AsyncIterator[bytes]:
        """The camera's pictures as MJPEG parts until it is removed, the service stops or the viewer goes."""
        tile = self.tiles.get(name)
        version = 0
        loop = asyncio.get_running_loop()
        due = loop.time()
        while tile is not None and self.tiles.get(name) is tile and not self.stopping.is_set():
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
