"""A camera that keeps failing, through the public `watch` API and the CLI, against the real server."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest
from rtsp_control import RtspServer, free_port

from stream import watch


def test_repeated_restarts_with_new_frame_size_keep_report_and_video_whole(
    rtsp_server: RtspServer, color_model: Path, tmp_path: Path
) -> None:
    url = rtsp_server.start(width=320, height=240, pattern="red")
    secret_url = url.replace("rtsp://", "rtsp://viewer:hunter2@")  # the test server ignores credentials
    run = watch(
        secret_url,
        color_model,
        every_s=0.25,
        duration_s=22,
        report=tmp_path / "r.json",
        output=tmp_path / "o.mp4",
        timeout_s=2.0,
    )

    def faults() -> None:
        for size, pattern in [((352, 288), "blue"), ((320, 240), "red"), ((352, 288), "blue")]:
            time.sleep(4.0)  # up long enough for the backoff, FFmpeg probe and a few frames
            rtsp_server.stop()
            time.sleep(0.5)
            rtsp_server.start(width=size[0], height=size[1], pattern=pattern)

    chaos = threading.Thread(target=faults, daemon=True)
    chaos.start()
    predictions = list(run)
    chaos.join()
    report = run.report
    assert report.reconnects == 3 and len(report.outages) == 3
    times = [p.t_s for p in predictions]
    assert all(b > a for a, b in itertools.pairwise(times)), "a frame was counted twice"
    assert {p.label for p in predictions} == {"jerry", "tom"}  # counting went on after each restart
    assert sum(report.screen_time_s.values()) == pytest.approx(report.duration_s, abs=1e-6)
    down = sum(o["end_s"] - o["start_s"] for o in report.outages)
    assert report.duration_s == pytest.approx(22 - down, abs=2.5)  # outages are not analysed time
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["source"] == secret_url.replace("hunter2", "***") and "hunter2" not in json.dumps(data)
    assert len(data["outages"]) == 3 and data["samples"] == len(predictions)
    with av.open(str(tmp_path / "o.mp4")) as container:  # playable, one size throughout
        sizes = {(f.width, f.height) for f in container.decode(video=0)}
    assert sizes == {(320, 240)}


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("flags", "fragment"), [(["--no-retry"], "no retry"), (["--max-reconnects", "2"], "after 2 retries")]
)
def test_unreachable_stream_is_one_line_error(color_model: Path, flags: list[str], fragment: str) -> None:
    url = f"rtsp://admin:topsecret@127.0.0.1:{free_port()}/cam"
    started = time.monotonic()
    result = cli("watch", url, "--model", str(color_model), "--no-dashboard", *flags)
    assert time.monotonic() - started < 30
    assert result.returncode != 0 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("screentime: error:")]
    assert len(errors) == 1 and fragment in errors[0] and "admin:***@127.0.0.1" in errors[0]
    assert "topsecret" not in result.stderr + result.stdout


def test_sigterm_during_a_live_run_writes_the_report(
    rtsp_server: RtspServer, color_model: Path, tmp_path: Path
) -> None:
    url = rtsp_server.start(pattern="red")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "watch",
            url,
            "--model",
            str(color_model),
            "--every",
            "0.2",
            "--report",
            str(tmp_path / "r.json"),
            "--output",
            str(tmp_path / "o.mp4"),
            "--no-dashboard",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(5)
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["ended"] == "interrupted" and data["samples"] >= 5
    assert data["screen_time_s"]["jerry"] == pytest.approx(data["duration_s"], abs=1e-3)
    with av.open(str(tmp_path / "o.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) > 25
