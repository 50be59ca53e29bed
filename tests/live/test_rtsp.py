"""The live path against a real RTSP server on loopback: what unit tests with fake sources cannot show.

FFmpeg (through PyAV, the default, or OpenCV) buffers, probes and times out in its own ways; these
tests check that, through it, latency stays bounded when inference is slower than the stream, sampling follows
wall-clock time, screen time adds up, and a dead, hung or rebooting camera is survived and its
outage cut from the accounting instead of hanging the run or being counted as screen time.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from helpers import SlowEngine
from rtsp_control import RtspServer, free_port

from stream.counting.report import Report
from stream.counting.stats import RunStats
from stream.errors import SourceConnectionError
from stream.model.engine import Engine
from stream.records import Prediction
from stream.run.pipeline import Pipeline
from stream.settings import SourceSettings
from stream.sources.open import NetworkSource, PyAVNetworkSource, open_source
from stream.sources.reconnect import ReconnectPolicy

FPS = 25
OPEN_S = 1.5  # FFmpeg probes ~1.2 s of stream before open() returns
FAST_RETRY = ReconnectPolicy(initial_s=0.2, max_s=0.5)  # keeps reconnect tests short


def watchdog(stop: threading.Event, after_s: float) -> threading.Timer:
    """Set `stop` after `after_s` so a misbehaving source (or a reconnect loop) fails a test, never hangs it."""
    timer = threading.Timer(after_s, stop.set)
    timer.daemon = True
    timer.start()
    return timer


def network_source(
    url: str, timeout_s: float = 5.0, sparse_every_s: float | None = None, backend: str = "pyav"
) -> NetworkSource | PyAVNetworkSource:
    """As `watch` builds it: sampled every `sparse_every_s` with no overlay video (None: every frame)."""
    settings = SourceSettings(every_s=sparse_every_s or 0.0, timeout_s=timeout_s, rtsp_backend=backend)
    source = open_source(url, settings)
    assert isinstance(source, NetworkSource if backend == "opencv" else PyAVNetworkSource)
    return source


def run_pipeline(
    source: NetworkSource | PyAVNetworkSource,
    engine: Engine,
    every_s: float,
    duration_s: float,
    reconnect: ReconnectPolicy | None = None,
    at: tuple[float, Callable[[], None]] | None = None,
    stats: list[Callable[[], RunStats]] | None = None,
) -> tuple[list[Prediction], Report]:
    """Analyse `source` for `duration_s` wall-clock seconds; `at=(s, action)` runs `action` s into the
    run; `stats` gets a reader of the run's latest live numbers (decoded pictures ...)."""
    stop = threading.Event()
    pipeline = Pipeline(
        source,
        engine,
        SourceSettings(every_s=every_s, duration_s=duration_s, skip_similar=0.0),
        stop=stop,
        reconnect=reconnect,
    )
    if stats is not None:
        stats.append(lambda: pipeline.stats)  # a frozen snapshot, replaced as the run goes
    guard = watchdog(stop, OPEN_S + duration_s + 20)
    predictions: list[Prediction] = []
    pending = at
    try:
        for prediction in pipeline.run():
            predictions.append(prediction)
            if pending is not None and prediction.t_s >= pending[0]:
                # Off this thread, so the pipeline keeps consuming while the action runs.
                threading.Thread(target=pending[1], daemon=True).start()
                pending = None
    finally:
        guard.cancel()
    assert pending is None, "the run ended before the scripted event"
    assert pipeline.report is not None
    assert pipeline.report.ended == "duration reached", pipeline.report.ended
    return predictions, pipeline.report


def assert_accounting(predictions: list[Prediction], report: Report) -> None:
    """Every sample counted once and in order; totals add up to the duration (which excludes outages)."""
    assert report.timeline is None  # a live run's timeline goes to disk (--csv), never into memory
    times = [p.t_s for p in predictions]
    assert all(b > a for a, b in pairwise(times)), "a frame was analysed twice or out of order"
    assert report.samples == len(predictions)
    # Exact, outages or not: duration_s excludes them and every sample stands until the next or an outage.
    assert sum(report.screen_time_s.values()) == pytest.approx(report.duration_s, abs=1e-6)
    for outage in report.outages:
        # The report rounds to milliseconds; the first frame after a reconnect is the outage's end.
        inside = [t for t in times if outage["start_s"] + 1e-3 < t < outage["end_s"] - 1e-3]
        assert not inside, f"samples {inside} fall inside outage {outage}"


