"""The live path against a real RTSP server on loopback: what unit tests with fake sources cannot show.

OpenCV's FFmpeg backend buffers, probes and times out in its own ways; these tests check that,
through it, latency stays bounded when inference is slower than the stream, sampling follows
wall-clock time, screen time adds up, and a dead or hung camera ends the run instead of hanging it.
"""

from __future__ import annotations

import statistics
import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest
from helpers import SlowEngine
from rtsp_control import RtspServer, free_port

from stream.engine import Engine
from stream.errors import SourceConnectionError
from stream.pipeline import Pipeline
from stream.records import Prediction
from stream.report import Report
from stream.sampler import Sampler
from stream.sources import NetworkSource, open_source

FPS = 25


def run_pipeline(
    url: str, engine: Engine, every_s: float, duration_s: float | None, timeout_s: float = 5.0
) -> tuple[list[Prediction], Report]:
    """Analyse `url` for `duration_s` wall-clock seconds through the real library path."""
    source = open_source(url, timeout_s=timeout_s)
    assert isinstance(source, NetworkSource)
    pipeline = Pipeline(source, engine, Sampler(every_s), sinks=[], stop=threading.Event(), duration_s=duration_s)
    predictions = list(pipeline.run())
    assert pipeline.report is not None
    return predictions, pipeline.report


def assert_accounting(predictions: list[Prediction], report: Report) -> None:
    """Every sample counted once, in order, and each standing for the time until the next."""
    times = [entry.t_s for entry in report.timeline]
    assert times == [p.t_s for p in predictions]
    assert all(b > a for a, b in pairwise(times)), "a frame was analysed twice or out of order"
    assert report.samples == len(predictions)
    assert sum(report.screen_time_s.values()) == pytest.approx(report.duration_s, abs=1e-6)


def test_latency_does_not_build_up_with_slow_engine(rtsp_server: RtspServer, color_model: Path) -> None:
    """Inference at ~5/s against 25 fps: old frames are dropped and counted, never queued."""
    delay_s, duration_s = 0.2, 8.0
    url = rtsp_server.start(fps=FPS)
    predictions, report = run_pipeline(url, SlowEngine(color_model, delay_s), every_s=0, duration_s=duration_s)

    assert report.ended == "duration reached"
    assert report.duration_s == pytest.approx(duration_s, abs=1.0)
    assert report.samples >= 15, f"only {report.samples} samples in {report.duration_s:.1f} s"
    latencies = [p.latency_s for p in predictions]
    assert max(latencies) < delay_s + 0.35, f"latencies {latencies}"
    third = len(latencies) // 3
    first, last = statistics.mean(latencies[:third]), statistics.mean(latencies[-third:])
    assert last <= first + 0.05, f"latency grows: first third {first:.3f} s, last third {last:.3f} s"
    # The reader kept pace with the stream (nothing piled up in the socket or in FFmpeg) ...
    assert report.frames_read >= 0.8 * FPS * report.duration_s, f"{report.frames_read} frames read"
    # ... and every frame it read was either analysed or counted as dropped (one may be left in the buffer).
    assert report.dropped > 0
    assert 0 <= report.frames_read - report.samples - report.dropped <= 1
    assert_accounting(predictions, report)


def test_sampling_follows_wall_clock_and_sees_the_picture(rtsp_server: RtspServer, color_model: Path) -> None:
    """every_s=0.5 on a live stream: about two samples a second, each of the colour actually sent."""
    duration_s, every_s = 5.0, 0.5
    url = rtsp_server.start(fps=FPS, pattern="red")
    predictions, report = run_pipeline(url, Engine(color_model, "cpu"), every_s=every_s, duration_s=duration_s)

    assert report.ended == "duration reached"
    expected = report.duration_s / every_s
    assert expected - 2 <= report.samples <= expected + 2, f"{report.samples} samples in {report.duration_s:.2f} s"
    gaps = [b.t_s - a.t_s for a, b in pairwise(report.timeline)]
    assert all(every_s - 0.2 <= gap <= every_s + 0.3 for gap in gaps), f"sample gaps {gaps}"
    assert {p.label for p in predictions} == {"jerry"}  # red through H.264 and RTSP is still red
    assert report.screen_time_s["jerry"] == pytest.approx(report.duration_s, abs=1e-6)
    assert_accounting(predictions, report)


