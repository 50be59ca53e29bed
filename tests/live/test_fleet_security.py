"""`screentime serve` attacked and mishandled, as a separate process on loopback: web pages that
try to drive it, values that would poison its file, a full disk, bad edits by hand, secrets in
every line it prints, and the exit codes its systemd unit acts on (0 stop, 2 bad config, 4 output).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers import make_color_model
from rtsp_control import RtspServer, free_port
from serve_control import Serve, day_file, write_config
from servers import recording_server, status_server

JSON = {"Content-Type": "application/json"}


def post(serve: Serve, body: bytes, **headers: str):
    return serve.send("POST", "/api/cameras", body, {**JSON, **headers})


def test_web_pages_cannot_drive_it_nor_poison_its_file(rtsp_server: RtspServer, tmp_path: Path):
    make_color_model(tmp_path / "m.onnx")
    port, nobody = free_port(), free_port()
    real = tmp_path / "etc" / "fleet.yaml"
    real.parent.mkdir()
    (real.parent / "m.onnx").symlink_to(tmp_path / "m.onnx")
    write_config(
        real,
        port,
        {"a": {"url": rtsp_server.start(pattern="red")}},
        http={"port": port, "hosts": ["proxy.example"]},
        limits={"cameras": 2, "body_bytes": 4096},
    )
    config = tmp_path / "fleet.yaml"
    config.symlink_to(real)  # as /etc/screentime/fleet.yaml -> a deployed file
    with recording_server() as (leak_url, leaked), Serve(config, port, env={"LEAK_ME": "the-secret-value"}) as serve:
        serve.wait(lambda: serve.samples("a") >= 2)
        before = real.read_bytes()
        down = {"name": "down", "url": f"rtsp://127.0.0.1:{nobody}/none"}
        body = json.dumps(down).encode()
        # a page's cross-site POST: a "simple" request (text/plain), a foreign Origin, a rebinding name
        assert serve.send("POST", "/api/cameras", body, {"Content-Type": "text/plain"})[0] == 415
        assert post(serve, body, Origin="http://evil.example")[0] == 403
        assert post(serve, body, Origin="null")[0] == 403
        assert post(serve, body, **{"Sec-Fetch-Site": "cross-site"})[0] == 403
        assert post(serve, body, Host="evil.example")[0] == 421
        assert serve.send("GET", "/api/cameras", headers={"Host": f"evil.example:{port}"})[0] == 421
        assert serve.send("GET", "/metrics", headers={"Host": "evil.example"})[0] == 421
        assert serve.send("DELETE", "/api/cameras/a")[0] == 415  # no Content-Type: not from this service's client
        assert serve.send("POST", "/api/reload", b"", {"Content-Type": "text/plain"})[0] == 415
        # readable by plain GETs from the names it answers to
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "proxy.example"):
            assert serve.send("GET", "/metrics", headers={"Host": host})[0] == 200
            assert serve.send("GET", "/view", headers={"Host": host})[0] == 200
        # the environment is the file's, not the API's: no `${VAR}` is expanded and nothing is fetched
        leak = {"name": "leak", "url": f"{leak_url}/leak?h=${{LEAK_ME}}"}
        status, answer = serve.api("POST", "/api/cameras", leak)
        assert status == 400 and "expanded only in the config file" in answer["error"], answer
        # values that would poison the file: refused naming the key, nothing written
        poison = [
            (b'{"name": "c", "url": "rtsp://127.0.0.1:554/x", "every": Infinity}', 400, "finite numbers only"),
            (json.dumps({"name": "c", "url": "rtsp://127.0.0.1:99999/x"}).encode(), 400, "cameras.c.url: port out of"),
            (json.dumps({"name": "c", "url": "rtsp://127.0.0.1/x", "every": 1e300}).encode(), 400, "cameras.c.every"),
            (json.dumps({"name": "c", "url": "x", "reports": "/etc"}).encode(), 400, "cameras.c.reports"),
            (json.dumps({"name": "c", "url": "x", "colour": "red"}).encode(), 400, "cameras.c.colour: unknown key"),
            (b"[" * 1500 + b"]" * 1500, 400, "limits.json_depth"),
            (json.dumps({"name": "c", "url": "x" * 5000}).encode(), 413, "limits.body_bytes"),
            (b"not json", 400, "not JSON"),
        ]
        for data, code, fragment in poison:
            status, answer = post(serve, data)
            assert (status, fragment in answer["error"]) == (code, True), (data[:60], status, answer)
        assert real.read_bytes() == before and config.is_symlink()
        # a slow camera's reachability check holds no lock the readers need
        with status_server(404, delay_s=3.0) as slow:
            result: dict = {}
            thread = threading.Thread(
                target=lambda: result.update(
                    answer=serve.api("POST", "/api/cameras", {"name": "s", "url": f"{slow}/x"})
                )
            )
            thread.start()
            time.sleep(0.5)
            started = time.monotonic()
            assert serve.send("GET", "/api/cameras")[0] == 200
            assert serve.send("GET", "/metrics")[0] == 200
            waited = time.monotonic() - started
            thread.join(30)
        assert waited < 1.5, waited
        assert result["answer"][0] == 400 and "HTTP 404" in result["answer"][1]["error"], result
        # a good camera through the API: a literal password and token in its URL, written through the symlink
        secretive = dict(down, url=f"rtsp://viewer:literal-pw-123@127.0.0.1:{nobody}/none?token=tok-456")
        status, answer = serve.api("POST", "/api/cameras", secretive, token=None)
        assert status == 201, answer
        assert config.is_symlink() and set(yaml.safe_load(real.read_text())["cameras"]) == {"a", "down"}
        status, answer = serve.api("POST", "/api/cameras", {"name": "c", "url": "rtsp://127.0.0.1:554/x"})
        assert status == 400 and "limits.cameras (2)" in answer["error"], answer
        serve.wait(lambda: serve.cameras()["down"]["state"] != "running" and serve.samples("a") >= 4)
        # a requested stop is exit 0, though a camera is down
        assert serve.stop() == 0
    assert leaked == []
    output = serve.output()
    for secret in ("literal-pw-123", "tok-456", "the-secret-value"):
        assert secret not in output
    assert "Traceback" not in output
    # the file the API wrote is one that --check and a restart accept
    check = subprocess.run(
        [sys.executable, "-m", "stream.cli", "serve", "--check", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    with Serve(config, port) as again:
        again.wait(lambda: again.samples("a") >= 2 and "down" in again.cameras())
        assert again.stop() == 0


def test_the_config_watcher_outlives_bad_edits(rtsp_server: RtspServer, tmp_path: Path):
    make_color_model(tmp_path / "m.onnx")
    url, port = rtsp_server.start(pattern="red"), free_port()
    config = tmp_path / "fleet.yaml"
    write_config(config, port, {"a": {"url": url}})
    with Serve(config, port) as serve:
        serve.wait(lambda: serve.samples("a") >= 2)
        bad_edits = [
            ({"a": {"url": url}, "b": {"url": "rtsp://127.0.0.1:99999/x"}}, "cameras.b.url: port out of range"),
            ({"a": {"url": url, "every": float("inf")}}, "cameras.a.every"),
        ]
        for cameras, fragment in bad_edits:
            write_config(config, port, cameras)
            serve.wait(lambda fragment=fragment: fragment in serve.output())
        config.write_text("defaults: &d {model: m.onnx}\ncameras:\n  a: {url: x}\nx: *d\n")
        serve.wait(lambda: "YAML aliases" in serve.output())
        assert set(serve.cameras()) == {"a"}
        # still watching: a good edit by hand is taken, and so is SIGHUP
        write_config(config, port, {"a": {"url": url}, "b": {"url": url}})
        serve.wait(lambda: "b" in serve.cameras() and serve.samples("b") >= 2)
        serve.proc.send_signal(signal.SIGHUP)
        serve.wait(lambda: "config reloaded (SIGHUP): no change" in serve.output())
        assert serve.stop() == 0
    assert "Traceback" not in serve.output()


@contextlib.contextmanager
def small_disk(folder: Path, size_kb: int):
    """A tmpfs of `size_kb` mounted on `folder` for the block: a disk that can be filled for real.
    Mounting needs root (CI and this project's machines run tests as root); where it is refused the
    test fails saying so, rather than testing another fault and calling it a full disk."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"a full disk is tested on a small tmpfs, which needs root to mount: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Fill the disk under `folder` to the last byte."""
    filler = folder / "filler"
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as fh:
        while True:
            fh.write(b"\0" * 4096)
    return filler


def test_a_full_disk_stops_no_day_file_for_good(rtsp_server: RtspServer, tmp_path: Path):
    make_color_model(tmp_path / "m.onnx")
    url, port = rtsp_server.start(pattern="red"), free_port()
    config = tmp_path / "fleet.yaml"
    write_config(config, port, {"a": {"url": url}})
    path = day_file(tmp_path, "a")
    with small_disk(tmp_path / "reports", 512) as disk, Serve(config, port) as serve:
        serve.wait(lambda: path.exists() and json.loads(path.read_text())["samples"] >= 2)
        filler = fill(disk)
        serve.wait(lambda: serve.cameras()["a"]["outputs"]["day_files"]["state"] == "retrying")
        down = serve.cameras()["a"]
        assert "No space left on device" in down["outputs"]["day_files"]["error"]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'screentime_output_writing{output="day_files",source="a"} 0.0' in metrics
        serve.wait(lambda: serve.samples("a") >= down["samples"] + 4)  # counting goes on meanwhile
        filler.unlink()  # space is back: the day file is written again, nothing lost
        serve.wait(lambda: serve.cameras()["a"]["outputs"]["day_files"]["state"] == "ok", 60)
        serve.wait(lambda: json.loads(path.read_text())["samples"] >= down["samples"] + 4)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'screentime_output_writing{output="day_files",source="a"} 1.0' in metrics
        assert serve.stop() == 0
        today = json.loads(path.read_text())
        assert today["duration_s"] == pytest.approx(sum(today["screen_time_s"].values()), abs=0.01)
        with path.with_suffix(".csv").open() as fh:
            times = [float(row["t_s"]) for row in csv.DictReader(fh)]
        assert len(times) == today["samples"] and times == sorted(set(times))  # each sample once, none lost
        # full again at the stop: the last day file cannot be written, exit 4 with one line
        with Serve(config, port) as again:
            again.wait(lambda: again.samples("a") >= 2)
            filler = fill(disk)
            again.wait(lambda: again.cameras()["a"]["outputs"]["day_files"]["state"] == "retrying")
            assert again.stop() == 4
        assert "day files" in again.output() and "No space left on device" in again.output()
        assert "Traceback" not in again.output()
        filler.unlink()


def test_no_secret_in_the_last_error_line(tmp_path: Path):
    make_color_model(tmp_path / "m.onnx")
    port = free_port()
    config = tmp_path / "fleet.yaml"
    with status_server(404) as base:
        write_config(config, port, {"a": {"url": f"{base}/cam.ts?session=${{CAM_SESSION}}"}})
        result = subprocess.run(
            [sys.executable, "-m", "stream.cli", "serve", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "CAM_SESSION": "sess-98765-secret"},
        )
    assert result.returncode == 2, result.stderr  # a camera that can never be read: fix the file
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("screentime: error: ") and "HTTP 404" in lines[-1], result.stderr
    assert "sess-98765-secret" not in result.stderr + result.stdout
