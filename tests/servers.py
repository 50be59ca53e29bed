"""Real servers on loopback for web links and live protocols (tests/live/test_protocols.py and
benchmarks/formats.py): `python -m http.server` over a folder, an `ffmpeg` that sends (UDP TS,
HLS into a folder) or serves (`-listen 1` RTMP), an MJPEG-over-HTTP camera."""

from __future__ import annotations

import contextlib
import http.server
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2

from tests import corpus
from tests.helpers import color_frame


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on now (the kernel's pick; the race until the server binds is harmless here)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def http_server(folder: Path):
    """`python -m http.server` over `folder`, as a user would serve it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(5)


@contextlib.contextmanager
def ffmpeg_sending(args: list[str]):
    """An ffmpeg process (a sender or a server) for the length of the block."""
    proc = subprocess.Popen([corpus.ffmpeg(), "-loglevel", "error", *args], stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def live_input(seconds: float, color: str = "0xDC0000") -> list[str]:
    """A red (jerry) picture in real time (`-re`), H.264 with a keyframe a second."""
    w, h = corpus.SIZE
    return [
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"color=c={color}:s={w}x{h}:r=25:d={seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
    ]


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serving(handler: type[http.server.BaseHTTPRequestHandler]):
    """A threaded web server on a free loopback port for the length of the block; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def mjpeg_server(seconds: float):
    """An MJPEG-over-HTTP camera for the block (yields its base URL): red JPEGs, 10 a second,
    `multipart/x-mixed-replace`."""
    picture = cv2.imencode(".jpg", color_frame(1, corpus.SIZE))[1].tobytes()

    class Handler(_QuietHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            end = time.monotonic() + seconds
            with contextlib.suppress(OSError):
                while time.monotonic() < end:
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                    self.wfile.write(f"Content-Length: {len(picture)}\r\n\r\n".encode() + picture + b"\r\n")
                    time.sleep(0.1)

    return _serving(Handler)


def status_server(code: int, delay_s: float = 0.0):
    """A web server for the block (yields its base URL) that answers every request with `code`
    (401, 403 ...), after `delay_s` (a slow camera)."""

    class Handler(_QuietHandler):
        def do_GET(self):
            time.sleep(delay_s)
            self.send_error(code)

    return _serving(Handler)


@contextlib.contextmanager
def recording_server():
    """A web server for the block that answers 200 and keeps every path asked for: yields (base URL, paths)."""
    paths: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self):
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with _serving(Handler) as url:
        yield url, paths


def ts_over_http(seconds: float):
    """A live MPEG-TS over HTTP (no length: the answer ends when the stream does), as encoders and
    IPTV gateways serve it: each request gets `ffmpeg` encoding in real time. Yields its base URL."""

    class Handler(_QuietHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            args = [corpus.ffmpeg(), "-loglevel", "error", *live_input(seconds), "-f", "mpegts", "pipe:1"]
            with subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL) as proc:
                try:
                    while chunk := proc.stdout.read1(65536):
                        self.wfile.write(chunk)
                except OSError:
                    pass
                finally:
                    proc.terminate()

    return _serving(Handler)
