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
import threading
import time
from pathlib import Path
from typing import TextIO

from stream.atomic import atomic_write_text
from stream.defaults import FLUSH_S
from stream.errors import OutputError
from stream.records import Frame, Prediction
from stream.report import Report
from stream.sinks import BaseSink

TIMELINE_HEADER = ["t_s", "class", "confidence"]


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
        row = [f"{prediction.t_s:.3f}", prediction.label, f"{prediction.confidence:.4f}"]
        self._csv.writerow(([source] if self.with_source else []) + row)
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


class _Shared(BaseSink):
    """A sink shared by several sources' pipelines: each gets a `section(i)`; a single-source run
    uses the sink itself as section 0. A failure is kept and raised to every section's pipeline."""

    def __init__(self, sections: int = 1) -> None:
        self._sections = sections
        self._open = 0
        self._lock = threading.Lock()
        self._error: OutputError | None = None

    def section(self, index: int) -> _Section:
        return _Section(self, index)

    def start(self, info, card) -> None:
        self.open_section()

    def update(self, prediction: Prediction, frame: Frame, stats) -> None:
        self.record(stats.source, prediction)

    def checkpoint(self, report: Report) -> None:
        self.write(0, report, final=False)

    def close(self, report: Report | None) -> None:
        self.write(0, report, final=True)

    def open_section(self) -> None:
        with self._lock:
            self._open += 1
            if self._error is None:
                self._guard(self._on_open)
            self._raise()

    def record(self, source: str, prediction: Prediction) -> None:
        with self._lock:
            if self._error is None:
                self._guard(self._on_record, source, prediction)
            self._raise()

    def write(self, index: int, report: Report | None, final: bool) -> None:
        with self._lock:
            if final:
                self._open -= 1
            if self._error is None:
                self._guard(self._on_write, index, report, final, self._open <= 0)
            self._raise()

    def _on_open(self) -> None:
        pass

    def _on_record(self, source: str, prediction: Prediction) -> None:
        pass

    def _on_write(self, index: int, report: Report | None, final: bool, last: bool) -> None:
        pass

    def _guard(self, method, *args) -> None:
        try:
            method(*args)
        except OSError as exc:
            self._error = _failure(self.what, self.path, exc)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


class ReportSink(_Shared):
    """The JSON report: replaced atomically at every checkpoint and at the end.

    With several sources it holds every section as it stands: `{"sources": [...]}` in source order.
    """

    what = "report"

    def __init__(self, path: Path, sections: int = 1) -> None:
        super().__init__(sections)
        self.path = path
        self._reports: list[Report | None] = [None] * sections

    def _on_write(self, index: int, report: Report | None, final: bool, last: bool) -> None:
        if report is None:
            return
        self._reports[index] = report
        if len(self._reports) == 1:
            text = report_json(report)
        else:
            done = [r.to_dict() for r in self._reports if r is not None]
            text = json.dumps({"sources": done}, indent=2) + "\n"
        atomic_write_text(self.path, text)


class TimelineSink(_Shared):
    """The timeline CSV, one row per sample, appended and fsynced as the run goes."""

    what = "timeline"

    def __init__(self, path: Path, sections: int = 1, append: bool = False) -> None:
        super().__init__(sections)
        self.path = path
        self.append = append  # a resumed run continues the timeline instead of starting it again
        self._writer: TimelineWriter | None = None

    def _on_open(self) -> None:
        if self._writer is None:
            self._writer = TimelineWriter(self.path, self._sections > 1, append=self.append)

    def _on_record(self, source: str, prediction: Prediction) -> None:
        if self._writer is not None:
            self._writer.append(source, prediction)

    def tick(self, stats) -> None:
        """Rows written just before a pause in samples (an outage) reach the disk on time too."""
        with self._lock:
            if self._error is None and self._writer is not None:
                self._guard(self._writer.flush_if_due)
            self._raise()

    def _on_write(self, index: int, report: Report | None, final: bool, last: bool) -> None:
        if self._writer is None:
            return
        if final and last:
            writer, self._writer = self._writer, None
            writer.close()
        else:
            self._writer.flush()


class _Section(BaseSink):
    """The part of a shared sink that belongs to one source's pipeline."""

    def __init__(self, sink: _Shared, index: int) -> None:
        self._sink, self._index = sink, index

    def start(self, info, card) -> None:
        self._sink.open_section()

    def update(self, prediction: Prediction, frame: Frame, stats) -> None:
        self._sink.record(stats.source, prediction)

    def checkpoint(self, report: Report) -> None:
        self._sink.write(self._index, report, final=False)

    def tick(self, stats) -> None:
        self._sink.tick(stats)

    def close(self, report: Report | None) -> None:
        self._sink.write(self._index, report, final=True)


__all__ = ["ReportSink", "TimelineSink", "TimelineWriter", "report_json"]
