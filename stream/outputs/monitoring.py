"""`watch`'s monitoring outputs: Prometheus metrics, MQTT events and a webhook, built only when asked for.

Their modules (and prometheus_client, paho-mqtt) are imported here, inside `build`, so a run
without them loads neither. Sources are named for them by `--name`, else by the masked URL or
the file's name: a label or a topic never carries a password or an unbounded value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stream.options import MonitorConfig, split_names
from stream.outputs.events import Output
from stream.outputs.outbox import Sender
from stream.run.run import default_name

if TYPE_CHECKING:
    from stream.model.engine import Engine
    from stream.outputs.metrics import MetricsSink

JITTER = 0.25  # of a sample interval: how far live sample times stray from the sampling grid


def source_names(given: Sequence[str], sources: Sequence[str], live: Sequence[bool]) -> list[str]:
    """`--name`s, else the (already masked) URL or the file's name; repeats get -2, -3 ..."""
    if given:
        return list(given)
    names: list[str] = []
    for name, is_live in zip(sources, live, strict=True):
        names.append(default_name(name, is_live, names))
    return names


@dataclass
class Monitoring:
    """What `build` made: the run's monitoring outputs (the metrics endpoint with its `scrape()`
    and `port`, the events) and the senders the run holds open while they run."""

    metrics: MetricsSink | None = None
    senders: list[Sender] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)


def make_sender(kind: str, url: str) -> Sender:
    """The one way events leave: an MQTT broker's sender (one connection, one last will) or a
    webhook's, for `watch --mqtt/--webhook` and a fleet's `mqtt:`/`webhook:` alike."""
    if kind == "mqtt":
        from stream.outputs.mqtt import MqttSender, MqttTarget

        return MqttSender(MqttTarget.parse(url))
    from stream.outputs.webhook import WebhookSender

    return WebhookSender(url)


def build(config: MonitorConfig, engine: Engine, every_s: float) -> Monitoring:
    """The monitoring outputs asked for, for a run to open; each source is named when added."""
    monitoring = Monitoring()
    for kind, url in (("mqtt", config.mqtt), ("webhook", config.webhook)):
        if url:
            monitoring.senders.append(make_sender(kind, url))
    if monitoring.senders:
        from stream.outputs.event_sink import EventSink

        min_segment_s = every_s if config.min_segment_s is None else config.min_segment_s
        events = EventSink(monitoring.senders, min_segment_s, config.mqtt_update_s, JITTER * every_s)
        monitoring.outputs.append(events)
    if config.metrics_port is not None:
        from stream.outputs.metrics import MetricsSink

        metrics = MetricsSink(
            engine.card,
            engine.path,
            engine.device_name,
            config.metrics_host,
            config.metrics_port,
            monitoring.senders,
        )
        monitoring.outputs.append(metrics)
        monitoring.metrics = metrics
    return monitoring


__all__ = ["JITTER", "MonitorConfig", "Monitoring", "build", "make_sender", "source_names", "split_names"]
