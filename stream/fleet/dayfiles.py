"""A camera's daily files: `REPORTS/NAME/YYYY-MM-DD.json` (the day's complete report, with its
hours) and `.csv` (the day's timeline), cut at local midnight.

A sink of one camera's pipeline: it keeps its own day-by-day accounting (`stream.fleet.days`)
from the same records the run's accountant gets, rewrites today's report atomically at each
checkpoint (`ended: "running"`), writes a day's final report when midnight passes, and today's
at the end. Started again the same day it carries on today's file (`stream.counting.resume`: the time it
was down becomes an outage), so a service killed and restarted keeps today's totals.

A write that fails (disk full, permissions, the directory gone) never stops the accounting: the
day's numbers live in memory, the reports and timeline rows not yet on disk wait there, and the
writes are retried with backoff (`stream.outputs.retry`) until they succeed; `health` says how it
goes. Only a final write that fails at the end is an error (OutputError: exit 4).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import assert_never
from zoneinfo import ZoneInfo

from stream.counting.accounting import Accountant
from stream.counting.report import RUNNING, Report, ms
from stream.counting.resume import resumed_accountant
from stream.defaults import FLUSH_S
from stream.errors import BadInputError, OutputError
from stream.fleet.days import Clock, Day, DayBook, hourly, hours, local_day
from stream.model.card import ModelCard
from stream.outputs import events as ev
from stream.outputs.atomic import atomic_write_text
from stream.outputs.events import Event, OutputBase
from stream.outputs.report_sink import TIMELINE_HEADER, timeline_row
from stream.outputs.retry import OutputHealth, Retry
from stream.records import Frame, Gap, Lost, Prediction, VideoInfo

log = logging.getLogger(__name__)

COUNTERS = ("frames_read", "dropped", "reconnects", "inferences_saved")


def day_paths(directory: Path, day: date) -> tuple[Path, Path]:
    return directory / f"{day.isoformat()}.json", directory / f"{day.isoformat()}.csv"


def day_dict(
    report: Report, day: Day, zone: ZoneInfo, clock: Clock, models: list[tuple[float, str]] | None = None
) -> dict:
    """The day's report as `watch --report` writes one (so `plot` and `--resume` read it), plus
    where the day lies: its date, zone, bounds on the camera's clock, its hours, and which model
    counted which seconds (`models`: (from, sha256) change points on the camera's clock)."""
    spans = [(label, clock.source(a), clock.source(b)) for label, a, b in hours(day.day, zone)]
    segments = report.segments + [s.__class__(s.label, s.start_s, report.end_s) for s in report.open_segments]
    outages = [(o["start_s"], o["end_s"]) for o in report.outages]
    rows = hourly(segments, outages, report.start_s, report.end_s, spans)
    periods = []
    changes = models or []
    for i, (start, sha) in enumerate(changes):
        end = changes[i + 1][0] if i + 1 < len(changes) else day.end_s
        a, b = max(start, day.start_s, report.start_s), min(end, day.end_s, report.end_s)
        if b > a:
            periods.append((sha, a, b))
    data = report.to_dict()
    data.update(
        day=day.day.isoformat(),
        timezone=zone.key,
        day_start_s=ms(day.start_s),
        day_end_s=ms(day.end_s),
        clock={"t_s": ms(clock.t_s), "unix_s": round(clock.unix_s, 3)},
        hours=[
            {
                "hour": r["hour"],
                "start_s": ms(r["start_s"]),
                "duration_s": ms(r["duration_s"]),
                "screen_time_s": {k: ms(v) for k, v in r["screen_time_s"].items()},
            }
            for r in rows
        ],
        models=[
            {
                "model_sha256": r["hour"],
                "start_s": ms(r["start_s"]),
                "end_s": ms(r["end_s"]),
                "duration_s": ms(r["duration_s"]),
                "screen_time_s": {k: ms(v) for k, v in r["screen_time_s"].items()},
            }
            for r in hourly(segments, outages, report.start_s, report.end_s, periods)
        ],
    )
    return data


@dataclass(frozen=True)
class Today:
    """Today's numbers as they stand, a frozen snapshot for the API (replaced at each change)."""

    day: date
    samples: int
    duration_s: float
    screen_time_s: dict[str, float]

    def to_dict(self) -> dict:
        return {
            "day": self.day.isoformat(),
            "samples": self.samples,
            "duration_s": round(self.duration_s, 3),
            "screen_time_s": {k: round(v, 3) for k, v in self.screen_time_s.items()},
        }


class DayFilesSink(OutputBase):
    """One camera's day files (see the module's docstring)."""

    def __init__(
        self,
        directory: Path,
        zone: ZoneInfo,
        *,
        source: str,
        model: str,
        every_s: float,
        model_sha256: str = "",
        resume: bool = True,
        clock: Clock | None = None,
        wall: Callable[[], float] = time.time,
        model_of: Callable[[], str] | None = None,
    ) -> None:
        """`clock`: the camera's time -> Unix time (default: taken from the first frame's capture
        time); `wall`: the wall clock (tests inject one); `model_of`: the sha256 of the model that
        made the latest result (a service swaps models while it runs)."""
        self.directory = Path(directory)
        self.zone = zone
        self.source, self.model, self.every_s, self.model_sha256 = source, model, every_s, model_sha256
        self.resume = resume
        self.clock = clock
        self.wall = wall
        self.card: ModelCard | None = None
        self.book: DayBook | None = None
        self.offset_s = 0.0
        self.runs = 0  # earlier runs today's file carries on
        self._carried: Accountant | None = None
        self.retry = Retry(f"day files {self.directory}", wall=wall)
        self._reports: dict[Path, str] = {}  # day reports not yet on disk (the latest of each day)
        self._timelines: dict[date, _Timeline] = {}  # days whose timeline rows may wait
        self._finished: set[date] = set()  # days cut at midnight: their timeline goes once written
        self._flushed_at = time.monotonic()
        self.today: Today | None = None  # read by the API's thread: replaced whole, never changed
        self._base: dict[str, int] = dict.fromkeys(COUNTERS, 0)  # the run's counters when the day began
        self._counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._device = ""
        self._started_at = ""
        self.written: list[Path] = []
        self.model_of = model_of
        self._models: list[tuple[float, str]] = []  # (book time from which, model sha256)

    # -- the output ----------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        """One camera's events (the run attaches it to one)."""
        match event:
            case ev.Started(info=info, card=card):
                self._start(info, card)
            case ev.Sampled(prediction=prediction, frame=frame, stats=stats):
                self._update(prediction, frame, stats)
            case ev.SourceLost(lost=item) | ev.SourceBack(gap=item):
                self._control(item)
            case ev.Tick():
                self._tick()
            case ev.Checkpoint(report=report):
                self._checkpoint(report)
            case ev.Ended(report=report):
                self._close(report)
            case ev.Pictured() | ev.ClockJumped():
                pass
            case _:
                assert_never(event)

    def _start(self, info: VideoInfo, card: ModelCard) -> None:
        self.card = card
        self._started_at = _iso(self.wall())
        self.retry.attempt(lambda: self.directory.mkdir(parents=True, exist_ok=True))  # else retried at writes
        if self.resume:
            self._load_today()

    def _update(self, prediction: Prediction, frame: Frame, stats) -> None:
        self._counters = {k: int(getattr(stats, k, 0)) for k in COUNTERS}
        self._device = getattr(stats, "device", "") or self._device
        t_s = self._book_time(prediction.t_s, frame.captured_at)
        assert self.book is not None  # opened by _book_time
        sha = self.model_of() if self.model_of is not None else self.model_sha256
        if not self._models or self._models[-1][1] != sha:
            self._models.append((t_s, sha))
        self._done(self.book.sample(t_s, prediction.present))
        self._timeline_for(self.book.current.day).append(prediction_at(prediction, t_s))
        if time.monotonic() - self._flushed_at >= FLUSH_S:
            self._flush()

    def _control(self, item: Lost | Gap) -> None:
        if isinstance(item, Lost):
            t_s = self._book_time(item.t_s)
            assert self.book is not None  # opened by _book_time
            self._done(self.book.lost(t_s))
        else:
            assert self.book is not None  # a gap comes after frames, which opened the book
            self._done(self.book.gap(self._book_time(item.start_s), self._book_time(item.end_s)))

    def _tick(self) -> None:
        """A camera down across midnight: yesterday's file is finished without waiting for a sample
        (a margin keeps a late sample from landing before the cut)."""
        if self.book is not None and self.clock is not None:
            self._done(self.book.advance(self.clock.source(self.wall()) - LATE_S))
        if self._reports or time.monotonic() - self._flushed_at >= FLUSH_S:
            self._flush()

    def _checkpoint(self, report: Report) -> None:
        self._sync(report)
        if self.book is not None:  # the timeline is written first: on disk it reaches as far as the report
            self._write(self.book.current, RUNNING)

    def _close(self, report: Report | None) -> None:
        if self.book is not None:  # no report, but samples: a cluster's worker lost at the stop
            if report is not None:
                self._sync(report)
            end = self._book_time(report.end_s) if report is not None and report.samples else None
            days = self.book.finish(end)
            for day in days[:-1]:
                self._finished.add(day.day)
                self._render(day, "midnight")
            self._render(days[-1], report.ended if report is not None else "interrupted")
        self._flush(now=True)  # one last try, whatever the backoff says
        if not self.retry.health.ok:
            raise OutputError(f"{self.retry.what}: {self.retry.health.error} (the last reports could not be written)")

    @property
    def health(self) -> OutputHealth:
        return self.retry.health

    # -- days ----------------------------------------------------------------------------------

    def _load_today(self) -> None:
        """Carry on today's file left by an earlier run (killed, restarted, redeployed)."""
        assert self.card is not None
        now = self.wall()
        path, _ = day_paths(self.directory, local_day(now, self.zone))
        if not path.exists():
            return
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
            carried = resumed_accountant(previous, self.card.classes, datetime.fromtimestamp(now, UTC))
        except (OSError, ValueError, BadInputError) as exc:  # another model's classes, a damaged file
            self._set_aside(path, now, exc)
            return
        self._carried, self.offset_s, self.runs = carried.accountant, carried.offset_s, carried.runs
        self._base = {k: -int(previous.get(k, 0)) for k in COUNTERS}  # today's counts go on too
        self._models = [(float(m["start_s"]), str(m["model_sha256"])) for m in previous.get("models", [])]
        log.info("%s: carrying on today's totals from %s (%d earlier runs)", self.source, path, carried.runs)

    def _set_aside(self, path: Path, now: float, why: Exception) -> None:
        """Today's files that cannot be carried on keep their numbers under another name; today
        starts again (never a total mixed from two models' classes)."""
        stamp = datetime.fromtimestamp(now, self.zone).strftime("%H%M%S")
        for old in day_paths(self.directory, local_day(now, self.zone)):
            if old.exists():
                aside = old.with_name(f"{old.stem}.before-{stamp}{old.suffix}")
                self.retry.attempt(functools.partial(old.rename, aside))
        log.warning(
            "%s: %s cannot be carried on (%s); set aside as %s.before-%s.*", self.source, path, why, path.stem, stamp
        )

    def _book_time(self, t_s: float, captured_at: float = 0.0) -> float:
        """The run's time on the day book's clock (after today's carried time); the first record
        ties the clock to the wall clock and opens the book."""
        t_s += self.offset_s
        if self.clock is None:
            age = max(0.0, time.monotonic() - captured_at) if captured_at else 0.0
            self.clock = Clock(t_s, self.wall() - age)
        if self.book is None:
            assert self.card is not None
            self.book = DayBook(self.card.classes, self.zone, self.clock, t_s, carried=self._carried)
        return t_s

    def _snapshot(self) -> None:
        if self.book is not None:
            current, acc = self.book.current, self.book.current.accountant
            self.today = Today(current.day, acc.samples, acc.duration_s, dict(acc.totals_s))

    def _done(self, days: list[Day]) -> None:
        self._snapshot()
        for day in days:
            self._finished.add(day.day)
            self._write(day, "midnight")
            self._base = dict(self._counters)

    def _write(self, day: Day, ended: str) -> None:
        self._render(day, ended)
        self._flush()

    def _render(self, day: Day, ended: str) -> None:
        """The day's report as it stands, queued to be written (it replaces an older one not yet written)."""
        assert self.card is not None and self.clock is not None
        counts = {k: max(0, self._counters[k] - self._base[k]) for k in COUNTERS}
        report = Report.from_accountant(
            day.accountant,
            self.card,
            source=self.source,
            model=self.model,
            ended=ended,
            timeline=None,
            every_s=self.every_s,
            device=self._device,
            started_at=self._started_at,
            updated_at=_iso(self.wall()),
            resumed=self.runs if day.accountant is self._carried else 0,
            model_sha256=self.model_sha256,
            frames_read=counts["frames_read"],
            dropped=counts["dropped"],
            reconnects=counts["reconnects"],
            inferences_saved=counts["inferences_saved"],
        )
        path, _ = day_paths(self.directory, day.day)
        self._reports[path] = json.dumps(day_dict(report, day, self.zone, self.clock, self._models), indent=2) + "\n"

    def _flush(self, now: bool = False) -> None:
        """Write what waits (timelines first, then reports), if a try is due."""
        self._flushed_at = time.monotonic()
        if now or self.retry.due():
            self.retry.attempt(self._write_waiting)

    def _write_waiting(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)  # it may have gone (and come back)
        for day, timeline in list(self._timelines.items()):
            timeline.flush()
            if day in self._finished:
                del self._timelines[day]
        for path, text in list(self._reports.items()):
            atomic_write_text(path, text)
            del self._reports[path]
            if path not in self.written:
                self.written.append(path)

    def _timeline_for(self, day: date) -> _Timeline:
        if day not in self._timelines:
            self._timelines[day] = _Timeline(day_paths(self.directory, day)[1])
        return self._timelines[day]

    def _sync(self, report: Report) -> None:
        self.model_sha256 = report.model_sha256 or self.model_sha256
        self._device = report.device or self._device
        self._counters = {k: int(getattr(report, k)) for k in COUNTERS}


LATE_S = 30.0  # a sample may reach the accounting this long after it was taken (a busy engine)


def prediction_at(prediction: Prediction, t_s: float) -> Prediction:
    """The prediction on the day book's clock (a resumed day's timeline continues its times)."""
    if t_s == prediction.t_s:
        return prediction
    return Prediction(t_s, prediction.label, prediction.confidence, prediction.probs, prediction.present)


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="seconds")


