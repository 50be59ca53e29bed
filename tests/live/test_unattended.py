"""A monitor left running for weeks, against the real RTSP server: any camera connects, every second
is accounted for, a crash loses at most one checkpoint, failures reach the exit status."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import av
import cv2
import pytest
from helpers import write_color_video
from rtsp_control import RtspServer, free_port

from stream import watch

FLUSH_SLACK_S = 1.5


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream.cli", "watch", *args, "--no-dashboard"]


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("screentime: error:")]


class Viewer:
    """Another client already watching, so the media is running and a new client joins mid-GOP
    (a shared RTSP media starts with a keyframe for its first client only)."""

    def __init__(self, url: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(url,), daemon=True)
        self._thread.start()

    def _hold(self, url: str) -> None:
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        while not self._stop.is_set() and cap.grab():
            pass
        cap.release()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_camera_with_10_s_keyframes_gives_a_first_sample_within_15_s(rtsp_server: RtspServer, color_model: Path):
    """x264enc's defaults (a keyframe every 250 frames, 10 s at 25 fps), joined mid-GOP, default flags."""
    url = rtsp_server.start(fps=25, keyint=0, pattern="red")
    viewer = Viewer(url)
    try:
        time.sleep(3.0)  # the next keyframe is ~7 s away when we connect
        run = watch(url, color_model, every_s=0.5)
        started = time.monotonic()
        first: float | None = None
        labels = []
        for prediction in run:
            if first is None:
                first = time.monotonic() - started
            labels.append(prediction.label)
            if len(labels) >= 3:
                run.stop()
    finally:
        viewer.close()
    assert first is not None and first < 15.0, f"first sample after {first} s"
    assert set(labels) == {"jerry"}
    assert run.report is not None and run.report.reconnects == 0 and run.report.outages == []


