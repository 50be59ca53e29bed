"""`screentime label`: a local web labeller over the frames `extract` wrote.

Labelling is thousands of key presses over near-identical frames; a page with the frame large,
its neighbours as a film strip and one key per class makes that fast, and the standard library's
HTTP server adds no runtime dependency. The server is the only writer of `labels.csv` and writes
every label at once, atomically, so closing the tab, Ctrl-C or a crash loses nothing and never
leaves half a file; reopening the directory resumes where the labels stop.

It listens on 127.0.0.1 only and trusts nothing it receives: frames are served from an allow-list
(never from a path built out of the request), writes must name known frames and class ids, and
the Host and Origin checks keep other web pages out (DNS rebinding, cross-site POSTs).

It runs past 300 lines because every route and its checks are in one place, where a reviewer
can see that nothing is served or written without them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import cv2
import numpy as np

from stream.defaults import CROP
from stream.errors import BadInputError
from stream.frames.crop import Crop
from stream.model.verdict import verdict
from training.images import set_crop
from training.labels import LabelStore
from training.suggest import DEFAULT_N, Suggestion, rank

log = logging.getLogger(__name__)

DEFAULT_CLASSES = ("neither", "jerry", "tom")  # training.train's default, not imported: it loads TensorFlow
DEFAULT_PORT = 8765
MAX_BODY = 1 << 20
PAGE = Path(__file__).with_name("label_page.html")


class Predictor:
    """The model's guess per frame, computed when the page first asks and cached.

    Scoring thousands of frames up front would delay the page for nothing: the page asks for the
    film strip around the current frame, and for everything only when sorting by confidence.
    """

    def __init__(self, model: Path, device: str, crop: str | Crop = CROP) -> None:
        from stream.model.engine import Engine, choose_model  # onnxruntime only when a model is given

        # The same file `suggest` and `watch` load (the INT8 twin on CPU), so the page's order
        # is the list `screentime suggest` prints.
        self.engine = Engine(choose_model(model, device), device)
        self.classes = self.engine.card.classes
        self._cache: dict[str, dict[str, Any] | None] = {}
        self._lock = threading.Lock()
        self.crop_mode = crop
        self._crop: Crop | None = None
        self._crop_found = False

    def predict(self, paths: dict[str, Path]) -> dict[str, dict[str, Any]]:
        with self._lock:
            if not self._crop_found and paths:  # the set's black bars, cut as `watch` cuts them
                listed = list(paths.values())
                self._crop, self._crop_found = set_crop(listed[0].parent, listed, self.crop_mode), True
            todo = [n for n in paths if n not in self._cache]
            for start in range(0, len(todo), 32):
                chunk = [(n, cv2.imread(str(paths[n]))) for n in todo[start : start + 32]]
                chunk = [(n, self._crop.apply(im) if self._crop and im is not None else im) for n, im in chunk]
                readable = [(n, im) for n, im in chunk if im is not None]
                self._cache.update({n: None for n, im in chunk if im is None})
                for (name, _), probs in zip(readable, self.engine.predict([im for _, im in readable]), strict=True):
                    self._cache[name] = self._guess(probs)
            return {n: hit for n in paths if (hit := self._cache.get(n))}

    def _guess(self, probs: np.ndarray) -> dict[str, Any]:
        """The classes `watch` would count on this frame (`stream.model.verdict`), and how sure the model is."""
        ids = list(verdict(probs, self.engine.card))
        if self.engine.card.multi_label:  # independent sigmoids: the least sure yes/no decision
            return {"classes": ids, "conf": float(np.min(np.maximum(probs, 1 - probs)))}
        return {"classes": ids, "conf": float(probs[ids[0]])}


class Suggestions:
    """The frames `screentime suggest` would print for this directory, ranked once per server.

    Ranked in a background thread from the start rather than on first request: the list then
    ranks the labels on disk when the session began (what `suggest` prints just before), not
    whatever was labelled by the time the user asks, and scoring every frame (minutes on a big
    directory) overlaps with labelling instead of keeping the user waiting. Never re-ranked:
    labelling a suggested frame marks it done and the order stays put.
    """

    def __init__(self, predictor: Predictor, store: LabelStore, n: int, seed: int = 0) -> None:
        self._args = (predictor.engine, store, n, seed, False, predictor.crop_mode)
        self.result: Suggestion | None = None
        self.error: str | None = None

    def start(self) -> None:
        threading.Thread(target=self._rank, name="suggest", daemon=True).start()

    def _rank(self) -> None:
        try:
            self.result = rank(*self._args)
        except Exception as exc:  # a thread's exception would vanish; the page shows it instead
            log.error("suggestions failed: %s", exc)
            self.error = str(exc) or type(exc).__name__

    def answer(self) -> tuple[int, dict[str, Any]]:
        """The `/api/suggested` reply: the names when ranked, `ready: false` until then."""
        if self.error is not None:
            return 500, {"error": f"cannot rank suggestions: {self.error}"}
        if self.result is None:
            return 200, {"names": [], "space": None, "ready": False}
        return 200, {"names": list(self.result.names), "space": self.result.space, "ready": True}


def _csp(html: str) -> str:
    """Allow exactly the page's own inline script and style (by hash), same-origin fetches and images."""

    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies)

    return (
        f"default-src 'none'; img-src 'self'; connect-src 'self'; script-src {hashes('script')}; "
        f"style-src {hashes('style')}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class LabelServer(ThreadingHTTPServer):
    """One labelling session: the store, the optional predictor and suggestions, and who may talk to it."""

    daemon_threads = True

    def __init__(
        self,
        store: LabelStore,
        classes: tuple[str, ...],
        predictor: Predictor | None,
        port: int,
        suggestions: Suggestions | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", port), LabelHandler)
        self.store, self.classes, self.predictor, self.suggestions = store, classes, predictor, suggestions
        self.port = self.server_address[1]
        self.hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self.origins = {f"http://{h}" for h in self.hosts}
        self.url = f"http://127.0.0.1:{self.port}/"
        html = PAGE.read_text(encoding="utf-8")
        self.page, self.csp = html.encode(), _csp(html)

    def state(self) -> dict[str, Any]:
        store = self.store
        return {
            "directory": str(store.directory),
            "classes": list(self.classes),
            "model": self.predictor is not None,
            "frames": [{"name": n, "t": store.times.get(n), "label": list(store.labels[n])} for n in store.order],
        }


class LabelHandler(BaseHTTPRequestHandler):
    """Routes by exact path; every answer is JSON, the page, or a frame from the allow-list."""

    server: LabelServer
    server_version = "screentime-label"
    sys_version = ""

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        path, _, query = self.path.partition("?")
        params = parse_qs(query)
        store = self.server.store
        if path == "/":
            self._send(200, self.server.page, "text/html; charset=utf-8")
        elif path == "/favicon.ico":
            self._send(204, b"", None)
        elif path == "/api/state":
            self._json(200, self.server.state())
        elif path.startswith("/frames/"):
            self._frame(unquote(path.removeprefix("/frames/")))
        elif path == "/api/run" and params.get("frame", [""])[0] in store.paths:
            self._json(200, {"frames": store.run_from(params["frame"][0])})
        elif path == "/api/predictions" and self.server.predictor is not None:
            names = params.get("f", [])
            if not names or len(names) > 256 or any(n not in store.paths for n in names):
                return self._json(400, {"error": "expected f=FRAME (1..256 known frames)"})
            guesses = self.server.predictor.predict({n: store.paths[n] for n in names})
            self._json(200, {"predictions": guesses})
        elif path == "/api/suggested" and self.server.suggestions is not None:
            self._json(*self.server.suggestions.answer())
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self.server.origins:
            return self._json(403, {"error": "cross-origin request refused"})
        if self.path != "/api/labels":
            return self._json(404, {"error": "not found"})
        if self.headers.get_content_type() != "application/json":
            return self._json(415, {"error": "expected application/json"})
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._json(411, {"error": "Content-Length required"})
        if not 0 < length <= MAX_BODY:
            return self._json(413, {"error": f"body must be 1..{MAX_BODY} bytes"})
        try:
            body = json.loads(self.rfile.read(length))
            saved = self.server.store.update(body.get("labels") if isinstance(body, dict) else None)
        except ValueError as exc:  # bad JSON or a bad label (JSONDecodeError is a ValueError)
            return self._json(400, {"error": str(exc)})
        except OSError as exc:
            log.error("%s: cannot write (%s)", self.server.store.csv_path, exc)
            return self._json(500, {"error": f"cannot write labels.csv: {exc.strerror or exc}"})
        store = self.server.store
        self._json(200, {"saved": saved, "labelled": store.labelled, "total": len(store.order)})

    def _host_ok(self) -> bool:
        """Refuse any Host but our own: a rebound DNS name pointing at 127.0.0.1 gets nothing."""
        if (self.headers.get("Host") or "").lower() in self.server.hosts:
            return True
        self._json(403, {"error": "unexpected Host header"})
        return False

    def _frame(self, name: str) -> None:
        path = self.server.store.paths.get(name)
        if path is None:
            return self._json(404, {"error": "not found"})
        try:
            stat = path.stat()
            etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            if self.headers.get("If-None-Match") == etag:
                return self._send(304, b"", None, {"ETag": etag})
            data = path.read_bytes()
        except OSError:
            return self._json(404, {"error": "not found"})
        ctype = "image/png" if name.lower().endswith(".png") else "image/jpeg"
        self._send(200, data, ctype, {"ETag": etag, "Cache-Control": "no-cache"})

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", {"Cache-Control": "no-store"})

    def _send(self, status: int, body: bytes, ctype: str | None, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", self.server.csp)
        self.send_header("Referrer-Policy", "no-referrer")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def make_server(
    directory: str | Path,
    classes: tuple[str, ...] | None = None,
    model: str | Path | None = None,
    device: str = "auto",
    port: int | None = None,
    suggest: int | None = None,
    crop: str | Crop = CROP,
) -> LabelServer:
    """A bound, not yet serving, labeller; the model's own class list wins over `classes`. With a
    model it starts ranking the `suggest` (default `training.suggest.DEFAULT_N`) suggested frames."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BadInputError(f"{directory}: no such directory")
    if port is not None and not 0 <= port <= 65535:
        raise BadInputError(f"--port {port}: expected 0..65535")
    if suggest is not None and suggest < 1:
        raise BadInputError(f"--suggest {suggest}: expected at least 1")
    if suggest is not None and model is None:
        log.warning("--suggest ignored: suggestions need --model")
    predictor = Predictor(Path(model), device, crop) if model is not None else None
    if predictor is not None:
        if classes and tuple(classes) != predictor.classes:
            log.warning("--classes ignored: the model's classes are %s", ",".join(predictor.classes))
        classes = predictor.classes
    classes = tuple(classes or DEFAULT_CLASSES)
    store = LabelStore(directory, len(classes))
    suggestions = Suggestions(predictor, store, suggest or DEFAULT_N) if predictor is not None else None
    server = _bind(store, classes, predictor, port, suggestions)
    if suggestions is not None:
        suggestions.start()  # only once listening: a port refused wastes no scoring
    return server


def _bind(
    store: LabelStore,
    classes: tuple[str, ...],
    predictor: Predictor | None,
    port: int | None,
    suggestions: Suggestions | None,
) -> LabelServer:
    """The default port when free, else any; an explicit port or nothing."""
    candidates = [DEFAULT_PORT, 0] if port is None else [port]
    for candidate in candidates:
        try:
            return LabelServer(store, classes, predictor, candidate, suggestions)
        except OSError as exc:
            if candidate == candidates[-1]:
                raise BadInputError(f"127.0.0.1:{candidate}: cannot listen ({exc.strerror or exc})") from None
    raise AssertionError("unreachable")


def has_display() -> bool:
    """Whether `webbrowser` can open a graphical browser here (on a headless server it would not)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def serve(
    directory: str | Path,
    classes: tuple[str, ...] | None = None,
    model: str | Path | None = None,
    device: str = "auto",
    port: int | None = None,
    browser: bool = True,
    suggest: int | None = None,
    crop: str | Crop = CROP,
) -> int:
    """Run the labeller until Ctrl-C; labels are already on disk, so stopping needs no saving."""
    server = make_server(directory, classes, model, device, port, suggest, crop)
    store = server.store
    print(f"labelling {len(store.order)} frames in {store.directory} ({store.labelled} labelled)", flush=True)
    print(f"open {server.url}  (Ctrl-C to stop)", flush=True)
    if browser and has_display():
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print(f"{store.labelled}/{len(store.order)} frames labelled -> {store.csv_path}")
    return 0