TIMELINE_MAX_ROWS = 100_000  # rows one camera keeps in memory while its disk refuses them (a day at 1 s)


class _Timeline:
    """One day's timeline CSV, each row on disk exactly once across failed writes: rows wait in
    memory until a write of them has reached the disk, and a failed write is cut back to the last
    good size before the next try (so a half-written row is never left, nor a row written twice)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: deque[str] = deque(maxlen=TIMELINE_MAX_ROWS)  # the oldest go first if the disk refuses too long
        self.dropped = 0  # rows given up that way
        self._good: int | None = None  # bytes known to be on disk, whole rows

    def append(self, prediction: Prediction) -> None:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(timeline_row(prediction))
        if len(self.rows) == self.rows.maxlen:
            self.dropped += 1
        self.rows.append(out.getvalue())

    def flush(self) -> None:
        if not self.rows and self._good is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            known = self._good is not None and os.fstat(fd).st_size >= self._good
            size = self._good if known and self._good is not None else _whole_rows(fd)  # else: a new file
            os.ftruncate(fd, size)
            data = ("" if size else ",".join(TIMELINE_HEADER) + "\n") + "".join(self.rows)
            encoded = data.encode("utf-8")
            os.lseek(fd, size, os.SEEK_SET)
            view = memoryview(encoded)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._good = size + len(encoded)
        self.rows.clear()


def _whole_rows(fd: int) -> int:
    """The file's size up to its last newline: a row cut off (a kill, a full disk) is dropped."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    tail = os.pread(fd, min(size, 65536), max(0, size - 65536))
    cut = tail.rfind(b"\n")
    return max(0, size - len(tail) + cut + 1) if cut >= 0 else 0