def test_picture_change_reaches_results_promptly(rtsp_server: RtspServer, color_model: Path) -> None:
    """End-to-end delay, camera to verdict, including what FFmpeg buffers (which latency_s cannot see)."""
    delay_s, switch_after_s = 0.2, 4.0
    url = rtsp_server.start(fps=FPS, pattern="red")
    source = open_source(url)
    pipeline = Pipeline(source, SlowEngine(color_model, delay_s), Sampler(0), sinks=[], stop=threading.Event())
    switched_at: float | None = None
    seen_after_s: float | None = None
    labels_after: list[str] = []
    started = time.monotonic()
    for prediction in pipeline.run():
        now = time.monotonic()
        if switched_at is None and now - started >= switch_after_s:
            switched_at = rtsp_server.set_pattern("blue")
        elif switched_at is not None:
            if seen_after_s is None and prediction.label == "tom":
                seen_after_s = now - switched_at
            if seen_after_s is not None:
                labels_after.append(prediction.label)
                if len(labels_after) >= 5:
                    pipeline.stop.set()
        if now - started > 15:
            pipeline.stop.set()
    assert switched_at is not None and seen_after_s is not None, "the new picture never arrived"
    # A backlog would show here: after 4 s at 5 analyses/s against 25 fps it would be ~16 s.
    assert seen_after_s < delay_s * 2 + 0.6, f"blue reached the results {seen_after_s:.2f} s after it was sent"
    assert labels_after == ["tom"] * len(labels_after), f"stale frames after the switch: {labels_after}"
    assert pipeline.report is not None and pipeline.report.ended == "interrupted"


def test_unreachable_url_fails_fast_without_leaking_password(
    rtsp_server: RtspServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """A closed port and a wrong path both raise SourceConnectionError quickly, credentials masked."""
    url = rtsp_server.start(fps=FPS)
    urls = [
        f"rtsp://user:secret@127.0.0.1:{free_port()}/x",  # nothing listens
        url.replace("rtsp://", "rtsp://user:secret@").replace("/test", "/nope"),  # server answers 404
    ]
    for bad in urls:
        source = open_source(bad)
        started = time.monotonic()
        with pytest.raises(SourceConnectionError) as info:
            source.open()
        assert time.monotonic() - started < 15
        assert "secret" not in str(info.value) and "user:***@127.0.0.1" in str(info.value)
    out, err = capfd.readouterr()  # FFmpeg and OpenCV log on fd 2 themselves
    assert "secret" not in out + err


def test_killed_server_ends_run_promptly(rtsp_server: RtspServer, color_model: Path) -> None:
    """The camera disappears mid-run: the run ends with what was seen, it does not hang."""
    url = rtsp_server.start(fps=FPS, pattern="red")
    threading.Timer(2.5, rtsp_server.stop).start()
    started = time.monotonic()
    predictions, report = run_pipeline(url, Engine(color_model, "cpu"), every_s=0.25, duration_s=None)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5 + 5.0, f"run took {elapsed:.1f} s after the server died"
    assert report.samples >= 4
    assert_accounting(predictions, report)


def test_hung_server_ends_run_within_read_timeout(rtsp_server: RtspServer, color_model: Path) -> None:
    """The camera stops sending but keeps the connection open: the read timeout must end the run."""
    timeout_s = 1.0
    url = rtsp_server.start(fps=FPS, pattern="red")
    threading.Timer(2.5, rtsp_server.freeze).start()
    started = time.monotonic()
    predictions, report = run_pipeline(
        url, Engine(color_model, "cpu"), every_s=0.25, duration_s=None, timeout_s=timeout_s
    )
    elapsed = time.monotonic() - started
    # OpenCV's grab() reports failure only after 2-3 timeouts: the first one or two return True and
    # hand back the previous picture again (OpenCV 5.0 / FFmpeg, RTSP over TCP), so allow 3x + slack.
    assert elapsed < 2.5 + 3 * timeout_s + 2.0, f"run took {elapsed:.1f} s after the server hung"
    assert report.samples >= 4
    assert_accounting(predictions, report)


def test_restart_on_same_port(rtsp_server: RtspServer) -> None:
    """The fixture's restart keeps the URL, as a rebooting camera does (for reconnect tests)."""
    url = rtsp_server.start(fps=FPS)
    source = open_source(url)
    source.open()
    source.close()
    assert rtsp_server.restart(fps=FPS) == url
    source = open_source(url)
    info = source.open()
    try:
        assert (info.width, info.height, info.live) == (320, 240, True)
        assert source.grab() is not None
    finally:
        source.close()
    rtsp_server.terminate()  # SIGTERM is a clean exit
