"""A camera's daily files: `REPORTS/NAME/YYYY-MM-DD.json` (the day's complete report, with its
hours) and `.csv` (the day's timeline), cut at local midnight.

A sink of one camera's pipeline: it keeps its own day-by-day accounting (`stream.fleet.days`)
from the same records the run's accountant gets, rewrites today's report atomically at each
checkpoint (`ended: "running"`), writes a day's final report when midnight passes, and today's
at the end. Started again the same day it carries on today's file (`stream.resume`: the time it
was down becomes an outage), so a service killed and restarted keeps today's totals.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from stream.accounting import Accountant
from stream.atomic import atomic_write_text
from stream.errors import BadInputError, OutputError
from stream.fleet.days import Clock, Day, DayBook, hourly, hours, local_day
from stream.modelcard import ModelCard
from stream.records import Frame, Gap, Lost, Prediction, VideoInfo
from stream.report import RUNNING, Report, ms
from stream.resume import resumed_accountant
from stream.sinks import BaseSink
from stream.sinks.report_sink import TimelineWriter

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
    for i, (start, sha) in enumerate(models or []):
        end = models[i + 1][0] if i + 1 < len(models) else day.end_s
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


class DayFilesSink(BaseSink):
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
        self._timeline: TimelineWriter | None = None
        self._timeline_day: date | None = None
        self._base: dict[str, int] = dict.fromkeys(COUNTERS, 0)  # the run's counters when the day began
        self._counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._device = ""
        self._started_at = ""
        self.written: list[Path] = []
        self.model_of = model_of
        self._models: list[tuple[float, str]] = []  # (book time from which, model sha256)

    # -- the sink ------------------------------------------------------------------------------

    def start(self, info: VideoInfo, card: ModelCard) -> None:
        self.card = card
        self._started_at = _iso(self.wall())
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"day files {self.directory}: {exc.strerror or exc}") from None
        if self.resume:
            self._load_today()

    def update(self, prediction: Prediction, frame: Frame, stats) -> None:
        self._counters = {k: int(getattr(stats, k, 0)) for k in COUNTERS}
        self._device = getattr(stats, "device", "") or self._device
        t_s = self._book_time(prediction.t_s, frame.captured_at)
        sha = self.model_of() if self.model_of is not None else self.model_sha256
        if not self._models or self._models[-1][1] != sha:
            self._models.append((t_s, sha))
        self._done(self.book.sample(t_s, prediction.present))
        self._timeline_for(self.book.current.day).append(self.source, prediction_at(prediction, t_s))

    def control(self, item: Lost | Gap) -> None:
        if isinstance(item, Lost):
            t_s = self._book_time(item.t_s)
            self._done(self.book.lost(t_s))
        else:
            self._done(self.book.gap(self._book_time(item.start_s), self._book_time(item.end_s)))

    def tick(self, stats) -> None:
        """A camera down across midnight: yesterday's file is finished without waiting for a sample
        (a margin keeps a late sample from landing before the cut)."""
        if self.book is not None and self.clock is not None:
            self._done(self.book.advance(self.clock.source(self.wall()) - LATE_S))
        if self._timeline is not None:
            self._guard(self._timeline.flush_if_due)

    def checkpoint(self, report: Report) -> None:
        self._sync(report)
        if self._timeline is not None:  # the timeline on disk reaches at least as far as the report
            self._guard(self._timeline.flush)
        if self.book is not None:
            self._write(self.book.current, RUNNING)

    def close(self, report: Report | None) -> None:
        if report is None or self.book is None:
            self._close_timeline()
            return
        self._sync(report)
        end = self._book_time(report.end_s) if report.samples else None
        days = self.book.finish(end)
        for day in days[:-1]:
            self._write(day, "midnight")
        self._write(days[-1], report.ended)
        self._close_timeline()

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
                self._guard(old.rename, old.with_name(f"{old.stem}.before-{stamp}{old.suffix}"))
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

    def _done(self, days: list[Day]) -> None:
        for day in days:
            self._write(day, "midnight")
            if self._timeline_day == day.day:
                self._close_timeline()
            self._base = dict(self._counters)

    def _write(self, day: Day, ended: str) -> None:
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
            **counts,
        )
        path, _ = day_paths(self.directory, day.day)
        text = json.dumps(day_dict(report, day, self.zone, self.clock, self._models), indent=2) + "\n"
        self._guard(atomic_write_text, path, text)
        if path not in self.written:
            self.written.append(path)

    def _sync(self, report: Report) -> None:
        self.model_sha256 = report.model_sha256 or self.model_sha256
        self._device = report.device or self._device
        self._counters = {k: int(getattr(report, k)) for k in COUNTERS}

    def _timeline_for(self, day: date) -> TimelineWriter:
        if self._timeline_day != day:
            self._close_timeline()
            _, path = day_paths(self.directory, day)
            self._timeline = self._guard(TimelineWriter, path, False, append=True)
            self._timeline_day = day
        assert self._timeline is not None
        return self._timeline

    def _close_timeline(self) -> None:
        if self._timeline is not None:
            timeline, self._timeline, self._timeline_day = self._timeline, None, None
            self._guard(timeline.close)

    def _guard(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except OSError as exc:
            raise OutputError(f"day files {self.directory}: {exc.strerror or exc}") from None


LATE_S = 30.0  # a sample may reach the accounting this long after it was taken (a busy engine)


def prediction_at(prediction: Prediction, t_s: float) -> Prediction:
    """The prediction on the day book's clock (a resumed day's timeline continues its times)."""
    if t_s == prediction.t_s:
        return prediction
    return Prediction(t_s, prediction.label, prediction.confidence, prediction.probs, prediction.present)


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="seconds")
