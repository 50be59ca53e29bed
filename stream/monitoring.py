"""`watch`'s monitoring outputs: Prometheus metrics, MQTT events and a webhook, built only when asked for.

Their modules (and prometheus_client, paho-mqtt) are imported here, inside `build`, so a run
without them loads neither. Sources are named for them by `--name`, else by the masked URL or
the file's name: a label or a topic never carries a password or an unbounded value.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stream.defaults import METRICS_HOST, MQTT_UPDATE_S
from stream.engine import Engine
from stream.errors import BadInputError
from stream.outbox import Sender
from stream.run import default_name
from stream.sinks import Output

if TYPE_CHECKING:
    from stream.sinks.metrics import MetricsSink

JITTER = 0.25  # of a sample interval: how far live sample times stray from the sampling grid


@dataclass(frozen=True)
class MonitorConfig:
    """The monitoring flags of `screentime watch`."""

    names: tuple[str, ...] = ()  # one per source; empty: the masked URL or file name
    metrics_port: int | None = None
    metrics_host: str = METRICS_HOST
    mqtt: str | None = None  # mqtt://[user:pass@]host[:port][/prefix]
    mqtt_update_s: float = MQTT_UPDATE_S
    min_segment_s: float | None = None  # None: one sample interval
    webhook: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> MonitorConfig:
        return cls(
            names=split_names(args.name),
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            mqtt=args.mqtt,
            mqtt_update_s=args.mqtt_update,
            min_segment_s=args.min_segment,
            webhook=args.webhook,
        )

    def validate(self, sources: int) -> None:
        if self.names and len(self.names) != sources:
            raise BadInputError(f"--name: {len(self.names)} names for {sources} sources (give one per source)")
        if len(set(self.names)) != len(self.names):
            raise BadInputError("--name: every source needs its own name")
        for name in self.names:
            if not name or any(c in name for c in "/+#") or not name.isprintable():
                raise BadInputError(f"--name {name!r}: no '/', '+', '#' or control characters (an MQTT topic level)")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise BadInputError(f"--metrics-port must be 0-65535, got {self.metrics_port}")
        if self.mqtt_update_s < 0:
            raise BadInputError("--mqtt-update must be >= 0")
        if self.min_segment_s is not None and self.min_segment_s < 0:
            raise BadInputError("--min-segment must be >= 0")
        if self.mqtt is not None:
            from stream.sinks.mqtt import MqttTarget

            MqttTarget.parse(self.mqtt)
        if self.webhook is not None:
            from stream.sinks.webhook import check_webhook_url

            check_webhook_url(self.webhook)


def split_names(values: Iterable[str] | str | None) -> tuple[str, ...]:
    """`--name a --name b` or `--name a,b`."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    return tuple(part.strip() for value in values for part in value.split(","))


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


def build(config: MonitorConfig, engine: Engine, every_s: float) -> Monitoring:
    """The monitoring outputs asked for, for a run to open; each source is named when added."""
    monitoring = Monitoring()
    if config.mqtt:
        from stream.sinks.mqtt import MqttSender, MqttTarget

        monitoring.senders.append(MqttSender(MqttTarget.parse(config.mqtt)))
    if config.webhook:
        from stream.sinks.webhook import WebhookSender

        monitoring.senders.append(WebhookSender(config.webhook))
    if monitoring.senders:
        from stream.sinks.event_sink import EventSink

        min_segment_s = every_s if config.min_segment_s is None else config.min_segment_s
        events = EventSink(monitoring.senders, min_segment_s, config.mqtt_update_s, JITTER * every_s)
        monitoring.outputs.append(events)
    if config.metrics_port is not None:
        from stream.sinks.metrics import MetricsSink

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