def test_latency_does_not_build_up_with_slow_engine(rtsp_server: RtspServer, color_model: Path) -> None:
    """Inference at ~5/s against 25 fps: old frames are dropped and counted, never queued."""
    delay_s, duration_s = 0.2, 8.0
    source = network_source(rtsp_server.start(fps=FPS))
    predictions, report = run_pipeline(source, SlowEngine(color_model, delay_s), every_s=0, duration_s=duration_s)

    # --duration is wall clock from the start, connecting included; the analysed time is what is left.
    assert duration_s - OPEN_S - 1.5 <= report.duration_s <= duration_s
    assert report.samples >= 15, f"only {report.samples} samples in {report.duration_s:.1f} s"
    latencies = [p.latency_s for p in predictions]
    assert max(latencies) < delay_s + 0.35, f"latencies {latencies}"
    third = len(latencies) // 3
    first, last = statistics.mean(latencies[:third]), statistics.mean(latencies[-third:])
    assert last <= first + 0.05, f"latency grows: first third {first:.3f} s, last third {last:.3f} s"
    # The reader kept pace with the stream (nothing piled up in the socket or in FFmpeg) ...
    assert report.frames_read >= 0.8 * FPS * report.duration_s, f"{report.frames_read} frames read"
    # ... and every frame it read was analysed or counted as dropped (the last few are read while stopping).
    assert report.dropped > 0
    assert 0 <= report.frames_read - report.samples - report.dropped <= 3
    assert (report.outages, report.reconnects) == ([], 0), "a healthy stream was taken for a dropped one"
    assert_accounting(predictions, report)


@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_sampling_follows_wall_clock_and_sees_the_picture(
    rtsp_server: RtspServer, color_model: Path, backend: str
) -> None:
    """every_s=0.5 on a live stream: about two samples a second, each of the colour actually sent."""
    duration_s, every_s = 5.0, 0.5
    source = network_source(rtsp_server.start(fps=FPS, pattern="red"), sparse_every_s=every_s, backend=backend)
    predictions, report = run_pipeline(source, Engine(color_model, "cpu"), every_s=every_s, duration_s=duration_s)

    expected = report.duration_s / every_s
    assert expected - 2 <= report.samples <= expected + 2, f"{report.samples} samples in {report.duration_s:.2f} s"
    gaps = [b.t_s - a.t_s for a, b in pairwise(predictions)]
    assert all(every_s - 0.2 <= gap <= every_s + 0.3 for gap in gaps), f"sample gaps {gaps}"
    assert {p.label for p in predictions} == {"jerry"}  # red through H.264 and RTSP is still red
    assert report.screen_time_s["jerry"] == pytest.approx(report.duration_s, abs=1e-6)
    assert (report.outages, report.reconnects) == ([], 0)
    assert_accounting(predictions, report)


def test_picture_change_reaches_results_promptly(rtsp_server: RtspServer, color_model: Path) -> None:
    """End-to-end delay, camera to verdict, including what FFmpeg buffers (which latency_s cannot see)."""
    delay_s, switch_after_s = 0.2, 4.0
    source = network_source(rtsp_server.start(fps=FPS, pattern="red"))
    stop = threading.Event()
    pipeline = Pipeline(
        source, SlowEngine(color_model, delay_s), SourceSettings(every_s=0, skip_similar=0.0), stop=stop
    )
    switched_at: float | None = None
    seen_after_s: float | None = None
    labels_after: list[str] = []
    guard = watchdog(stop, OPEN_S + switch_after_s + 10)
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
                    stop.set()
    guard.cancel()
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


def test_camera_reboot_reconnects_and_cuts_the_outage(rtsp_server: RtspServer, color_model: Path) -> None:
    """The server dies and comes back on the same URL with a new picture: analysis resumes, the gap is cut."""
    duration_s, down_s = 9.0, 1.5
    url = rtsp_server.start(fps=FPS, pattern="red")
    source = network_source(url)
    marks: dict[str, float] = {}

    def reboot() -> None:
        marks["down"] = source.clock()
        rtsp_server.stop()
        time.sleep(down_s)
        assert rtsp_server.start(fps=FPS, pattern="blue") == url
        marks["up"] = source.clock()

    predictions, report = run_pipeline(
        source, Engine(color_model, "cpu"), 0.25, duration_s, reconnect=FAST_RETRY, at=(1.0, reboot)
    )
    assert report.reconnects == 1 and len(report.outages) == 1, (report.reconnects, report.outages)
    outage = report.outages[0]
    assert outage["start_s"] == pytest.approx(marks["down"], abs=0.3)
    # Reopening costs a retry wait (<= 0.5 s here), FFmpeg's ~1.2 s probe and the first frame's
    # arrival, all counted as outage (the outage ends at the first frame after reconnecting).
    assert marks["up"] <= outage["end_s"] <= marks["up"] + 0.5 + OPEN_S + 1.0
    before = {p.label for p in predictions if p.t_s < outage["start_s"]}
    after = {p.label for p in predictions if p.t_s >= outage["end_s"]}
    assert (before, after) == ({"jerry"}, {"tom"})
    assert report.screen_time_s["jerry"] == pytest.approx(outage["start_s"] - predictions[0].t_s, abs=0.05)
    assert_accounting(predictions, report)
    rtsp_server.terminate()  # and the server itself exits cleanly on SIGTERM


