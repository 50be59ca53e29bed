"""One source's segment events, state and totals, as messages for MQTT and webhooks.

The sink turns the pipeline's calls into messages (Frigate-like JSON) and hands them to its
senders' outboxes; it never waits for a receiver. Topics are relative to the receiver's prefix:
`events` (every source's new/update/end), `<source>/state` and `<source>/totals` (retained).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import assert_never

from stream.counting.report import Report, ms
from stream.counting.stats import RunState, RunStats
from stream.outputs import events as ev
from stream.outputs.events import Event, OutputBase
from stream.outputs.outbox import Message, Sender
from stream.outputs.segments import Event as SegmentEvent
from stream.outputs.segments import EventTracker, SegmentState

ONLINE, RECONNECTING, OFFLINE = "online", "reconnecting", "offline"
STATES = {
    RunState.CONNECTING: RECONNECTING,  # the first connection too: not delivering yet
    RunState.RUNNING: ONLINE,
    RunState.RECONNECTING: RECONNECTING,
    RunState.ENDED: OFFLINE,
    RunState.FAILED: OFFLINE,
}


def topic_name(name: str) -> str:
    """A source name as one MQTT topic level: no `/`, `+`, `#`, spaces or control characters."""
    return re.sub(r"[/+#\s\x00-\x1f]+", "_", name).strip("_") or "source"


def wall_iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventSink(OutputBase):
    """Every source's events, for every sender given (MQTT, webhook); the senders themselves are
    opened and closed by the run."""

    def __init__(
        self, senders: Sequence[Sender], min_segment_s: float, update_s: float, tolerance_s: float = 0.0
    ) -> None:
        self._make = lambda name: SourceEvents(name, senders, min_segment_s, update_s, tolerance_s)
        self._sources: dict[int, SourceEvents] = {}

    def handle(self, event: Event) -> None:
        if isinstance(event, ev.Started):
            self._sources[event.tag.key] = events = self._make(event.tag.name)
        elif event.tag.key not in self._sources:
            return  # a source that never started sends nothing
        else:
            events = self._sources[event.tag.key]
        events.handle(event)
        if isinstance(event, ev.Ended):
            del self._sources[event.tag.key]


class SourceEvents(OutputBase):
    """Events of one source: its segments, state and totals as messages."""

    def __init__(
        self, name: str, senders: Sequence[Sender], min_segment_s: float, update_s: float, tolerance_s: float = 0.0
    ) -> None:
        self.name = name
        self.topic = topic_name(name)
        self.senders = list(senders)
        self.update_s = update_s
        self.tracker = EventTracker(min_segment_s, update_s, tolerance_s)
        # Wall clock (epoch seconds) at the source's time 0, fixed at the first sample: a live
        # source's clock runs with the wall clock; a file's times read as if it played from then.
        self._epoch0: float | None = None
        self._state: str | None = None
        self._totals_at = 0.0  # monotonic time of the last totals message

    # -- the run's events -----------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        match event:
            case ev.Started(tag=tag):
                self._publish_state(RECONNECTING if tag.live else ONLINE)
            case ev.Sampled(prediction=prediction, stats=stats):
                if self._epoch0 is None:  # capture time on the wall clock: now, less the time it took to be counted
                    self._epoch0 = time.time() - prediction.latency_s - prediction.t_s
                self._publish_state(ONLINE)
                self._events(self.tracker.sample(prediction.t_s, prediction.present, prediction.probs))
                self._totals(stats)
            case ev.SourceLost(lost=lost):
                self._events(self.tracker.lost(lost.t_s))
                self._publish_state(RECONNECTING)
            case ev.SourceBack(gap=gap):
                self._events(self.tracker.gap(gap.start_s, gap.end_s))
            case ev.Tick(stats=stats):
                self._publish_state(STATES[stats.state])
                self._totals(stats)
            case ev.Ended(report=report):
                self._events(self.tracker.finish(report.end_s if report is not None else None))
                if report is not None:
                    self._send(Message(f"{self.topic}/totals", self._totals_json(report), retain=True))
                self._publish_state(OFFLINE)
            case ev.Pictured() | ev.ClockJumped() | ev.Checkpoint():
                pass
            case _:
                assert_never(event)

    # -- messages -------------------------------------------------------------------------------

    def _send(self, message: Message) -> None:
        for sender in self.senders:
            sender.put(message)

    def _publish_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._send(Message(f"{self.topic}/state", state, retain=True))

    def _events(self, events: list[SegmentEvent]) -> None:
        for event in events:
            payload = {
                "type": str(event.type),
                "source": self.name,
                "before": self.segment_json(event.before),
                "after": self.segment_json(event.after),
            }
            self._send(Message("events", json.dumps(payload), event=True))

    def _totals(self, stats: RunStats) -> None:
        now = time.monotonic()
        if self._totals_at and now - self._totals_at < self.update_s:  # at the pace of event updates
            return
        self._totals_at = now
        payload = {
            "source": self.name,
            "state": self._state,
            "samples": stats.samples,
            "screen_time_s": {k: ms(v) for k, v in stats.totals.items()},
            "updated_at": wall_iso(time.time()),
            "final": False,
        }
        self._send(Message(f"{self.topic}/totals", json.dumps(payload), retain=True))

    def _totals_json(self, report: Report) -> str:
        payload = {
            "source": self.name,
            "state": OFFLINE,
            "samples": report.samples,
            "screen_time_s": {k: ms(v) for k, v in report.screen_time_s.items()},
            "duration_s": ms(report.duration_s),
            "ended": report.ended,
            "updated_at": wall_iso(time.time()),
            "final": True,
        }
        return json.dumps(payload)

    def segment_json(self, segment: SegmentState) -> dict:
        def wall(t_s: float | None) -> str | None:
            return wall_iso(self._epoch0 + t_s) if t_s is not None and self._epoch0 is not None else None

        return {
            "id": f"{self.topic}:{segment.label}:{ms(segment.start_s)}",
            "source": self.name,
            "class": segment.label,
            "start_s": ms(segment.start_s),
            "end_s": ms(segment.end_s) if segment.end_s is not None else None,
            "last_s": ms(segment.last_s),  # the latest sample that showed it
            "start_time": wall(segment.start_s),
            "end_time": wall(segment.end_s),
            "duration_s": ms(segment.duration_s),
            "samples": segment.samples,
            "confidence": round(segment.confidence, 4),
            "mean_confidence": round(segment.mean_confidence, 4),
            "active": segment.end_s is None,
        }