def test_kill_9_leaves_report_timeline_and_overlay_usable(rtsp_server: RtspServer, color_model: Path, tmp_path: Path):
    url = rtsp_server.start(fps=25, pattern="red")
    report, timeline, overlay = tmp_path / "r.json", tmp_path / "t.csv", tmp_path / "o.mp4"
    checkpoint_s = 3.0
    proc = subprocess.Popen(
        cli_args(
            url,
            "--model",
            str(color_model),
            "--every",
            "0.2",
            "--report",
            str(report),
            "--csv",
            str(timeline),
            "--output",
            str(overlay),
            "--checkpoint",
            str(checkpoint_s),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(20)
    finally:
        proc.kill()  # SIGKILL: no handler, no finally, no flush
        proc.wait(timeout=10)
    killed_at = time.time()
    data = json.loads(report.read_text())  # parses: it was replaced atomically
    age = killed_at - report.stat().st_mtime
    assert data["ended"] == "running" and age <= checkpoint_s + 1.0, (data["ended"], age)
    assert data["samples"] >= 40
    assert sum(data["screen_time_s"].values()) == pytest.approx(data["duration_s"], abs=0.01)
    assert data["screen_time_s"]["jerry"] == pytest.approx(data["duration_s"], abs=0.01)
    updated = datetime.fromisoformat(data["updated_at"])
    assert abs((datetime.now(UTC) - updated).total_seconds() - age) < 2.0
    rows = list(csv.DictReader(timeline.open()))
    times = [float(r["t_s"]) for r in rows]
    assert all(b > a for a, b in itertools.pairwise(times))
    # Every sample up to the last flush: at least what the checkpoint had, and up to FLUSH_S before the kill.
    assert len(rows) >= data["samples"]
    assert times[-1] >= data["end_s"] + age - 2.0 - FLUSH_SLACK_S
    with av.open(str(overlay)) as container:  # a fragmented MP4 plays without its end
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 25 * 10


def test_report_on_a_full_filesystem_fails_with_one_line_and_the_rest_is_written(
    color_model: Path, tmp_path: Path
) -> None:
    full = tmp_path / "full"
    full.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.fail(f"this test mounts a small tmpfs and needs root (CI runs as root): {exc}")
    try:
        fd = os.open(full / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill it to the last block
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        clip = write_color_video(tmp_path / "clip.mp4", [(1, 0, 2), (2, 2, 4)], [i / 10 for i in range(40)])
        result = subprocess.run(
            cli_args(
                str(clip),
                "--model",
                str(color_model),
                "--every",
                "0.5",
                "--report",
                str(full / "r.json"),
                "--csv",
                str(tmp_path / "t.csv"),
                "--output",
                str(tmp_path / "o.mp4"),
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        subprocess.run(["umount", str(full)], check=False)
    assert result.returncode == 4, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "No space left on device" in errors[0] and "r.json" in errors[0], errors
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert len(rows) == 8  # the timeline is complete
    with av.open(str(tmp_path / "o.mp4")) as container:  # and so is the overlay
        assert sum(1 for _ in container.decode(video=0)) == 40


def test_several_sources_one_dead_the_others_finish_and_the_exit_says_which(
    rtsp_server: RtspServer, color_model: Path, tmp_path: Path
) -> None:
    url = rtsp_server.start(fps=25, pattern="red")
    dead = f"rtsp://admin:secret@127.0.0.1:{free_port()}/cam"
    started = time.monotonic()
    result = subprocess.run(
        cli_args(
            url,
            dead,
            "--model",
            str(color_model),
            "--max-reconnects",
            "1",
            "--duration",
            "8",
            "--report",
            str(tmp_path / "r.json"),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 3
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "1 of 2 sources failed" in errors[0] and "admin:***@127.0.0.1" in errors[0], errors
    assert "secret" not in result.stderr + result.stdout
    sections = json.loads((tmp_path / "r.json").read_text())["sources"]
    live, failed = sections
    assert live["ended"] == "duration reached" and live["samples"] >= 4
    assert failed["ended"].startswith("source failed") and failed["samples"] == 0


def test_duration_stops_a_camera_that_never_answers(color_model: Path, tmp_path: Path) -> None:
    """--duration is wall clock from the start, whatever the source does; nothing received is a failure."""
    url = f"rtsp://127.0.0.1:{free_port()}/x"
    started = time.monotonic()
    result = subprocess.run(
        cli_args(url, "--model", str(color_model), "--duration", "5", "--report", str(tmp_path / "r.json")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert elapsed < 5 + 8, f"took {elapsed:.1f} s"  # interpreter and model load included
    assert result.returncode == 3
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "nothing received" in errors[0], errors
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["samples"] == 0 and data["duration_s"] == 0.0


def test_resume_carries_totals_on_and_the_downtime_is_an_outage(
    rtsp_server: RtspServer, color_model: Path, tmp_path: Path
) -> None:
    url = rtsp_server.start(fps=25, pattern="red")
    report = tmp_path / "r.json"
    first = watch(url, color_model, every_s=0.25, duration_s=4, report=report).run()
    time.sleep(1.0)
    second_run = watch(url, color_model, every_s=0.25, duration_s=4, report=report, resume=True)
    second = second_run.run()
    assert second.resumed == 1
    assert second.samples > first.samples
    assert second.screen_time_s["jerry"] > first.screen_time_s["jerry"] + 1.0
    assert sum(second.screen_time_s.values()) == pytest.approx(second.duration_s, abs=1e-6)
    # The time between the runs (at least the 1 s sleep) is an outage starting where the first ended.
    between = [o for o in second.outages if o["start_s"] == pytest.approx(first.end_s, abs=1e-3)]
    assert between and between[0]["end_s"] - between[0]["start_s"] >= 1.0
    data = json.loads(report.read_text())
    assert data["resumed"] == 1 and data["samples"] == second.samples


def test_sigterm_is_a_clean_stop_with_exit_0(rtsp_server: RtspServer, color_model: Path, tmp_path: Path) -> None:
    url = rtsp_server.start(fps=25, pattern="red")
    proc = subprocess.Popen(
        cli_args(url, "--model", str(color_model), "--report", str(tmp_path / "r.json")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["ended"] == "interrupted"
    assert os.path.getsize(tmp_path / "r.json") > 0
