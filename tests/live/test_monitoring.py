"""Monitoring against real parts: the RTSP server, a Mosquitto broker started here, Prometheus's promtool.

Events follow the picture (red -> blue: jerry, then tom) with the report's times; availability is
online, then offline on a clean stop or by the last will when the process is killed; retained
totals reach a subscriber that comes later; a broker that dies mid-run never stops the analysis;
/metrics scraped during a run passes promtool and its counters only grow.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import promtool_check
from mqtt_control import Broker, Received, Subscriber, event
from prometheus_client.parser import text_string_to_metric_families
from rtsp_control import RtspServer, free_port

from stream import watch

EVERY_S = 0.25


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream.cli", "watch", *args, "--no-dashboard"]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def counters(exposition: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition)
        if family.type in ("counter", "histogram")
        for s in family.samples
    }


def segment(message: Received) -> tuple[str, float, float]:
    after = message.json()["after"]
    return after["class"], after["start_s"], after["end_s"]


def test_events_availability_retained_totals_and_metrics_from_the_cli(
    rtsp_server: RtspServer, mqtt_broker: Broker, color_model: Path, tmp_path: Path
) -> None:
    url = rtsp_server.start(fps=25, pattern="red")
    sub = Subscriber(mqtt_broker.port, "st/#")
    metrics_port = free_port()
    report_path = tmp_path / "r.json"
    proc = subprocess.Popen(
        cli_args(
            url,
            "--model",
            str(color_model),
            "--every",
            str(EVERY_S),
            "--report",
            str(report_path),
            "--name",
            "cam",
            "--mqtt",
            mqtt_broker.url("st", credentials="op:secret@"),  # an anonymous broker takes any credentials
            "--mqtt-update",
            "1",
            "--metrics-port",
            str(metrics_port),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        online = sub.wait_for(lambda m: m.topic == "st/available" and m.payload == "online", 30, "online")
        sub.wait_for(event("new", "jerry"), 30, "new jerry")
        time.sleep(3.5)  # updates, at most one a second
        exposition = scrape(metrics_port)
        rtsp_server.set_pattern("blue")
        sub.wait_for(event("new", "tom"), 15, "new tom")
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "op:***@127.0.0.1" in out + err and "secret" not in out + err  # rich logs to stdout
    offline = sub.wait_for(lambda m: m.topic == "st/available" and m.payload == "offline", 10, "offline")
    assert offline.at > online.at
    report = json.loads(report_path.read_text())

    events = sub.received("st/events")
    kinds = [(m.json()["type"], m.json()["after"]["class"]) for m in events]
    assert kinds.index(("new", "jerry")) < kinds.index(("end", "jerry")) < kinds.index(("new", "tom"))
    assert kinds[-1] == ("end", "tom")
    # Every ended event segment is one of the report's segments, to the millisecond.
    reported = [(s["class"], s["start_s"], s["end_s"]) for s in report["segments"]]
    ended = [segment(m) for m in events if m.json()["type"] == "end"]
    for label, start, end in ended:
        assert any(c == label and abs(a - start) <= 0.0011 and abs(b - end) <= 0.0011 for c, a, b in reported), (
            label,
            start,
            end,
            reported,
        )
    assert ended[-1][2] == pytest.approx(report["end_s"], abs=0.0011)
    jerry_updates = [m.json()["after"]["last_s"] for m in events if kinds[events.index(m)] == ("update", "jerry")]
    assert len(jerry_updates) >= 2 and all(b - a >= 1.0 - 1e-6 for a, b in itertools.pairwise(jerry_updates))
    first_end = next(m.json() for m in events if m.json()["type"] == "end")
    assert first_end["after"]["start_time"] < first_end["after"]["end_time"]  # ISO times, UTC
    assert first_end["after"]["mean_confidence"] > 0.9 and first_end["before"]["end_s"] is None

    late = Subscriber(mqtt_broker.port, "st/#")  # comes after the run: gets what was retained
    try:
        totals = late.wait_for(lambda m: m.topic == "st/cam/totals", 5, "retained totals")
        state = late.wait_for(lambda m: m.topic == "st/cam/state", 5, "retained state")
        available = late.wait_for(lambda m: m.topic == "st/available", 5, "retained availability")
    finally:
        late.close()
        sub.close()
    assert totals.retain and totals.json()["final"] and totals.json()["screen_time_s"] == report["screen_time_s"]
    assert (state.payload, available.payload) == ("offline", "offline")

    promtool_check(exposition)
    assert 'screentime_output_connected{output="mqtt"} 1.0' in exposition
    assert 'screentime_source_up{source="cam"} 1.0' in exposition


def test_the_last_will_says_offline_when_the_process_is_killed(
    rtsp_server: RtspServer, mqtt_broker: Broker, color_model: Path
) -> None:
    url = rtsp_server.start(fps=25, pattern="red")
    sub = Subscriber(mqtt_broker.port, "screentime/available")
    proc = subprocess.Popen(
        cli_args(url, "--model", str(color_model), "--mqtt", mqtt_broker.url()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sub.wait_for(lambda m: m.payload == "online", 30, "online")
    finally:
        proc.kill()  # SIGKILL: no goodbye; the broker publishes the will
        proc.wait(timeout=10)
    killed = time.monotonic()
    try:
        will = sub.wait_for(lambda m: m.payload == "offline", 10, "offline (the last will)")
    finally:
        sub.close()
    assert will.at - killed < 5.0


def test_a_broker_that_dies_never_stops_the_analysis_and_events_resume(
    rtsp_server: RtspServer, mqtt_broker: Broker, color_model: Path
) -> None:
    url = rtsp_server.start(fps=25, pattern="red")
    sub = Subscriber(mqtt_broker.port, "screentime/#")
    run = watch(url, color_model, every_s=EVERY_S, mqtt=mqtt_broker.url(), name="cam", mqtt_update_s=1)
    sender = run.monitoring.senders[0]
    counted: list[float] = []  # wall (monotonic) time of each sample
    killed_at = restarted_at = switched_at = None
    for _ in run:
        now = time.monotonic()
        counted.append(now)
        if killed_at is None and any(event("new", "jerry")(m) for m in sub.received()):
            mqtt_broker.kill()
            killed_at = now
        elif killed_at is not None and restarted_at is None and now - killed_at >= 4.0:
            mqtt_broker.start()
            restarted_at = time.monotonic()
        elif restarted_at is not None and switched_at is None and sub.connected.is_set() and sender.connected:
            rtsp_server.set_pattern("blue")
            switched_at = time.monotonic()
        elif switched_at is not None and any(event("new", "tom")(m) for m in sub.received()):
            run.stop()
        if len(counted) > 200:
            run.stop()  # more than 50 s: the assertions below say why
    sub.close()
    assert killed_at is not None and restarted_at is not None and switched_at is not None, "the run ended early"
    tom = [m for m in sub.received("screentime/events") if event("new", "tom")(m)]
    assert tom and tom[0].at > restarted_at, "events did not resume after the broker came back"
    during = [t for t in counted if killed_at < t < restarted_at]
    assert len(during) >= 0.8 * (restarted_at - killed_at) / EVERY_S, "samples stalled while the broker was down"
    assert max(b - a for a, b in itertools.pairwise(counted)) < 1.0
    report = run.report
    assert report is not None and report.samples == len(counted) and report.ended == "interrupted"
    assert sum(report.screen_time_s.values()) == pytest.approx(report.duration_s, abs=1e-6)
    assert report.screen_time_s["jerry"] > 4.0 and report.screen_time_s["tom"] > 0
    assert sender.outbox.dropped == 0  # a few seconds away fit in the outbox
    online = [m for m in sub.received("screentime/available") if m.payload == "online"]
    assert online[-1].at > restarted_at  # said again to the broker that had forgotten


def test_metrics_scraped_during_a_live_run_grow_and_end_on_the_report(
    rtsp_server: RtspServer, color_model: Path
) -> None:
    url = rtsp_server.start(fps=25, pattern="red")
    run = watch(url, color_model, every_s=EVERY_S, metrics_port=free_port())
    metrics = run.monitoring.metrics
    scrapes: list[str] = []
    for i, _ in enumerate(run):
        if i in (8, 24):
            scrapes.append(scrape(metrics.port))
        if i == 12:
            rtsp_server.set_pattern("blue")
        if i == 32:
            run.stop()
    first, second = scrapes
    for exposition in scrapes:
        promtool_check(exposition)
    before, after = counters(first), counters(second)
    assert before.keys() <= after.keys()
    for key, value in before.items():
        if key[0].endswith("_total") or key[0].endswith(("_count", "_sum")):
            assert after[key] >= value, key
    name = run.names[0]
    tom = ("screentime_screen_seconds_total", (("class", "tom"), ("source", name)))
    assert after[tom] > before[tom]
    latency = ("screentime_latency_seconds_count", (("source", name),))
    assert after[latency] >= 24
    final = {f.name: f for f in text_string_to_metric_families(metrics.scrape())}
    screen = {s.labels["class"]: s.value for s in final["screentime_screen_seconds"].samples}
    assert screen == pytest.approx(run.report.screen_time_s, abs=0.1)
    up = final["screentime_source_up"].samples[0].value
    assert up == 0.0  # ended
