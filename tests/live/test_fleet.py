"""`screentime serve` over real RTSP cameras on loopback, as a separate process: cameras added over
the API and removed by editing the file while it runs (the other's samples unbroken), an invalid
edit refused, the model swapped mid-run, the token, SIGTERM and kill -9 with today's totals carried on.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers import decode_jpeg, make_color_model, mjpeg_parts
from rtsp_control import RtspServer, free_port
from serve_control import EVERY_S, Serve, assert_carried_on, day_file, write_config

from stream.model.engine import file_sha256


@pytest.fixture
def camera_b(gst_rtsp_available, tmp_path):
    server = RtspServer(tmp_path, "/b")
    try:
        yield server
    finally:
        server.stop()


def test_cameras_and_models_change_while_it_runs(rtsp_server: RtspServer, camera_b: RtspServer, tmp_path: Path):
    make_color_model(tmp_path / "m.onnx")
    url_a, url_b = rtsp_server.start(pattern="red"), camera_b.start(pattern="blue")
    config, port = tmp_path / "fleet.yaml", free_port()
    write_config(config, port, {"a": {"url": url_a}})
    serve = Serve(config, port)
    try:
        serve.wait(lambda: serve.samples("a") >= 3)
        # added through the API: written back to the file, and sampling within seconds
        status, body = serve.api("POST", "/api/cameras", {"name": "b", "url": url_b, "every": EVERY_S})
        assert status == 201 and body["changes"]["added"] == ["b"], body
        assert set(yaml.safe_load(config.read_text())["cameras"]) == {"a", "b"}
        assert serve.api("POST", "/api/cameras", {"name": "b", "url": url_b})[0] == 409
        assert serve.api("POST", "/api/cameras", {"name": "c", "url": url_b, "every": -1})[0] == 400
        serve.wait(lambda: serve.samples("b") >= 3)
        # an invalid edit: refused with one line, the service and both cameras go on
        before = serve.samples("a")
        write_config(config, port, {"a": {"url": url_a, "every": 0}, "b": {"url": url_b}})
        serve.wait(lambda: "config refused" in serve.output())
        assert "cameras.a.every: must be > 0" in serve.output()
        serve.wait(lambda: serve.samples("a") >= before + 4)
        # a removed by editing the file: it stops with its final day file, b goes on
        write_config(config, port, {"b": {"url": url_b}})
        serve.wait(lambda: set(serve.cameras()) == {"b"})
        final_a = json.loads(day_file(tmp_path, "a").read_text())
        assert final_a["ended"] == "interrupted" and final_a["samples"] >= 10
        # the model swapped: a new file at the model path (same classes), taken between samples
        old_sha = serve.cameras()["b"]["model_sha256"]
        make_color_model(tmp_path / "new.onnx", sharpness=5.0)
        os.replace(tmp_path / "new.onnx", tmp_path / "m.onnx")
        new_sha = file_sha256(tmp_path / "m.onnx")
        assert new_sha != old_sha
        serve.wait(lambda: serve.cameras()["b"]["model_sha256"] == new_sha)
        swapped_at = serve.samples("b")
        serve.wait(lambda: serve.samples("b") >= swapped_at + 4)
        # b changed in the file: restarted under the same name, carrying its day on
        write_config(config, port, {"b": {"url": url_b, "every": EVERY_S / 2}})
        serve.wait(lambda: serve.cameras()["b"]["every_s"] == EVERY_S / 2 and serve.samples("b") >= 3)
        assert serve.stop() == 0
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()
    # a's samples were unbroken while b came and an edit was refused
    with day_file(tmp_path, "a", ".csv").open() as fh:
        times = [float(row["t_s"]) for row in csv.DictReader(fh)]
    assert max(b - a for a, b in itertools.pairwise(times)) < 3 * EVERY_S
    # b's day: both models' periods, adding up to the day's totals
    b = json.loads(day_file(tmp_path, "b").read_text())
    assert b["ended"] == "interrupted" and b["resumed"] == 1
    assert [m["model_sha256"] for m in b["models"]] == [old_sha, new_sha]
    assert sum(m["duration_s"] for m in b["models"]) == pytest.approx(b["duration_s"], abs=0.01)
    tom = sum(m["screen_time_s"].get("tom", 0.0) for m in b["models"])
    assert tom == pytest.approx(b["screen_time_s"]["tom"], abs=0.01) and tom > 0


def test_beyond_loopback_the_api_needs_the_token(gst_rtsp_available, tmp_path: Path):
    make_color_model(tmp_path / "m.onnx")
    config, port = tmp_path / "fleet.yaml", free_port()
    write_config(config, port, {}, http={"host": "0.0.0.0", "port": port, "token": "${FLEET_TOKEN}"})
    serve = Serve(config, port, env={"FLEET_TOKEN": "s3cret-token"})
    try:
        serve.wait(lambda: serve.api("GET", "/api/cameras")[0] == 401)
        assert serve.api("GET", "/api/cameras", token="wrong")[0] == 401
        assert serve.api("POST", "/api/reload")[0] == 401
        assert serve.api("GET", "/api/cameras", token="s3cret-token") == (200, [])
        assert serve.stop() == 0
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()
    assert "s3cret-token" not in serve.output()


def test_killed_and_restarted_it_carries_today_on(rtsp_server: RtspServer, tmp_path: Path):
    make_color_model(tmp_path / "m.onnx")
    config, port = tmp_path / "fleet.yaml", free_port()
    write_config(config, port, {"a": {"url": rtsp_server.start(pattern="red")}})
    first = Serve(config, port)
    try:
        first.wait(
            lambda: day_file(tmp_path, "a").exists() and json.loads(day_file(tmp_path, "a").read_text())["samples"] >= 4
        )
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    left = json.loads(day_file(tmp_path, "a").read_text())
    assert left["ended"] == "running"
    again = Serve(config, port)
    try:
        again.wait(lambda: again.samples("a") >= 4)
        again.proc.send_signal(signal.SIGHUP)  # systemctl reload: the file read again, nothing changed
        again.wait(lambda: "config reloaded (SIGHUP): no change" in again.output())
        assert again.stop() == 0
    finally:
        if again.proc.poll() is None:
            again.proc.kill()
    today = json.loads(day_file(tmp_path, "a").read_text())
    assert_carried_on(left, today)
    assert today["screen_time_s"]["jerry"] > left["screen_time_s"]["jerry"]


def test_events_view_collect_and_secrets_kept_out(rtsp_server: RtspServer, mqtt_broker, tmp_path: Path):
    from mqtt_control import Subscriber

    make_color_model(tmp_path / "m.onnx")
    url = rtsp_server.start(pattern="red").replace("rtsp://", "rtsp://viewer:${CAM_PASSWORD}@")
    config, port = tmp_path / "fleet.yaml", free_port()
    collect = {"dir": "hard", "per_hour": 5, "max_margin": 1.0}  # any sample qualifies; the shot rule still holds
    write_config(config, port, {"door": {"url": url, "mqtt": mqtt_broker.url("fleet"), "collect": collect}})
    sub = Subscriber(mqtt_broker.port, "fleet/#")
    serve = Serve(config, port, env={"CAM_PASSWORD": "pa55word-xyz"})
    try:
        serve.wait(lambda: serve.samples("door") >= 3)
        sub.wait_for(lambda m: m.topic == "fleet/door/state" and m.payload == "online", 20, "door online")
        sub.wait_for(lambda m: m.topic.startswith("fleet/door/") and "jerry" in m.payload, 20, "jerry's event")
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/view", timeout=10).read().decode()
        assert '<img src="/view/door.mjpg"' in page
        parts = mjpeg_parts(f"http://127.0.0.1:{port}/view/door.mjpg", 1.5)
        assert parts and decode_jpeg(parts[-1][1]).shape == (240, 320, 3)  # the camera's overlaid picture
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'source="door"' in metrics
        assert 'screentime_latency_seconds_count{source="door"}' in metrics  # watch's histograms too
        listed = serve.cameras()["door"]
        assert serve.stop() == 0
    finally:
        sub.close()
        if serve.proc.poll() is None:
            serve.proc.kill()
    written = [p.read_text() for p in (tmp_path / "reports" / "door").iterdir()]
    for text in [serve.output(), metrics, json.dumps(listed), *written]:
        assert "pa55word-xyz" not in text
    assert json.loads(day_file(tmp_path, "door").read_text())["source"] == url.replace("${CAM_PASSWORD}", "***")
    # collected at the end of the hour or the run: a still red picture is one shot, so one frame
    with (tmp_path / "hard" / "door" / "frames.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and rows[0]["model_sha256"] == listed["model_sha256"]
    assert (
        len(rows) == 1 and rows[0]["guess"] == "jerry" and (tmp_path / "hard" / "door" / rows[0]["Image_ID"]).is_file()
    )
