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
keeps them; their values are stored literally (`${VAR}` is refused: the environment is the
operator's file's, not the API's). With a token (required beyond loopback) every request needs
`Authorization: Bearer TOKEN`. Every request passes `stream.fleet.shield` first (Host, Origin,
Content-Type); bodies and their JSON nesting are bounded by the config's `limits:`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from stream.errors import BadInputError, ScreentimeError
from stream.fleet.config import check_api_camera
from stream.fleet.shield import check_request, parse_json
from stream.outputs.serving import metrics_response

log = logging.getLogger(__name__)


def build_app(service) -> ASGIApp:
    def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except _TooLarge as exc:
                return JSONResponse({"error": str(exc)}, 413)
            except ScreentimeError as exc:
                return JSONResponse({"error": service.mask.mask(str(exc))}, 400)
            except Exception:  # a bug: logged with its traceback (masked), one line to the client
                log.error("%s %s failed", request.method, request.url.path, exc_info=True)
                return JSONResponse({"error": "internal error (the service's log has it)"}, 500)

        return endpoint

    async def read_json(request: Request) -> object:
        """The body, at most limits.body_bytes (counted as it arrives), as bounded JSON."""
        limits = service.config.limits
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.body_bytes:
            raise _TooLarge(f"the body is larger than limits.body_bytes ({limits.body_bytes})")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limits.body_bytes:
                raise _TooLarge(f"the body is larger than limits.body_bytes ({limits.body_bytes})")
        try:
            return parse_json(bytes(data), limits.json_depth)
        except ValueError as exc:
            raise BadInputError(str(exc)) from None

    async def cameras(request: Request) -> Response:
        return JSONResponse([service.describe(name) for name in list(service.members)])

    async def camera(request: Request) -> Response:
        found = service.describe(request.path_params["name"])
        return JSONResponse(found) if found is not None else JSONResponse({"error": "no such camera"}, 404)

    async def add(request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise BadInputError('the body must be a JSON object with a "name"')
        name = body.pop("name")
        check_api_camera(name, body)  # literal values, paths inside the config's folder

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

    async def metrics(request: Request) -> Response:
        return metrics_response(service.registry)

    app = Starlette(
        routes=[
            Route("/api/cameras", guarded(cameras), methods=["GET"]),
            Route("/api/cameras", guarded(add), methods=["POST"]),
            Route("/api/cameras/{name}", guarded(camera), methods=["GET"]),
            Route("/api/cameras/{name}", guarded(delete), methods=["DELETE"]),
            Route("/api/reload", guarded(reload), methods=["POST"]),
            Route("/metrics", guarded(metrics), methods=["GET"]),
            *service.view.routes(page="/view", streams="/view"),  # the one live view, as `watch` serves it
        ]
    )
    return Shield(app, service)


class _Conflict(ScreentimeError):
    pass


class _TooLarge(ScreentimeError):
    pass


def authorised(headers: Headers, token: str | None) -> bool:
    """With a token (required beyond loopback) every request needs `Authorization: Bearer TOKEN`."""
    if not token:
        return True
    given = headers.get("authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


class Shield:
    """Every request through `stream.fleet.shield`'s rules, then the token, before any route sees
    it (404s and the live view too)."""

    def __init__(self, app: ASGIApp, service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            config = self.service.config
            headers = Headers(scope=scope)
            refusal = check_request(scope["method"], headers, config.host, config.hosts)
            if refusal is not None:
                await JSONResponse({"error": refusal.error}, refusal.status)(scope, receive, send)
                return
            if not authorised(headers, config.token):
                answer = JSONResponse({"error": "missing or wrong bearer token"}, 401, {"WWW-Authenticate": "Bearer"})
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Missing(ScreentimeError):
    pass
