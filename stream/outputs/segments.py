"""Segment events for MQTT and webhooks: when a character appears, stays and leaves.

A pure state machine over the records the accountant sees (samples, losses, gaps, the end), so
it is tested on lists of numbers, without a broker. Its times are the accountant's, so an event
segment that passes the filter starts and ends exactly where the report's segment does.

How it differs from the report's segments: the report keeps every run of consecutive samples of
a class, even a single sample. An event segment is announced (`new`) only once a sample shows the
class at least `min_segment_s` after the segment began, so a class seen on one sample only (a
flicker, a wrong guess on a cut) never makes an event; a segment that never got that far is
dropped silently, with no `end`. While it lasts, `update` comes at most every `update_s` seconds;
`end` comes when a sample no longer shows it, when the stream is lost, or at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class EventType(StrEnum):
    NEW = "new"
    UPDATE = "update"
    END = "end"


@dataclass(frozen=True)
class SegmentState:
    """One segment as announced: `end_s` is None while the class is still on screen."""

    label: str
    start_s: float
    end_s: float | None
    last_s: float  # the latest sample that showed it
    samples: int
    confidence: float  # the latest sample's probability of this class
    mean_confidence: float

    @property
    def duration_s(self) -> float:
        return (self.end_s if self.end_s is not None else self.last_s) - self.start_s


@dataclass(frozen=True)
class Event:
    """Frigate-like: `before` is the segment as last announced (for `new`, the same as `after`)."""

    type: EventType
    before: SegmentState
    after: SegmentState


class _Run:
    """A class on screen since `start_s`; announced once it has lasted long enough."""

    def __init__(self, label: str, start_s: float) -> None:
        self.label = label
        self.start_s = start_s
        self.last_s = start_s
        self.samples = 0
        self.confidence = 0.0
        self.confidence_sum = 0.0
        self.announced: SegmentState | None = None

    def state(self, end_s: float | None = None) -> SegmentState:
        return SegmentState(
            label=self.label,
            start_s=self.start_s,
            end_s=end_s,
            last_s=self.last_s,
            samples=self.samples,
            confidence=self.confidence,
            mean_confidence=self.confidence_sum / self.samples if self.samples else 0.0,
        )


class EventTracker:
    """Events of one source from its samples, losses, gaps and end, in order.

    `tolerance_s`: sample times jitter by up to a frame around the sampling grid, so two samples
    one interval apart can be a few milliseconds short of it; the announcement test allows that.
    """

    def __init__(self, min_segment_s: float = 0.0, update_s: float = 10.0, tolerance_s: float = 0.0) -> None:
        if min_segment_s < 0 or update_s < 0 or tolerance_s < 0:
            raise ValueError("min_segment_s, update_s and tolerance_s must be >= 0")
        self.min_segment_s = min_segment_s
        self.update_s = update_s
        self.tolerance_s = tolerance_s
        self._runs: dict[str, _Run] = {}
        self._last_t: float | None = None
        self._resume_at: float | None = None  # after an outage the next segments start at the return
        self._down_since: float | None = None
        self._updated_at: dict[str, float] = {}

    @property
    def announced(self) -> list[SegmentState]:
        """Segments announced and still open."""
        return [run.announced for run in self._runs.values() if run.announced is not None]

    def sample(self, t_s: float, present: Iterable[str], confidence: Mapping[str, float]) -> list[Event]:
        """A sample at `t_s` showing the classes in `present` (`confidence`: each class's probability)."""
        present = tuple(present)
        events: list[Event] = []
        if self._down_since is not None:  # a frame without the gap that should precede it
            events += self.gap(self._down_since, t_s)
        for label in [label for label in self._runs if label not in present]:
            events += self._end(label, t_s)
        start = self._resume_at if self._resume_at is not None else t_s
        self._resume_at = None
        for label in present:
            run = self._runs.get(label)
            if run is None:
                run = self._runs[label] = _Run(label, start)
            run.last_s = t_s
            run.samples += 1
            run.confidence = float(confidence.get(label, 0.0))
            run.confidence_sum += run.confidence
            events += self._announce(run, t_s)
        self._last_t = t_s
        return events

    def lost(self, t_s: float) -> list[Event]:
        """The stream stopped delivering at `t_s`: every segment ends there."""
        if self._down_since is not None:
            return []
        t_s = max(t_s, self._last_t) if self._last_t is not None else t_s
        events = [e for label in list(self._runs) for e in self._end(label, t_s)]
        self._down_since = t_s
        if self._last_t is not None:
            self._last_t = t_s
        return events

    def gap(self, start_s: float, end_s: float) -> list[Event]:
        """The stream is back at `end_s`: the next sample's segments start there, as the report's do."""
        events = self.lost(start_s) if self._down_since is None else []
        down_since, self._down_since = self._down_since, None
        if self._last_t is not None and down_since is not None:  # before the first sample: nothing to carry
            self._resume_at = self._last_t = max(end_s, down_since)
        return events

    def finish(self, end_s: float | None) -> list[Event]:
        """The run ends at `end_s` (None: at the last sample): every open segment ends."""
        if self._last_t is None:  # no sample: nothing is open (nor after a loss, which ended everything)
            return []
        end = self._last_t if end_s is None else max(end_s, self._last_t)
        return [e for label in list(self._runs) for e in self._end(label, end)]

    def _announce(self, run: _Run, t_s: float) -> list[Event]:
        if run.announced is None:
            if t_s - run.start_s < self.min_segment_s - self.tolerance_s:
                return []
            run.announced = state = run.state()
            self._updated_at[run.label] = t_s
            return [Event(EventType.NEW, state, state)]
        if t_s - self._updated_at[run.label] < self.update_s:
            return []
        before, run.announced = run.announced, run.state()
        self._updated_at[run.label] = t_s
        return [Event(EventType.UPDATE, before, run.announced)]

    def _end(self, label: str, t_s: float) -> list[Event]:
        run = self._runs.pop(label)
        self._updated_at.pop(label, None)
        if run.announced is None:  # never lasted `min_segment_s`: a flicker, not an event
            return []
        return [Event(EventType.END, run.announced, run.state(end_s=t_s))]
