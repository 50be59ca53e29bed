"""One `screentime serve` process and its HTTP API, for the live fleet tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest
import yaml

EVERY_S = 0.5


class Serve:
    """One `screentime serve` process and its HTTP API."""

    def __init__(self, config: Path, port: int, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.config, self.port = config, port
        self.log = config.parent / f"serve-{time.monotonic_ns()}.log"
        inherited = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a cluster only when asked
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "serve", str(config), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**inherited, "COLUMNS": "200", **(env or {})},
            )

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def api(self, method: str, path: str, body: dict | None = None, token: str | None = None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if method != "GET" else {}  # asked of every change
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.send(method, path, data, headers)

    def send(self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None):
        """One request as given (headers, raw body): (status, the JSON answer or the text)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        try:
            return status, json.loads(body or b"null")
        except ValueError:
            return status, body.decode(errors="replace")

    def cameras(self, token: str | None = None) -> dict[str, dict]:
        status, found = self.api("GET", "/api/cameras", token=token)
        assert status == 200, found
        return {c["name"]: c for c in found}

    def wait(self, what, timeout_s: float = 30.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                got = what()
            except (urllib.error.URLError, ConnectionError, KeyError):
                got = None
            if got:
                return got
            time.sleep(0.2)
        raise AssertionError(f"timed out; service log:\n{self.output()}")

    def samples(self, name: str) -> int:
        return self.cameras()[name]["samples"]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def write_config(path: Path, port: int, cameras: dict, **top) -> None:
    data = {"http": {"port": port}, "checkpoint": 1, "defaults": {"model": "m.onnx", "every": EVERY_S}, **top}
    data["cameras"] = cameras
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data))
    os.replace(tmp, path)


def day_file(tmp_path: Path, name: str, suffix: str = ".json") -> Path:
    return tmp_path / "reports" / name / f"{date.today().isoformat()}{suffix}"


def assert_carried_on(left: dict, today: dict, more: int = 4) -> None:
    """Today's day file after a killed service came back: the earlier run's day carried on (one
    more run, at least `more` samples more), the time away an outage after it, totals that add up."""
    assert today["resumed"] == 1 and today["ended"] == "interrupted"
    assert today["samples"] >= left["samples"] + more
    assert len(today["outages"]) >= 1 and today["outages"][-1]["start_s"] >= left["end_s"] - 1e-3
    assert today["duration_s"] == pytest.approx(sum(today["screen_time_s"].values()), abs=0.01)
