"""The live view against a real camera (RTSP on loopback), seen by a real Chromium and by urllib.

`screentime watch --view-port` runs as a user runs it, in its own process; the browser must show
the overlaid picture and follow the camera when its picture changes, and a stop (SIGTERM) with a
viewer still connected must end the process cleanly. Through the Python API, with a viewer
reading as fast as it can: pictures come at no more than `view_fps`, and the analysis keeps its
sampling rate (the view only swaps a reference on the analysis path).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import decode_jpeg, mjpeg_parts
from playwright.sync_api import sync_playwright
from rtsp_control import RtspServer, free_port

from stream import watch

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def dominant(image: np.ndarray) -> str:
    """'red', 'blue' or '?' from the lower right of a picture (away from the overlay's text box)."""
    h, w = image.shape[:2]
    b, g, r = image[h // 2 :, w // 2 :].reshape(-1, 3).mean(axis=0)
    if r > 150 and b < 90 and g < 90:
        return "red"
    if b > 150 and r < 90 and g < 90:
        return "blue"
    return "?"


def wait_for_page(url: str, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"watch exited early: {proc.communicate()[1]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"no live view at {url} within {timeout_s:.0f} s")


def test_browser_shows_the_overlaid_camera_and_follows_it(rtsp_server: RtspServer, color_model: Path, tmp_path):
    assert CHROMIUM.is_file(), f"{CHROMIUM} missing: run scripts/install-system-deps.sh"
    url = rtsp_server.start(pattern="red")
    port = free_port()
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "stream.cli", "watch", url, "--model", str(color_model), "--every", "0.5"]
    command += ["--view-port", str(port), "--no-dashboard", "--report", str(report)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    page_url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_page(page_url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 800, "height": 600})
                page.goto(page_url)
                tile = page.locator("img")
                assert tile.count() == 1 and page.locator("figcaption").inner_text() == url
                page.wait_for_function("document.querySelector('img').naturalWidth > 0", timeout=30_000)
                assert page.evaluate("document.querySelector('img').naturalWidth") == 320

                def shown() -> np.ndarray:
                    return cv2.imdecode(np.frombuffer(tile.screenshot(), np.uint8), cv2.IMREAD_COLOR)

                first = shown()
                assert dominant(first) == "red"
                assert first[3:8, 3:8].mean() < 40  # the overlay's black box: the annotated picture, not the raw one
                rtsp_server.set_pattern("blue")
                deadline = time.monotonic() + 15
                while dominant(shown()) != "blue":
                    assert time.monotonic() < deadline, "the browser's picture did not turn blue"
                    time.sleep(0.3)
                # Stop with the browser still watching: the stream ends and the process exits cleanly.
                proc.send_signal(signal.SIGTERM)
                stdout, stderr = proc.communicate(timeout=20)
            finally:
                browser.close()
        assert proc.returncode == 0, stderr
        assert f"live view: http://127.0.0.1:{port}/" in stdout + stderr  # the log says where to look
        data = json.loads(report.read_text())
        assert data["screen_time_s"]["jerry"] > 0 and data["screen_time_s"]["tom"] > 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_view_rate_is_capped_and_analysis_keeps_its_pace(rtsp_server: RtspServer, color_model: Path):
    url = rtsp_server.start(pattern="red")  # 25 fps
    port, fps, every_s, duration_s = free_port(), 4.0, 0.25, 8.0
    run = watch(url, color_model, every_s=every_s, duration_s=duration_s, view_port=port, view_fps=fps)
    runner = threading.Thread(target=run.run, daemon=True)
    runner.start()
    try:
        parts = []
        deadline = time.monotonic() + 10
        while not parts and time.monotonic() < deadline:  # the view listens at once; pictures come once connected
            try:
                parts = mjpeg_parts(f"http://127.0.0.1:{port}/stream/0.mjpg", seconds=3.0)
            except OSError:
                time.sleep(0.2)
        span = parts[-1][0] - parts[0][0]
        assert 2.5 <= span <= 3.5 and len(parts) <= fps * 3 + 2, f"{len(parts)} pictures in {span:.1f} s"
        assert len(parts) >= 6, f"only {len(parts)} pictures in {span:.1f} s"
        assert dominant(decode_jpeg(parts[-1][1])) == "red"
    finally:
        runner.join(timeout=duration_s + 30)
    assert not runner.is_alive()
    report = run.report
    # As without a view (tests/live/test_rtsp.py): about one sample per every_s of analysed time.
    expected = report.duration_s / every_s
    assert expected - 3 <= report.samples <= expected + 2, f"{report.samples} samples in {report.duration_s:.2f} s"
    assert report.screen_time_s["jerry"] == pytest.approx(report.duration_s, abs=1e-6)
    # (How many pictures the decoder made is the source's business: on this all-P-frame stream
    # every frame is a reference and is decoded; the view only converts and draws a few a second.)
    # The run is over: the view's threads are gone and its port is closed.
    assert not [t for t in threading.enumerate() if t.name == "liveview" or "process_request" in t.name]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """urllib must talk to loopback directly, whatever proxy the environment names."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setitem(os.environ, "no_proxy", "127.0.0.1,localhost")
