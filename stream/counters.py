"""Screen-time accounting: each sample stands for the time until the next one.

So per-class totals add up to the analysed duration (for single-label models), whatever the
sampling rate. Outages (a live source that was down) are cut out: the sample before an outage
stands only until the outage began. The same class feeds both live counters and the tests of
the arithmetic, so there is one implementation of the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from stream.records import Segment


@dataclass
class ScreenTimeCounter:
    """Incremental per-class screen time and segments over a stream of samples."""

    classes: Sequence[str]
    totals_s: dict[str, float] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    samples: int = 0
    _last_t: float | None = None
    _last_present: tuple[str, ...] = ()
    _open: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.totals_s = {c: 0.0 for c in self.classes} | self.totals_s

    def add(self, t_s: float, present: Iterable[str]) -> None:
        """Record a sample at `t_s` showing the classes in `present`."""
        present = tuple(present)
        if self._last_t is not None and t_s < self._last_t:
            raise ValueError(f"sample at {t_s} s is older than the previous one ({self._last_t} s)")
        self._credit_until(t_s)
        for label in [c for c in self._open if c not in present]:
            self._close(label, t_s)
        for label in present:
            self._open.setdefault(label, t_s)
        self._last_t, self._last_present = t_s, present
        self.samples += 1

    def pause(self, t_s: float) -> None:
        """The source went down at `t_s`: nothing is counted until the next sample."""
        self._credit_until(t_s)
        for label in list(self._open):
            self._close(label, t_s)
        self._last_t, self._last_present = None, ()

    def finish(self, end_s: float) -> None:
        """The analysed time ends at `end_s`: the last sample stands until then."""
        if self._last_t is not None:
            self.pause(max(end_s, self._last_t))

    def running_totals(self, now_s: float | None = None) -> dict[str, float]:
        """Totals including the still-open share of the current sample, for live display."""
        totals = dict(self.totals_s)
        if now_s is not None and self._last_t is not None and now_s > self._last_t:
            for label in self._last_present:
                totals[label] = totals.get(label, 0.0) + now_s - self._last_t
        return totals

    def _credit_until(self, t_s: float) -> None:
        if self._last_t is None:
            return
        for label in self._last_present:
            self.totals_s[label] = self.totals_s.get(label, 0.0) + (t_s - self._last_t)

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
