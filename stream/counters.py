"""Screen-time accounting: each sample stands for the time until the next one.

So per-class totals add up to the analysed duration (for single-label models), whatever the
sampling rate. Outages (a live source that was down) are cut out: the sample before an outage
stands only until the outage began. The same class feeds both live counters and the tests of
the arithmetic, so there is one implementation of the rules.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from stream.records import Segment


@dataclass
class ScreenTimeCounter:
    """Incremental per-class screen time and segments over a stream of samples.

    A sample stands until the next sample or the start of the next outage, whichever is first.
    Outages may be registered late (after samples that follow them are known) and in any order
    relative to samples, because crediting is decided by times, not by call order.
    """

    classes: Sequence[str]
    totals_s: dict[str, float] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    samples: int = 0
    _last_t: float | None = None
    _last_present: tuple[str, ...] = ()
    _open: dict[str, float] = field(default_factory=dict)
    _cuts: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.totals_s = {c: 0.0 for c in self.classes} | self.totals_s

    def add(self, t_s: float, present: Iterable[str]) -> None:
        """Record a sample at `t_s` showing the classes in `present`."""
        present = tuple(present)
        if self._last_t is not None and t_s < self._last_t:
            raise ValueError(f"sample at {t_s} s is older than the previous one ({self._last_t} s)")
        if self._last_t is not None:
            end = self._stands_until(t_s)
            self._credit(end)
            closing = list(self._open) if end < t_s else [c for c in self._open if c not in present]
            for label in closing:
                self._close(label, end)
        for label in present:
            self._open.setdefault(label, t_s)
        self._last_t, self._last_present = t_s, present
        self.samples += 1

    def pause(self, t_s: float) -> None:
        """The source went down at `t_s`: the sample before stands only until then."""
        if t_s not in self._cuts:
            insort(self._cuts, t_s)

    @property
    def outages(self) -> int:
        """How many outage starts are registered."""
        return len(self._cuts)

    def finish(self, end_s: float) -> None:
        """The analysed time ends at `end_s`: the last sample stands until then (or an outage)."""
        if self._last_t is None:
            return
        end = self._stands_until(max(end_s, self._last_t))
        self._credit(end)
        for label in list(self._open):
            self._close(label, end)
        self._last_t, self._last_present = None, ()

    def running_totals(self, now_s: float | None = None) -> dict[str, float]:
        """Totals including the still-open share of the current sample, for live display."""
        totals = dict(self.totals_s)
        if now_s is not None and self._last_t is not None and now_s > self._last_t:
            share = self._stands_until(now_s) - self._last_t
            for label in self._last_present:
                totals[label] = totals.get(label, 0.0) + share
        return totals

    def _stands_until(self, t_s: float) -> float:
        assert self._last_t is not None
        i = bisect_left(self._cuts, self._last_t)
        return min(t_s, self._cuts[i]) if i < len(self._cuts) else t_s

    def _credit(self, end_s: float) -> None:
        assert self._last_t is not None
        for label in self._last_present:
            self.totals_s[label] = self.totals_s.get(label, 0.0) + (end_s - self._last_t)

    def _close(self, label: str, t_s: float) -> None:
        start = self._open.pop(label)
        if t_s > start:
            self.segments.append(Segment(label, start, t_s))


def account(
    times_s: Sequence[float], present: Sequence[Iterable[str]], end_s: float, classes: Sequence[str]
) -> ScreenTimeCounter:
    """Screen time of a finished list of samples (pure; used by evaluate and tests)."""
    counter = ScreenTimeCounter(classes)
    for t, p in zip(times_s, present, strict=True):
        counter.add(t, p)
    counter.finish(end_s)
    counter.segments.sort(key=lambda s: (s.start_s, s.label))
    return counter
