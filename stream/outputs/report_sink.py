"""The JSON report, rewritten atomically at checkpoints, and the timeline CSV, appended as it grows.

Durability is the point: after `kill -9` or a power cut the report parses and is at most one
checkpoint old, and the timeline holds every sample up to its last flush (at most
`FLUSH_S` seconds old). Memory holds neither: the report is built from the accountant's
totals and segments, the timeline goes straight to disk.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import TextIO, assert_never

from stream.counting.report import Report
from stream.defaults import FLUSH_S
from stream.errors import OutputError
from stream.outputs import events as ev
from stream.outputs.atomic import atomic_write_text
from stream.outputs.events import Event, OutputBase, SourceTag
from stream.records import Prediction

TIMELINE_HEADER = ["t_s", "class", "confidence"]


def timeline_row(prediction: Prediction) -> list[str]:
    """One sample's timeline row under TIMELINE_HEADER (`watch --csv` and a camera's day files)."""
    return [f"{prediction.t_s:.3f}", prediction.label, f"{prediction.confidence:.4f}"]


def report_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def _failure(what: str, path: Path, exc: OSError) -> OutputError:
    return OutputError(f"{what} {path}: {exc.strerror or exc}")


class TimelineWriter:
    """Appends one CSV row per sample; flushed and fsynced at least every `flush_s` seconds."""

    def __init__(self, path: Path, with_source: bool, append: bool = False, flush_s: float = FLUSH_S) -> None:
        self.path = path
        self.with_source = with_source
        self.flush_s = flush_s
        fresh = not append or not path.exists() or path.stat().st_size == 0
        self._file: TextIO = path.open("a" if append else "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file, lineterminator="\n")
        if fresh:
            self._csv.writerow((["source"] if with_source else []) + TIMELINE_HEADER)
        self._flushed_at = time.monotonic()
        self._dirty = False

    def append(self, source: str, prediction: Prediction) -> None:
        self._csv.writerow(([source] if self.with_source else []) + timeline_row(prediction))
        self._dirty = True
        self.flush_if_due()

    def flush_if_due(self) -> None:
        """Flush what is written if the last flush is `flush_s` old (also called between samples)."""
        if self._dirty and time.monotonic() - self._flushed_at >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._flushed_at = time.monotonic()
        self._dirty = False

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._file.close()


def _guarded(what: str, path: Path, call, *args) -> None:
    """Run a write; an OSError becomes one OutputError line naming the file."""
    try:
        call(*args)
    except OSError as exc:
        raise _failure(what, path, exc) from None


class ReportSink(OutputBase):
    """The JSON report: replaced atomically at every checkpoint and whenever a source ends.

    With `several` sources (or once a second source is added) it holds every section as it
    stands, `{"sources": [...]}` in the order the sources were added; a source removed from the
    run keeps its final section.
    """

    what = "report"

    def __init__(self, path: Path, several: bool = False) -> None:
        self.path = path
        self.several = several
        self._reports: dict[int, Report | None] = {}

    def handle(self, event: Event) -> None:
        match event:
            case ev.Started(tag=tag):
                self._reports.setdefault(tag.key, None)
            case ev.Checkpoint(tag=tag, report=report) | ev.Ended(tag=tag, report=report):
                self._write(tag, report)
            case ev.Sampled() | ev.Pictured() | ev.SourceLost() | ev.SourceBack() | ev.ClockJumped() | ev.Tick():
                pass
            case _:
                assert_never(event)

    def _write(self, tag: SourceTag, report: Report | None) -> None:
        if report is None:
            return
        self._reports[tag.key] = report
        if not self.several and len(self._reports) == 1:
            text = report_json(report)
        else:
            done = [r.to_dict() for k in sorted(self._reports) if (r := self._reports[k]) is not None]
            text = json.dumps({"sources": done}, indent=2) + "\n"
        _guarded(self.what, self.path, atomic_write_text, self.path, text)


class TimelineSink(OutputBase):
    """The timeline CSV, one row per sample, appended and fsynced as the run goes; opened when
    the run starts and closed when it ends. With `several` sources each row names its source."""

    what = "timeline"

    def __init__(self, path: Path, several: bool = False, append: bool = False) -> None:
        self.path = path
        self.several = several
        self.append = append  # a resumed run continues the timeline instead of starting it again
        self._writer: TimelineWriter | None = None

    def __enter__(self) -> TimelineSink:
        self._writer = TimelineWriter(self.path, self.several, append=self.append)
        return self

    def handle(self, event: Event) -> None:
        if self._writer is None:
            return
        writer = self._writer
        match event:
            case ev.Sampled(tag=tag, prediction=prediction):
                _guarded(self.what, self.path, writer.append, tag.source, prediction)
            case ev.Tick():  # rows written just before a pause in samples (an outage) reach the disk on time too
                _guarded(self.what, self.path, writer.flush_if_due)
            case ev.Checkpoint() | ev.Ended():
                _guarded(self.what, self.path, writer.flush)
            case ev.Started() | ev.Pictured() | ev.SourceLost() | ev.SourceBack() | ev.ClockJumped():
                pass
            case _:
                assert_never(event)

    def __exit__(self, *exc) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            _guarded(self.what, self.path, writer.close)


__all__ = ["ReportSink", "TimelineSink", "TimelineWriter", "report_json", "timeline_row"]
