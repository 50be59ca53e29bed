"""JSON report and timeline CSV, each written atomically (temp file, fsync, rename)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from stream.atomic import atomic_write_text
from stream.report import Report
from stream.sinks import BaseSink


def report_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def timeline_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["t_s", "class", "confidence"])
    for entry in report.timeline:
        writer.writerow([f"{entry.t_s:.3f}", entry.label, f"{entry.confidence:.4f}"])
    return buffer.getvalue()


class ReportSink(BaseSink):
    def __init__(self, json_path: Path | None = None, csv_path: Path | None = None) -> None:
        self.json_path = json_path
        self.csv_path = csv_path

    def close(self, report: Report | None) -> None:
        if report is None:
            return
        if self.json_path:
            atomic_write_text(self.json_path, report_json(report))
        if self.csv_path:
            atomic_write_text(self.csv_path, timeline_csv(report))
