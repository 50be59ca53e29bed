"""Start, stop, restart and steer the loopback RTSP server (rtsp_server.py) from the tests.

Kept out of conftest.py so the tests can import it by name for type hints and `free_port`.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.servers import free_port

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
# videotestsrc: base; rtph264pay: good; x264enc: ugly; the RTSP server library comes with the gir package.
APT_PACKAGES = " ".join(
    (
        "python3-gi",
        "gir1.2-gst-rtsp-server-1.0",
        "gstreamer1.0-plugins-base",
        "gstreamer1.0-plugins-good",
        "gstreamer1.0-plugins-ugly",
    )
)
READY_TIMEOUT_S = 20.0


class RtspServer:
    """Start, stop, restart and steer one loopback RTSP server; the fixture always cleans it up."""

    def __init__(self, log_dir: Path, path: str = "/test") -> None:
        self.log_dir = log_dir
        self.path = path
        self.port: int | None = None
        self.proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._starts = 0
        self._log: Path | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "start() first"
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    def start(
        self,
        width: int = 320,
        height: int = 240,
        fps: int = 25,
        pattern: str = "ball",
        keyint: int | None = None,
        bframes: int = 0,
    ) -> str:
        """Launch the server and wait for READY; the URL to open (same port on a restart)."""
        if self.proc is not None:
            raise RuntimeError("server already running; stop() or restart()")
        if self.port is None:
            self.port = free_port()
        self._starts += 1
        self._log = self.log_dir / f"rtsp_server_{self._starts}.log"
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--path", self.path]
        cmd += ["--width", str(width), "--height", str(height), "--fps", str(fps), "--pattern", pattern]
        if keyint is not None:
            cmd += ["--keyint", str(keyint)]
        if bframes:
            cmd += ["--bframes", str(bframes)]
        with self._log.open("w") as stderr:
            # stdin stays a pipe: commands go through it, and the server quits when it closes.
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1
            )
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, self._lines), daemon=True).start()
        self._expect("READY", READY_TIMEOUT_S)
        return self.url

    def stop(self) -> None:
        """Kill the server (SIGKILL: no goodbye to clients, like a camera losing power)."""
        self._end(signal.SIGKILL)

    def terminate(self) -> None:
        """Stop the server politely (SIGTERM) and check it exits cleanly."""
        proc = self.proc
        self._end(signal.SIGTERM)
        assert proc is not None and proc.returncode == 0, f"server exited with {proc and proc.returncode}"

    def restart(self, width: int = 320, height: int = 240, fps: int = 25, pattern: str = "ball") -> str:
        """Stop and start again on the same port, as a camera that reboots."""
        self.stop()
        return self.start(width=width, height=height, fps=fps, pattern=pattern)

    def set_pattern(self, pattern: str) -> float:
        """Switch the running stream's picture; the monotonic time the server confirmed it."""
        assert self.proc is not None and self.proc.stdin is not None, "start() first"
        self.proc.stdin.write(f"pattern {pattern}\n")
        self.proc.stdin.flush()
        self._expect(f"PATTERN {pattern}", 5.0)
        return time.monotonic()

    def freeze(self) -> None:
        """SIGSTOP: the connection stays open but no data comes (a hung camera)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log and self._log.exists() else ""

    def _end(self, signum: int) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a frozen process would not act on SIGTERM
            proc.send_signal(signum)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.put(line.strip())
        except ValueError:  # stdout closed by _end while reading
            pass
        lines.put(None)

    def _expect(self, wanted: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                self.stop()
                pytest.fail(f"RTSP server did not say {wanted!r} within {timeout_s:.0f} s; stderr:\n{self.log()}")
            if line is None:
                code = self.proc.wait() if self.proc else None
                self.stop()
                pytest.fail(f"RTSP server exited ({code}) before saying {wanted!r}; stderr:\n{self.log()}")
            if line == wanted:
                return
