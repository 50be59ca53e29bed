"""One camera's accounting cut at local midnight: a complete accountant per day.

The rules of `stream.counting.accounting` hold inside each day; the cut adds only these:
- a sample standing at midnight counts until midnight for the old day and from midnight for
  the new one (the new day's first instant is carried over, not a sample: `samples` counts the
  samples taken that day);
- a camera down at midnight: the old day's outage ends at midnight, the new day's begins there;
- back from an outage at midnight with no sample yet: the next sample covers back to the return
  as it would uncut, its classes on both sides of midnight.
So each class's seconds of the days, and their durations, add up to the uncut run's.

Times are the camera's own clock (seconds); `Clock` ties it to the wall clock (Unix seconds),
which only decides where midnight falls. Midnight and the hours are local (zoneinfo), so a day
has 23 or 25 hours when the clocks change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from stream.counting.accounting import Accountant
from stream.records import Segment

HOUR_S = 3600.0


@dataclass(frozen=True)
class Clock:
    """Source time `t_s` <-> Unix time: the camera's clock runs at the wall clock's rate."""

    t_s: float  # a source time ...
    unix_s: float  # ... and the Unix time it was

    def unix(self, t_s: float) -> float:
        return self.unix_s + (t_s - self.t_s)

    def source(self, unix_s: float) -> float:
        return self.t_s + (unix_s - self.unix_s)


def local_day(unix_s: float, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(unix_s, zone).date()


def midnight(day: date, zone: ZoneInfo) -> float:
    """Unix time of the local midnight that starts `day` (zoneinfo resolves DST)."""
    return datetime.combine(day, time(0), tzinfo=zone).timestamp()


def hours(day: date, zone: ZoneInfo) -> list[tuple[str, float, float]]:
    """The day's hours as (local start `HH:MM+ZZ:ZZ`, start, end) in Unix time: 23, 24 or 25 of them."""
    start, end = midnight(day, zone), midnight(day + timedelta(days=1), zone)
    out = []
    t = start
    while t < end:
        label = datetime.fromtimestamp(t, zone).isoformat(timespec="minutes")[11:]
        out.append((label, t, min(t + HOUR_S, end)))
        t += HOUR_S
    return out


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def hourly(
    segments: Iterable[Segment],
    outages: Sequence[tuple[float, float]],
    start_s: float,
    end_s: float,
    spans: Sequence[tuple[str, float, float]],
) -> list[dict]:
    """Per hour (spans on the source clock): analysed seconds and each class's seconds. A class's
    seconds are its segments' (the accountant credits a class exactly over its segments)."""
    segments = list(segments)
    rows = []
    for label, h0, h1 in spans:
        duration = overlap(start_s, end_s, h0, h1) - sum(overlap(a, b, h0, h1) for a, b in outages)
        totals: dict[str, float] = {}
        for seg in segments:
            seconds = overlap(seg.start_s, seg.end_s, h0, h1)
            if seconds > 0:
                totals[seg.label] = totals.get(seg.label, 0.0) + seconds
        rows.append(
            {"hour": label, "start_s": h0, "end_s": h1, "duration_s": max(0.0, duration), "screen_time_s": totals}
        )
    return rows


@dataclass
class Day:
    """One local day's accountant; `start_s`, `end_s`: the day's bounds on the source clock."""

    day: date
    accountant: Accountant
    start_s: float
    end_s: float


class DayBook:
    """Feeds one camera's records to the accountant of the day they fall in. Each method returns
    the days that ended before the record (complete: write them and let them go)."""

    def __init__(
        self, classes: Sequence[str], zone: ZoneInfo, clock: Clock, t_s: float, carried: Accountant | None = None
    ) -> None:
        """`t_s`: the first source time (decides the first day); `carried`: today's accountant as
        an earlier run left it (stream.counting.resume), its times on this clock."""
        self.classes = tuple(classes)
        self.zone = zone
        self.clock = clock
        self.current = self._day(local_day(clock.unix(t_s), zone), carried)

    def _day(self, day: date, accountant: Accountant | None = None) -> Day:
        start = self.clock.source(midnight(day, self.zone))
        end = self.clock.source(midnight(day + timedelta(days=1), self.zone))
        return Day(day, accountant or Accountant(self.classes), start, end)

    def sample(self, t_s: float, present: Iterable[str]) -> list[Day]:
        present = tuple(present)
        ended = self.advance(t_s, present)
        self.current.accountant.sample(max(t_s, self.current.start_s), present)
        return ended

    def lost(self, t_s: float) -> list[Day]:
        ended = self.advance(t_s)
        self.current.accountant.lost(max(t_s, self.current.start_s))
        return ended

    def gap(self, start_s: float, end_s: float) -> list[Day]:
        ended = self.advance(end_s)
        day = self.current
        day.accountant.gap(max(start_s, day.start_s), max(end_s, day.start_s))
        return ended

    def finish(self, end_s: float | None) -> list[Day]:
        """The run ends: the days before `end_s`, then today's, finished."""
        ended = self.advance(end_s) if end_s is not None else []
        self.current.accountant.finish(None if end_s is None else max(end_s, self.current.start_s))
        return [*ended, self.current]

    def advance(self, t_s: float, next_present: tuple[str, ...] | None = None) -> list[Day]:
        """Cut at every midnight up to `t_s` (a record's time, or the clock when nothing comes);
        `next_present`: the classes of the sample about to be counted at `t_s`, if one is."""
        ended = []
        while t_s >= self.current.end_s:
            ended.append(self.current)
            self.current = self._cut(self.current, next_present)
        return ended

    def _cut(self, old: Day, next_present: tuple[str, ...] | None) -> Day:
        at, acc = old.end_s, old.accountant
        new = self._day(old.day + timedelta(days=1))
        if acc.start_s is None:  # nothing analysed that day: the new day starts as the old one stood
            if acc.down:
                new.accountant.lost(at)
            acc.finish(None)
            return new
        if acc.down:
            acc.finish(at)  # the outage ends at midnight for the old day ...
            _down_from(new.accountant, at)  # ... and goes on from midnight in the new one
            return new
        standing = acc.standing
        if standing is None and next_present is not None:  # back, no sample yet: the next covers back
            _carry(acc, at, next_present)
            standing = next_present
        acc.finish(at)
        if standing is None:  # back, and the next record is no sample: nobody's time, as uncut
            _down_from(new.accountant, at)
        else:
            _carry(new.accountant, at, standing)
        return new


def _carry(accountant: Accountant, t_s: float, present: tuple[str, ...]) -> None:
    """The standing sample's classes from `t_s` on, without counting a sample."""
    accountant.sample(t_s, present)
    accountant.samples -= 1


def _down_from(accountant: Accountant, t_s: float) -> None:
    """A fresh day that starts down (its outage listed from midnight, as `resume` restores one)."""
    accountant.start_s = t_s
    accountant.restore_end(t_s)
