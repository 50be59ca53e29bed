"""The service's one HTTP port (starlette on uvicorn): the JSON API and `/metrics`.

    GET    /api/cameras          every camera: state, today's totals, latest sample
    GET    /api/cameras/NAME
    POST   /api/cameras          {"name": ..., "url": ..., other camera keys}: added to the file
    DELETE /api/cameras/NAME     removed from the file
    POST   /api/reload           the file read again
    GET    /metrics              Prometheus
    GET    /view                 the live view: every camera's overlaid picture
    GET    /view/NAME.mjpg       one camera's, MJPEG

Changes through the API are changes to the config file (written atomically), so a restart
keeps them. With a token (required beyond loopback) every request needs
`Authorization: Bearer TOKEN`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import threading

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from stream.errors import BadInputError, ScreentimeError
from stream.sinks.liveview import BOUNDARY

log = logging.getLogger(__name__)


def build_app(service) -> Starlette:
    def authorised(request: Request) -> bool:
        token = service.config.token
        if not token:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    def guarded(handler):
        async def endpoint(request: Request) -> Response:
            if not authorised(request):
                return JSONResponse(
                    {"error": "missing or wrong bearer token"}, 401, headers={"WWW-Authenticate": "Bearer"}
                )
            try:
                return await handler(request)
            except ScreentimeError as exc:
                return JSONResponse({"error": str(exc)}, 400)

        return endpoint

    async def cameras(request: Request) -> Response:
        return JSONResponse([service.describe(name) for name in list(service.members)])

    async def camera(request: Request) -> Response:
        found = service.describe(request.path_params["name"])
        return JSONResponse(found) if found is not None else JSONResponse({"error": "no such camera"}, 404)

    async def add(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise BadInputError('the body must be JSON: {"name": ..., "url": ...}') from None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise BadInputError('the body must be a JSON object with a "name"')
        name = body.pop("name")

        def change(raw: dict) -> None:
            cams = raw.setdefault("cameras", {}) or {}
            raw["cameras"] = cams
            if name in cams:
                raise _Conflict(f"camera {name!r} exists (DELETE it first, or edit the file)")
            cams[name] = body

        try:
            changes = await run_in_threadpool(service.edit, change)
        except _Conflict as exc:
            return JSONResponse({"error": str(exc)}, 409)
        return JSONResponse({"changes": changes, "camera": service.describe(name)}, 201)

    async def delete(request: Request) -> Response:
        name = request.path_params["name"]

        def change(raw: dict) -> None:
            if name not in (raw.get("cameras") or {}):
                raise _Missing(name)
            del raw["cameras"][name]

        try:
            changes = await run_in_threadpool(service.edit, change)
        except _Missing:
            return JSONResponse({"error": "no such camera"}, 404)
        return JSONResponse({"changes": changes})

    async def reload(request: Request) -> Response:
        return JSONResponse({"changes": await run_in_threadpool(service.reload)})

    async def view_page(request: Request) -> Response:
        return HTMLResponse(service.view.page())

    async def view_stream(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in service.view.tiles:
            return JSONResponse({"error": "no such camera"}, 404)
        return StreamingResponse(
            service.view.stream(name, request.is_disconnected),
            media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={"Cache-Control": "no-cache, no-store"},
        )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/api/cameras", guarded(cameras), methods=["GET"]),
            Route("/api/cameras", guarded(add), methods=["POST"]),
            Route("/api/cameras/{name}", guarded(camera), methods=["GET"]),
            Route("/api/cameras/{name}", guarded(delete), methods=["DELETE"]),
            Route("/api/reload", guarded(reload), methods=["POST"]),
            Route("/metrics", guarded(metrics), methods=["GET"]),
            Route("/view", guarded(view_page), methods=["GET"]),
            Route("/view/{name}.mjpg", guarded(view_stream), methods=["GET"]),
        ]
    )


class _Conflict(ScreentimeError):
    pass


class _Missing(ScreentimeError):
    pass


class HttpServer:
    """uvicorn in a thread on a socket bound here (a taken port is bad input before any camera starts)."""

    def __init__(self, service, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise BadInputError(f"http {host}:{port}: {exc.strerror or exc}") from None
        self.host, self.port = host, self.sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(service), log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        def serve() -> None:
            asyncio.run(self.server.serve(sockets=[self.sock]))

        self._thread = threading.Thread(target=serve, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.sock.close()
