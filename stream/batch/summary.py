"""The batch's table: one row per video and class, every video of the batch, done before or now.

Rebuilt from the reports on disk at the end of every run (also after Ctrl-C), so it always
describes the whole archive, not only the last run. A video that failed has one row with its
error and no class. CSV always; Parquet as well when pyarrow is importable (it comes with Ray).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from stream.batch.plan import SUMMARY_NAME, Video
from stream.outputs.atomic import atomic_write_text, fsync_dir

COLUMNS = [
    "video",
    "report",
    "status",
    "class",
    "character",
    "screen_time_s",
    "share",
    "duration_s",
    "samples",
    "every_s",
    "model_sha256",
    "decoded_on",
    "inferred_on",
    "error",
]


class Status(StrEnum):
    ANALYSED = "analysed"  # by this run
    DONE = "done"  # by an earlier run with the same model and interval: skipped
    FAILED = "failed"
    NOT_RUN = "not run"  # the run was stopped before it


@dataclass(frozen=True)
class Outcome:
    """What became of one video: its report (as written) or its error."""

    video: Video
    status: Status
    report: dict[str, Any] | None = None
    error: str = ""
    decoded_on: str = ""  # Ray node ids (this run only)
    inferred_on: str = ""


SUMMARY_KEYS = ("screen_time_s", "share", "duration_s", "samples", "every_s", "characters", "model_sha256")


def brief(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a report the summary needs: a batch of 10,000 videos keeps no timelines in memory."""
    return {k: report[k] for k in SUMMARY_KEYS if k in report}


def summary_rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for o in outcomes:
        base = {"video": o.video.source, "report": o.video.report_name, "status": str(o.status)}
        nodes = {"decoded_on": o.decoded_on, "inferred_on": o.inferred_on}
        report = o.report
        if report is None:
            rows.append({**dict.fromkeys(COLUMNS), **base, **nodes, "error": o.error})
            continue
        characters = set(report.get("characters", []))
        for label, seconds in report["screen_time_s"].items():
            rows.append(
                {
                    **base,
                    "class": label,
                    "character": label in characters,
                    "screen_time_s": seconds,
                    "share": report["share"].get(label, 0.0),
                    "duration_s": report["duration_s"],
                    "samples": report["samples"],
                    "every_s": report["every_s"],
                    "model_sha256": report.get("model_sha256", ""),
                    **nodes,
                    "error": "",
                }
            )
    return rows


def write_summary(out: Path, outcomes: list[Outcome]) -> list[Path]:
    """DIR/summary.csv (and DIR/summary.parquet), each replaced atomically; the paths written."""
    rows = summary_rows(outcomes)
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    written = [out / f"{SUMMARY_NAME}.csv"]
    atomic_write_text(written[0], text.getvalue())
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return written
    table = pa.Table.from_pylist(rows, schema=_schema(pa)) if rows else _schema(pa).empty_table()
    target = out / f"{SUMMARY_NAME}.parquet"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=out)
    try:
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(out)
    return [*written, target]


def _schema(pa):
    """Typed columns, so a failed video's empty numbers are nulls, not strings."""
    numbers = {"screen_time_s", "share", "duration_s", "every_s"}
    fields = []
    for name in COLUMNS:
        if name in numbers:
            kind = pa.float64()
        elif name == "samples":
            kind = pa.int64()
        elif name == "character":
            kind = pa.bool_()
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)
