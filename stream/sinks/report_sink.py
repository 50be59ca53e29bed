"""JSON report and timeline CSV, each written atomically (temp file, fsync, rename)."""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

from stream.atomic import atomic_write_text
from stream.report import Report
from stream.sinks import BaseSink


def report_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def timeline_csv(reports: list[Report], with_source: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((["source"] if with_source else []) + ["t_s", "class", "confidence"])
    for report in reports:
        for entry in report.timeline:
            row = [f"{entry.t_s:.3f}", entry.label, f"{entry.confidence:.4f}"]
            writer.writerow(([report.source] if with_source else []) + row)
    return buffer.getvalue()


class ReportSink(BaseSink):
    """One JSON report and one timeline CSV for the run.

    With several sources each pipeline gets a `section(i)`; the file is rewritten (atomically)
    as each source finishes, holding every finished section: `{"sources": [...]}` in source order.
    """

    def __init__(self, json_path: Path | None = None, csv_path: Path | None = None, sections: int = 1) -> None:
        self.json_path = json_path
        self.csv_path = csv_path
        self._reports: list[Report | None] = [None] * sections
        self._lock = threading.Lock()

    def section(self, index: int) -> _Section:
        return _Section(self, index)

    def close(self, report: Report | None) -> None:
        self.write(0, report)

    def write(self, index: int, report: Report | None) -> None:
        if report is None:
            return
        with self._lock:
            self._reports[index] = report
            done = [r for r in self._reports if r is not None]
            if self.json_path:
                if len(self._reports) == 1:
                    text = report_json(report)
                else:
                    text = json.dumps({"sources": [r.to_dict() for r in done]}, indent=2) + "\n"
                atomic_write_text(self.json_path, text)
            if self.csv_path:
                atomic_write_text(self.csv_path, timeline_csv(done, with_source=len(self._reports) > 1))


class _Section(BaseSink):
    """The part of a shared `ReportSink` that belongs to one source's pipeline."""

    def __init__(self, sink: ReportSink, index: int) -> None:
        self._sink, self._index = sink, index

    def close(self, report: Report | None) -> None:
        self._sink.write(self._index, report)