def test_dead_camera_does_not_block_the_run(rtsp_server: RtspServer, color_model: Path) -> None:
    """The server dies for good: retries go on in the background and the run still ends on time."""
    duration_s = 4.0
    source = network_source(rtsp_server.start(fps=FPS, pattern="red"))
    marks: dict[str, float] = {}

    def kill() -> None:
        marks["down"] = source.clock()
        rtsp_server.stop()

    started = time.monotonic()
    predictions, report = run_pipeline(
        source, Engine(color_model, "cpu"), 0.25, duration_s, reconnect=FAST_RETRY, at=(1.0, kill)
    )
    elapsed = time.monotonic() - started
    assert elapsed < OPEN_S + duration_s + 2.0, f"run took {elapsed:.1f} s"
    assert {p.label for p in predictions} == {"jerry"} and report.samples >= 3
    assert len(report.outages) == 1 and report.reconnects == 0
    assert report.outages[0]["start_s"] == pytest.approx(marks["down"], abs=0.3)
    assert report.screen_time_s["jerry"] == pytest.approx(marks["down"] - predictions[0].t_s, abs=0.3)
    assert_accounting(predictions, report)


def test_hung_camera_does_not_block_the_run(rtsp_server: RtspServer, color_model: Path) -> None:
    """The server stops sending but keeps the connection open: the read timeout keeps the run in hand."""
    duration_s, timeout_s = 5.0, 1.0
    source = network_source(rtsp_server.start(fps=FPS, pattern="red"), timeout_s=timeout_s)
    marks: dict[str, float] = {}

    def freeze() -> None:
        marks["down"] = source.clock()
        rtsp_server.freeze()

    started = time.monotonic()
    predictions, report = run_pipeline(
        source, Engine(color_model, "cpu"), 0.25, duration_s, reconnect=FAST_RETRY, at=(1.0, freeze)
    )
    elapsed = time.monotonic() - started
    # A stop may find the reader inside one open or read timeout.
    assert elapsed < OPEN_S + duration_s + timeout_s + 2.0, f"run took {elapsed:.1f} s"
    assert len(report.outages) >= 1 and report.samples >= 3
    assert_accounting(predictions, report)

    # Nothing seen after the freeze is counted: a grab that waited out the read timeout is a
    # drop (OpenCV would hand back the previous picture with a still-advancing timestamp), and
    # the outage starts where the last good frame ended, not when the hang was noticed.
    stale = [round(p.t_s - marks["down"], 2) for p in predictions if p.t_s > marks["down"] + 0.1]
    assert not stale, f"stale samples {stale} s after the freeze"
    assert report.outages[0]["start_s"] == pytest.approx(marks["down"], abs=0.3)


@pytest.mark.parametrize(
    ("keyint", "bframes", "share"),
    [
        (FPS, 0, 0.1),  # a keyframe every second, sampled every second: keyframes only
        (4 * FPS, 2, 0.5),  # a keyframe every 4 s, IBBP: only the reference frames (a third) and the samples
    ],
)
def test_sparse_sampling_decodes_few_pictures_and_the_right_ones(
    rtsp_server: RtspServer, color_model: Path, keyint: int, bframes: int, share: float
) -> None:
    """every_s=1 on 25 fps: far fewer pictures decoded than frames received, every second still
    sampled, and each sample shows what the camera sent then (red, then blue after a switch)."""
    duration_s, every_s, switch_s = 12.0, 1.0, 7.0
    url = rtsp_server.start(fps=FPS, pattern="red", keyint=keyint, bframes=bframes)
    source = network_source(url, sparse_every_s=every_s)
    stats: list[Callable[[], RunStats]] = []
    marks: dict[str, float] = {}

    def switch() -> None:
        # Counted from here: the first seconds decode every frame while keyframe spacing is learnt.
        now = stats[0]()
        marks.update(blue=source.clock(), decoded=now.decoded, read=now.frames_read)
        marks.update(keyframes_only=source.keyframes_only)
        rtsp_server.set_pattern("blue")

    predictions, report = run_pipeline(
        source, Engine(color_model, "cpu"), every_s, duration_s, at=(switch_s, switch), stats=stats
    )
    end = stats[0]()
    decoded, read = end.decoded - marks["decoded"], end.frames_read - marks["read"]
    assert report.frames_read >= 0.8 * FPS * report.duration_s, f"{report.frames_read} frames read"
    assert decoded < share * read, f"{decoded} pictures decoded of the last {read} frames"
    assert marks["keyframes_only"] is (keyint == FPS)
    assert report.duration_s - 2 <= report.samples <= report.duration_s + 1, f"{report.samples} samples"
    gaps = [b.t_s - a.t_s for a, b in pairwise(predictions)]
    assert max(gaps) < 1.6, f"sample gaps {gaps}"  # a keyframe stands in for a due time up to 0.5 s early
    labels = [(round(p.t_s - marks["blue"], 2), p.label) for p in predictions]
    # The switch reaches the picture within a frame or two; keyframes-only sees it at the next keyframe.
    assert all(label == "jerry" for t, label in labels if t < 0), labels
    assert all(label == "tom" for t, label in labels if t > 1.2), labels
    assert (report.outages, report.reconnects, report.dropped) == ([], 0, 0)
    assert_accounting(predictions, report)
