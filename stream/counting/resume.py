"""`--resume`: a restarted `watch` carries on the totals of the report it left behind.

The earlier run's totals, segments and outages are loaded into a fresh accountant; the new
run's times continue after the old report's end, and the wall-clock time between the two runs
(a crash, a reboot, a deploy) becomes an outage, so totals still add up to `duration_s`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stream.counting.accounting import Accountant
from stream.errors import BadInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Carried:
    accountant: Accountant
    offset_s: float  # the new run's source time 0 on the resumed clock
    runs: int  # earlier runs now carried


def load_previous(path: Path | None, resume: bool, sections: int) -> list[dict] | None:
    """The earlier run's report sections, or None. Without --resume an existing report is
    replaced, and the log says so (a restarted monitor never overwrites it silently)."""
    if path is None or not path.exists():
        return None
    if not resume:
        log.warning("%s exists and will be replaced (--resume carries its totals on instead)", path)
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot resume from it ({exc})") from None
    reports = data["sources"] if isinstance(data, dict) and "sources" in data else [data]
    if len(reports) != sections:
        raise BadInputError(f"{path}: holds {len(reports)} sources, this run has {sections}; cannot resume")
    return reports


def resumed_accountant(previous: dict, classes: tuple[str, ...], now: datetime | None = None) -> Carried:
    """An accountant holding `previous`'s results, and where the new run's times start."""
    try:
        if list(previous["classes"]) != list(classes):
            raise BadInputError(f"cannot resume: the report's classes {previous['classes']} are not the model's")
        accountant = Accountant(classes)
        accountant.totals_s.update({k: float(v) for k, v in previous["screen_time_s"].items()})
        accountant.samples = int(previous["samples"])
        segments = previous["segments"] + [{**s, "end_s": previous["end_s"]} for s in previous.get("open_segments", [])]
        for segment in sorted(segments, key=lambda s: s["start_s"]):
            accountant.closed.append(segment["class"], float(segment["start_s"]), float(segment["end_s"]))
        accountant.outages = [(float(o["start_s"]), float(o["end_s"])) for o in previous.get("outages", [])]
        end_s = float(previous["end_s"])
        updated = datetime.fromisoformat(previous["updated_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"cannot resume: the report is not one screentime wrote ({exc})") from None
    if previous["samples"] == 0:
        return Carried(accountant, 0.0, int(previous.get("resumed", 0)) + 1)
    down_s = max(0.0, ((now or datetime.now(UTC)) - updated).total_seconds())
    accountant.start_s = float(previous["start_s"])
    accountant.restore_end(end_s)
    return Carried(accountant, end_s + down_s, int(previous.get("resumed", 0)) + 1)
