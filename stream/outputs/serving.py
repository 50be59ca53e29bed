"""The one HTTP server of the product: uvicorn in a thread, on a socket bound when it is made.

`serve`'s port (the API, `/metrics`, the live view) and `watch --metrics-port` both run on it,
so there is one HTTP stack to harden, log and mask. Binding first makes a taken port bad input
(exit 2) before any camera or source starts; `stop()` joins the thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from stream.errors import BadInputError

CONNECTIONS = 64  # open connections and tasks at once (live view streams included); beyond: 503


class HttpServer:
    """`app` served on `host:port` (0: any free port) from `start()` to `stop()`; `what` names the
    flag or key a taken port is blamed on."""

    def __init__(self, app: ASGIApp, host: str, port: int, what: str, thread: str = "http") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise BadInputError(f"{what}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self.sock.listen(CONNECTIONS)  # a request right after start() waits for uvicorn, it is not refused
        self.host, self.port = host, self.sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            log_config=None,  # uvicorn's lines go through the process's handlers, and so its masking
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=5,
            limit_concurrency=CONNECTIONS,
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._name = thread

    def start(self) -> None:
        def serve() -> None:
            asyncio.run(self.server.serve(sockets=[self.sock]))

        self._thread = threading.Thread(target=serve, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.sock.close()


def metrics_response(registry: CollectorRegistry) -> Response:
    """A Prometheus scrape of `registry`."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def metrics_app(registry: CollectorRegistry) -> Starlette:
    """`/metrics` alone (`watch --metrics-port`)."""

    async def metrics(request: Request) -> Response:
        return metrics_response(registry)

    return Starlette(routes=[Route("/metrics", metrics, methods=["GET"])])
