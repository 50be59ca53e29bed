"""Prometheus metrics (`--metrics-port`): `/metrics` for a Prometheus server, as Frigate's `/api/metrics`.

Imported only when asked for. Each run has its own CollectorRegistry (no module-level default
registry, so two runs in one process never clash). Counters and gauges are read from each source's
latest `RunStats` snapshot at scrape time by a custom collector, so the pipeline does no extra work per sample;
only the two histograms are observed in `update()`. Labels are bounded: `source` (the `--name`,
else the masked URL or file name), `class` (the model's classes), `output` (mqtt, webhook).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from stream.counting.stats import RunState, RunStats
from stream.model.card import ModelCard
from stream.outputs import events as ev
from stream.outputs.events import Event, OutputBase, SourceTag
from stream.outputs.outbox import Sender
from stream.version import __version__

PREFIX = "screentime_"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exposed (counters with `_total`)
    kind: str  # counter, gauge, histogram, info
    labels: tuple[str, ...]
    help: str


METRICS = (
    MetricSpec("screentime_screen_seconds_total", "counter", ("source", "class"), "Seconds each class was on screen."),
    MetricSpec("screentime_samples_total", "counter", ("source",), "Samples analysed and counted."),
    MetricSpec("screentime_inferences_total", "counter", ("source",), "Model runs."),
    MetricSpec(
        "screentime_inferences_saved_total", "counter", ("source",), "Samples that reused a near-duplicate's result."
    ),
    MetricSpec("screentime_frames_dropped_total", "counter", ("source",), "Live frames dropped for newer ones."),
    MetricSpec("screentime_reconnects_total", "counter", ("source",), "Reconnections of a live source."),
    MetricSpec("screentime_outage_seconds_total", "counter", ("source",), "Seconds a live source was down."),
    MetricSpec("screentime_source_up", "gauge", ("source",), "1 while the source delivers pictures, else 0."),
    MetricSpec("screentime_source_state", "gauge", ("source", "state"), "1 for the source's current state."),
    MetricSpec("screentime_current_class", "gauge", ("source", "class"), "1 for each class the latest sample shows."),
    MetricSpec(
        "screentime_current_confidence_ratio", "gauge", ("source",), "Probability of the latest sample's class."
    ),
    MetricSpec("screentime_latency_seconds", "histogram", ("source",), "Capture-to-count latency of live samples."),
    MetricSpec("screentime_inference_seconds", "histogram", ("source",), "Model time per frame."),
    MetricSpec("screentime_model_info", "info", ("model", "model_version", "device", "version"), "The model in use."),
    MetricSpec("screentime_outbox_sent_total", "counter", ("output",), "Messages delivered to MQTT or a webhook."),
    MetricSpec("screentime_outbox_dropped_total", "counter", ("output",), "Messages dropped: receiver away too long."),
    MetricSpec("screentime_outbox_queued", "gauge", ("output",), "Messages waiting for their receiver."),
    MetricSpec("screentime_output_connected", "gauge", ("output",), "1 while connected to the receiver."),
    MetricSpec(
        "screentime_output_writing", "gauge", ("source", "output"), "1 while a file output writes, 0 while it retries."
    ),
    MetricSpec(
        "screentime_output_write_errors_total", "counter", ("source", "output"), "Failed writes of a file output."
    ),
    MetricSpec("screentime_camera_node_info", "info", ("source", "node", "host"), "The cluster node a camera runs on."),
    MetricSpec(
        "screentime_camera_moves_total", "counter", ("source",), "Times a camera was placed again (worker lost)."
    ),
    MetricSpec(
        "screentime_camera_refused_records_total", "counter", ("source",), "Records of an earlier worker refused."
    ),
)
SPEC = {m.name: m for m in METRICS}


_Family = CounterMetricFamily | GaugeMetricFamily  # the families a scrape fills with add_metric


def family(name: str) -> _Family:
    spec = SPEC[name]
    labels = list(spec.labels)
    if spec.kind == "counter":
        return CounterMetricFamily(name.removesuffix("_total"), spec.help, labels=labels)
    return GaugeMetricFamily(name, spec.help, labels=labels)


class RunCollector(Collector):
    """Reads every source's RunStats at scrape time. Counters never go back: each series keeps its
    highest value (a live outage's running seconds can settle a little lower than last shown)."""

    def __init__(
        self,
        sources: Sequence[tuple[str, Callable[[], RunStats]]],
        info: dict[str, str],
        senders: Sequence[Sender] = (),
    ) -> None:
        self.sources = list(sources)  # (name, its latest snapshot) per source, in the order added
        self.info = info
        self.senders = list(senders)
        self._high: dict[tuple[str, tuple[str, ...]], float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, numbers: Callable[[], RunStats]) -> None:
        """A source joined the run: its series appear from the next scrape."""
        with self._lock:
            self.sources.append((name, numbers))

    def remove(self, name: str) -> None:
        """A source left the run: its series end with it (a name added again starts afresh)."""
        with self._lock:
            self.sources = [s for s in self.sources if s[0] != name]
            self._high = {key: v for key, v in self._high.items() if name not in key[1]}

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield from self._collect()

    def _counter(self, family: _Family, labels: list[str], value: float) -> None:
        key = (family.name, tuple(labels))
        value = max(value, self._high.get(key, 0.0))
        self._high[key] = value
        family.add_metric(labels, value)

    def _collect(self) -> Iterator[Metric]:
        sources = [(name, numbers()) for name, numbers in self.sources]  # one snapshot each per scrape
        per_source = {
            "screentime_samples_total": lambda s: s.samples,
            "screentime_inferences_total": lambda s: s.inferences,
            "screentime_inferences_saved_total": lambda s: s.inferences_saved,
            "screentime_frames_dropped_total": lambda s: s.dropped,
            "screentime_reconnects_total": lambda s: s.reconnects,
            "screentime_outage_seconds_total": lambda s: s.outage_s,
        }
        screen = family("screentime_screen_seconds_total")
        for name, stats in sources:
            screen_s = stats.screen_s
            for label in stats.classes:
                self._counter(screen, [name, label], screen_s.get(label, 0.0))
        yield screen
        for metric, read in per_source.items():
            counter = family(metric)
            for name, stats in sources:
                self._counter(counter, [name], float(read(stats)))
            yield counter
        up, state, current, confidence = (
            family("screentime_source_up"),
            family("screentime_source_state"),
            family("screentime_current_class"),
            family("screentime_current_confidence_ratio"),
        )
        for name, stats in sources:
            up.add_metric([name], float(stats.state is RunState.RUNNING))
            for each in RunState:
                state.add_metric([name, str(each)], float(stats.state is each))
            now = stats.current
            for label in stats.classes:
                current.add_metric([name, label], float(now is not None and label in now.present))
            confidence.add_metric([name], now.confidence if now is not None else 0.0)
        yield from (up, state, current, confidence)
        yield InfoMetricFamily(PREFIX + "model", SPEC["screentime_model_info"].help, value=self.info)
        if self.senders:
            sent, dropped = family("screentime_outbox_sent_total"), family("screentime_outbox_dropped_total")
            queued, connected = family("screentime_outbox_queued"), family("screentime_output_connected")
            for sender in self.senders:
                self._counter(sent, [sender.kind], float(sender.outbox.sent))
                self._counter(dropped, [sender.kind], float(sender.outbox.dropped))
                queued.add_metric([sender.kind], float(len(sender.outbox)))
                connected.add_metric([sender.kind], float(sender.connected))
            yield from (sent, dropped, queued, connected)


class RunMetrics(OutputBase):
    """A run's metrics: every source's numbers read at scrape time, and the latency and inference
    histograms observed as samples come. Whoever serves `/metrics` serves `registry`: the
    `MetricsSink` of `watch --metrics-port`, or the fleet service's one HTTP port."""

    def __init__(self, info: dict[str, str], senders: Sequence[Sender] = ()) -> None:
        self.registry = CollectorRegistry()
        self.collector = RunCollector([], info, senders)
        self.registry.register(self.collector)
        self.latency = Histogram(
            PREFIX + "latency_seconds",
            SPEC["screentime_latency_seconds"].help,
            ["source"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.inference = Histogram(
            PREFIX + "inference_seconds",
            SPEC["screentime_inference_seconds"].help,
            ["source"],
            registry=self.registry,
            buckets=INFERENCE_BUCKETS,
        )
        self._inferences: dict[int, int] = {}  # per source key: model runs already observed
        self._latest: dict[int, RunStats] = {}  # per source key: the newest snapshot an event brought
        self.keep_ended = False  # `watch`: a source's series stay after it ends (a last scrape sees its totals)

    def handle(self, event: Event) -> None:
        match event:
            case ev.Started(tag=tag, stats=stats):
                self._add(tag, stats)
            case ev.Sampled(tag=tag, prediction=prediction, stats=stats):
                self._latest[tag.key] = stats
                if tag.live:
                    self.latency.labels(tag.name).observe(prediction.latency_s)
                if stats.inferences > self._inferences.get(tag.key, 0):  # a model run, not a reused result
                    self._inferences[tag.key] = stats.inferences
                    self.inference.labels(tag.name).observe(stats.inference_s)
            case ev.Tick(tag=tag, stats=stats):
                self._latest[tag.key] = stats
            case ev.Ended(tag=tag, stats=stats):
                if self.keep_ended:
                    self._add(tag, stats)
                else:
                    self._remove(tag)
            case ev.Pictured() | ev.SourceLost() | ev.SourceBack() | ev.ClockJumped() | ev.Checkpoint():
                pass
            case _:
                assert_never(event)

    def _add(self, tag: SourceTag, stats: RunStats) -> None:
        known = tag.key in self._latest
        self._latest[tag.key] = stats
        if not known:
            self._inferences[tag.key] = stats.inferences
            key = tag.key

            def numbers() -> RunStats:
                return self._latest[key]

            self.collector.add(tag.name, numbers)

    def _remove(self, tag: SourceTag) -> None:
        """A run whose sources come and go (a fleet): a source's series end with it."""
        self._latest.pop(tag.key, None)
        self.collector.remove(tag.name)
        for histogram in (self.latency, self.inference):
            with contextlib.suppress(KeyError):
                histogram.remove(tag.name)
        self._inferences.pop(tag.key, None)

    def scrape(self) -> str:
        """The exposition as a scrape would get it."""
        return generate_latest(self.registry).decode()


class MetricsSink(RunMetrics):
    """`watch --metrics-port`: the run's metrics on their own `/metrics` endpoint, served from the
    run's start to its end (and kept after a source ends, for the last scrape). The port is bound
    when the output is made, so a taken port is bad input before any work starts."""

    def __init__(
        self,
        card: ModelCard,
        model: Path,
        device: str,
        host: str,
        port: int,
        senders: Sequence[Sender] = (),
    ) -> None:
        info = {"model": model.name, "model_version": card.screentime_version, "device": device, "version": __version__}
        super().__init__(info, senders)
        from stream.outputs.serving import HttpServer, metrics_app  # uvicorn, only when metrics are asked for

        self._server = HttpServer(metrics_app(self.registry), host, port, f"--metrics-port {port}")
        self.host = host
        self.port: int = self._server.port
        self.keep_ended = True

    def __enter__(self) -> MetricsSink:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
