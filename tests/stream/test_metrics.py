"""Prometheus metrics: names follow the conventions, the exposition passes promtool, counters never
go back, two runs in one process keep their own registries, and the final numbers are the report's."""

from __future__ import annotations

import re
import urllib.request
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream import watch
from stream.counting.stats import RunState, RunStats
from stream.model.card import ModelCard
from stream.outputs.events import Ended, Sampled, SourceTag, Started
from stream.outputs.metrics import METRICS, RunCollector, RunMetrics
from stream.records import Frame, Prediction, VideoInfo
from tests.helpers import promtool_check, write_color_video

UNITS = ("seconds", "bytes", "ratio", "total", "info")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_color_video(
        tmp_path_factory.mktemp("v") / "clip.mp4", [(1, 0, 2), (2, 2, 5)], [i / 10 for i in range(50)]
    )


@pytest.mark.parametrize("spec", METRICS, ids=lambda m: m.name)
def test_metric_names_follow_prometheus_conventions(spec):
    assert re.fullmatch(r"screentime_[a-z][a-z0-9_]*", spec.name)
    assert spec.name.endswith("_total") == (spec.kind == "counter")
    assert spec.name.endswith("_info") == (spec.kind == "info")
    if "seconds" in spec.name:  # base units, and the unit last (before _total)
        assert spec.name.endswith(("_seconds", "_seconds_total"))
    assert not re.search(r"_(ms|milliseconds|minutes|hours|percent)(_|$)", spec.name)
    # Bounded labels only: never a time, a URL or an id (a cluster node's id on an info metric: as many as nodes).
    bounded = {"source", "class", "state", "output", "model", "model_version", "device", "version"}
    assert set(spec.labels) <= bounded | ({"node", "host"} if spec.kind == "info" else set())


CARD = ModelCard(("neither", "jerry"), 32, 32)


def stats(**fields) -> RunStats:
    return RunStats(source="cam", live=True, classes=["neither", "jerry"], characters=["jerry"], **fields)


def values(collector: RunCollector) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in collector.collect()
        for sample in family.samples
    }


def test_counters_never_go_back_while_gauges_follow():
    latest = [stats(screen_s={"jerry": 5.0}, outage_s=3.2, state=RunState.RUNNING)]
    collector = RunCollector([("cam", lambda: latest[0])], {"model": "m.onnx"})
    first = values(collector)
    assert first[("screentime_outage_seconds_total", (("source", "cam"),))] == 3.2
    assert first[("screentime_source_up", (("source", "cam"),))] == 1.0
    latest[0] = replace(  # the pipeline's next snapshot
        latest[0],
        outage_s=3.1,  # a running outage settles a little lower than last shown
        state=RunState.RECONNECTING,
        current=Prediction(1.0, "jerry", 0.75, present=("jerry",)),
    )
    second = values(collector)
    assert second[("screentime_outage_seconds_total", (("source", "cam"),))] == 3.2
    assert second[("screentime_source_up", (("source", "cam"),))] == 0.0
    assert second[("screentime_current_class", (("class", "jerry"), ("source", "cam")))] == 1.0
    assert second[("screentime_current_confidence_ratio", (("source", "cam"),))] == 0.75
    assert second[("screentime_screen_seconds_total", (("class", "jerry"), ("source", "cam")))] == 5.0


def test_a_source_that_leaves_a_fleet_takes_its_series_and_histograms_with_it():
    """The fleet service's metrics (RunMetrics as a run output): a removed camera's series end."""
    metrics = RunMetrics({"version": "x"})
    door, yard = SourceTag(1, "door", "rtsp://door", True), SourceTag(2, "yard", "rtsp://yard", True)
    for tag in (door, yard):
        latest = stats(screen_s={"jerry": 2.0}, state=RunState.RUNNING, inferences=0)
        metrics.handle(Started(tag, VideoInfo(0, 0, None, None, True), CARD, latest))
        busy = replace(latest, inferences=1, inference_s=0.02)
        sample = Prediction(1.0, "jerry", 0.9, present=("jerry",), latency_s=0.3)
        metrics.handle(Sampled(tag, sample, Frame(None, 1.0, 0), busy))
    text = metrics.scrape()
    for name in ("door", "yard"):
        assert f'screentime_latency_seconds_count{{source="{name}"}} 1.0' in text
        assert f'screentime_inference_seconds_count{{source="{name}"}} 1.0' in text
    metrics.handle(Ended(door, None, latest))
    text = metrics.scrape()
    assert 'source="door"' not in text and 'screentime_latency_seconds_count{source="yard"} 1.0' in text
    promtool_check(text)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def test_a_file_run_exposes_every_metric_and_ends_on_the_reports_totals(clip, color_model):
    run = watch(clip, color_model, every_s=0.5, metrics_port=0, name="episode")
    other = watch(clip, color_model, every_s=1.0, metrics_port=0)  # its own registry and port: no clash
    metrics = run.monitoring.metrics
    assert metrics is not None and metrics.host == "127.0.0.1"
    during = None
    for i, _ in enumerate(run):
        if i == 3:
            during = scrape(metrics.port)
    report = run.report
    other.run()
    assert during is not None and 'source="episode"' in during
    final = metrics.scrape()
    promtool_check(during)
    promtool_check(final)
    families = {f.name: f for f in text_string_to_metric_families(final)}
    for spec in METRICS:
        if not spec.name.startswith(("screentime_outbox", "screentime_output", "screentime_camera")):  # MQTT, serve
            assert spec.name.removesuffix("_total") in families, spec.name  # the text format: info is a gauge
    screen = {s.labels["class"]: s.value for s in families["screentime_screen_seconds"].samples}
    assert screen == pytest.approx(report.screen_time_s, abs=0.1)
    samples = families["screentime_samples"].samples
    assert [s.value for s in samples] == [report.samples]
    inference = [s for s in families["screentime_inference_seconds"].samples if s.name.endswith("_count")]
    assert inference[0].value == report.samples - report.inferences_saved  # one observation per model run
    assert 'source="clip.mp4"' in other.monitoring.metrics.scrape()
    assert 'source="episode"' not in other.monitoring.metrics.scrape()
    with pytest.raises(OSError):  # the server is gone with the run
        scrape(metrics.port)
