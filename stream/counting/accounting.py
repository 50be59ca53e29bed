"""Screen-time accounting: the one place that decides which class each second belongs to.

The rules, so that per-class totals add up to `duration_s` (single-label models) in every case:
- a sample stands from its time until the next sample, or until the stream is lost;
- time while the stream was down (`lost` .. `gap`) is an outage: nobody's, and not in the duration;
- the first sample after an outage also covers the time from the stream's return to it (the
  frame that ended the outage may have been dropped by a busy consumer);
- the analysed time runs from the first sample to the end, minus outages; an end that comes
  after an outage but before any sample ends at the stream's return, and a stream lost again
  before any sample makes the two outages one (no sample covered the time between).
The accountant holds totals, open segments, closed segments (compactly) and outages: memory
grows with the number of segments and outages, never with the number of samples.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence

from stream.records import Segment


class SegmentLog:
    """Closed segments as three flat arrays (~18 bytes each) instead of objects."""

    def __init__(self, classes: Sequence[str]) -> None:
        self._classes = list(classes)
        self._index = {c: i for i, c in enumerate(self._classes)}
        self._label = array("H")
        self._start = array("d")
        self._end = array("d")

    def append(self, label: str, start_s: float, end_s: float) -> None:
        if label not in self._index:
            self._index[label] = len(self._classes)
            self._classes.append(label)
        self._label.append(self._index[label])
        self._start.append(start_s)
        self._end.append(end_s)

    def __len__(self) -> int:
        return len(self._label)

    def segments(self) -> list[Segment]:
        items = [Segment(self._classes[i], a, b) for i, a, b in zip(self._label, self._start, self._end, strict=True)]
        return sorted(items, key=lambda s: (s.start_s, s.label))


class Accountant:
    """Incremental screen time of one source from its in-band records: samples, losses, gaps, end."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)
        self.totals_s: dict[str, float] = dict.fromkeys(self.classes, 0.0)
        self.samples = 0
        self.start_s: float | None = None  # the first sample
        self.end_s: float | None = None  # set by `finish`
        self.outages: list[tuple[float, float]] = []
        self.discontinuities: list[tuple[float, float]] = []  # (t_s, jump_s): timestamp jumps, not counted
        self.closed = SegmentLog(self.classes)
        self.open: dict[str, float] = {}  # label -> start of its open segment
        self._last_t: float | None = None  # time credited up to
        self._present: tuple[str, ...] | None = ()  # the standing sample's classes; None: the next sample's
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        return self._down_since is not None

    @property
    def standing(self) -> tuple[str, ...] | None:
        """The classes of the sample standing now (() before any); None when back after an outage
        with no sample yet (the next one covers back to the return). A day cut at midnight
        carries it over (stream.fleet.days)."""
        return self._present

    def sample(self, t_s: float, present: Iterable[str]) -> None:
        """A sample at `t_s` showing the classes in `present` (times never go backwards)."""
        present = tuple(present)
        if self._last_t is not None and t_s < self._last_t:
            raise ValueError(f"sample at {t_s} s is older than time already accounted ({self._last_t} s)")
        if self._down_since is not None:  # a frame without the gap that should precede it
            self.gap(self._down_since, t_s)
        if self.start_s is None:
            self.start_s = self._last_t = t_s
            opened_at = t_s
        elif self._present is None:  # first sample after an outage: it covers back to the return
            assert self._last_t is not None  # set to the return by back()
            opened_at = self._last_t
            self._present = present
        else:
            opened_at = t_s
        self._credit(t_s)
        for label in [label for label in self.open if label not in present]:
            self._close(label, t_s)
        for label in present:
            self.open.setdefault(label, opened_at)
        self._present = present
        self.samples += 1

    def lost(self, t_s: float) -> None:
        """The stream stopped delivering at `t_s`: the standing sample ends there."""
        if self._down_since is not None:
            return
        if self.start_s is None:  # nothing analysed yet: nothing to cut
            self._down_since = t_s
            return
        if self._present is None and self.outages:  # back, but lost again before any sample: one outage
            self._down_since, _ = self.outages.pop()
            self._last_t, self._present = self._down_since, ()
            return
        t_s = max(t_s, self._last_t or t_s)
        self._credit(t_s)
        for label in list(self.open):
            self._close(label, t_s)
        self._last_t, self._present, self._down_since = t_s, (), t_s

    def gap(self, start_s: float, end_s: float) -> None:
        """The stream is back at `end_s` after being down since `start_s`."""
        if self._down_since is None:
            self.lost(start_s)
        down_since = self._down_since
        self._down_since = None
        if self.start_s is None:  # before the first sample: not analysed time, not an outage of it
            return
        assert down_since is not None
        end_s = max(end_s, down_since)
        self.outages.append((down_since, end_s))
        self._last_t, self._present = end_s, None

    def restore_end(self, end_s: float) -> None:
        """Carry on after an earlier run that ended at `end_s`: down since then (see stream.counting.resume)."""
        self._last_t, self._present, self._down_since = end_s, (), end_s

    def finish(self, end_s: float | None) -> None:
        """The analysed time ends at `end_s` (None: at the last sample)."""
        if self.start_s is None or self._last_t is None:
            return
        end = self._last_t if end_s is None else max(end_s, self._last_t)
        if self._down_since is not None:
            self.outages.append((self._down_since, max(end, self._down_since)))
            self._down_since = None
        elif self._present is None:  # back after an outage, but no sample since: ends at the return
            end = self._last_t
        else:
            self._credit(end)
        for label in list(self.open):
            self._close(label, end)
        self.end_s = end
        self._last_t, self._present = end, ()

    @property
    def accounted_until_s(self) -> float:
        """The source time up to which every second has been given to a class or an outage."""
        return self._last_t if self._last_t is not None else 0.0

    @property
    def duration_s(self) -> float:
        """Analysed time so far (final once `finish` ran): first sample to end, minus outages."""
        if self.start_s is None or self._last_t is None:
            return 0.0
        return max(0.0, self._last_t - self.start_s - sum(b - a for a, b in self.outages))

    def outage_s(self, now_s: float | None = None) -> float:
        """Seconds down so far, the current outage up to `now_s` included."""
        closed = sum(b - a for a, b in self.outages)
        if self._down_since is not None and now_s is not None:
            closed += max(0.0, now_s - self._down_since)
        return closed

    def running_totals(self, now_s: float | None = None) -> dict[str, float]:
        """Totals including the standing sample's share up to `now_s`, for live display."""
        totals = dict(self.totals_s)
        if now_s is not None and self._last_t is not None and self._present and now_s > self._last_t:
            for label in self._present:
                totals[label] = totals.get(label, 0.0) + now_s - self._last_t
        return totals

    def segments(self) -> list[Segment]:
        return self.closed.segments()

    def _credit(self, t_s: float) -> None:
        assert self._last_t is not None
        if self._present:
            for label in self._present:
                self.totals_s[label] = self.totals_s.get(label, 0.0) + (t_s - self._last_t)
        self._last_t = t_s

    def _close(self, label: str, t_s: float) -> None:
        start = self.open.pop(label)
        if t_s > start:
            self.closed.append(label, start, t_s)


def account(
    times_s: Sequence[float], present: Sequence[Iterable[str]], end_s: float, classes: Sequence[str]
) -> Accountant:
    """Screen time of a finished list of samples (pure; used by evaluate and tests)."""
    accountant = Accountant(classes)
    for t, p in zip(times_s, present, strict=True):
        accountant.sample(t, p)
    accountant.finish(end_s)
    return accountant
