"""`screentime plot`: a picture of a run from its report, who was on screen when.

One lane per class (characters first, the background last), each segment a bar in the class's
colour, outages shaded across the lanes, each lane's total beside it. A report of several
sources (`{"sources": [...]}`) becomes one figure with a block per source, stacked: their
clocks differ (media time, the monotonic clock), so each block has its own time axis, in
seconds from its first sample. A checkpoint written while the run goes on is drawn too: its
open segments run to where the report ends.

It reads the JSON as `watch --report` writes it, not `Report` objects, so a report from another
machine or an older run is drawn the same way. matplotlib is an optional extra, imported inside
the functions here, so `import stream` and `screentime watch` never need it.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from stream.errors import BadInputError
from stream.outputs.clock import clock, length
from stream.outputs.plot_lanes import Section, class_colours, lanes

INSTALL_HINT = 'matplotlib is not installed: pip install -e ".[plot]"'
OUTAGE_COLOUR = "#f6d8a8"
LANE_INCHES = 0.45
BLOCK_INCHES = 1.3  # title and time axis of one source's block
WIDTH_INCHES = 12.0
DPI = 100


def load_sections(path: Path) -> list[Section]:
    """The report's sources (one for a single-source report), each checked to be drawable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such report") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not a JSON report ({exc})") from None
    sections = data.get("sources", [data]) if isinstance(data, dict) else None
    if not sections or not all(_drawable(s) for s in sections):
        raise BadInputError(f"{path}: not a screentime report (want classes, segments, screen_time_s, duration_s)")
    return sections


def _drawable(section: object) -> bool:
    keys = ("classes", "segments", "screen_time_s", "duration_s")
    return isinstance(section, dict) and all(k in section for k in keys)


def bars(section: Section) -> dict[str, list[tuple[float, float]]]:
    """Per class, (start, length) in seconds from the first sample: closed segments, then open ones
    (a checkpoint's, running to the report's end)."""
    origin = float(section.get("start_s") or 0.0)
    end_s = float(section.get("end_s") or 0.0)
    out: dict[str, list[tuple[float, float]]] = {c: [] for c in section["classes"]}
    spans = [(s["class"], s["start_s"], s["end_s"]) for s in section["segments"]]
    spans += [(s["class"], s["start_s"], end_s) for s in section.get("open_segments") or []]
    for label, start, end in spans:
        if end > start:
            for part in str(label).split("+"):  # multi-label segments ("jerry+tom") show in every lane
                out.setdefault(part, []).append((start - origin, end - start))
    return out


def outages(section: Section) -> list[tuple[float, float]]:
    """(start, length) of each outage, in seconds from the first sample."""
    origin = float(section.get("start_s") or 0.0)
    return [(o["start_s"] - origin, o["end_s"] - o["start_s"]) for o in section.get("outages") or []]


def span_s(section: Section) -> float:
    """The time the block's axis covers: first sample to the report's end (outages included)."""
    start, end = float(section.get("start_s") or 0.0), float(section.get("end_s") or 0.0)
    return max(end - start, float(section["duration_s"]), 1e-3)


TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def tick_step(span: float, most: int = 10) -> float:
    """The smallest round step (a clock's: 15 s, 5 min, 1 h ...) giving at most `most` ticks."""
    return next((step for step in TICK_STEPS_S if span / step <= most), 86400 * math.ceil(span / 86400 / most))


def audit_note(section: Section, name: str) -> str:
    """ "  audited 1m05s (58s-1m12s)" when the report carries an audit of this class, else ""."""
    audit = section.get("audit") or {}
    if name not in audit.get("estimate_s", {}):
        return ""
    low, high = audit["interval_s"][name]
    return f"  audited {length(audit['estimate_s'][name])} ({length(low)}-{length(high)})"


def figure(sections: Sequence[Section]):
    """The timeline figure (matplotlib's object API: no pyplot, no global state, any thread)."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, MultipleLocator
    except ImportError:
        raise BadInputError(INSTALL_HINT) from None
    heights = [len(lanes(s)) * LANE_INCHES + BLOCK_INCHES for s in sections]
    fig = Figure(figsize=(WIDTH_INCHES, sum(heights)), dpi=DPI, layout="constrained")  # room for labels and totals
    grid = fig.add_gridspec(len(sections), 1, height_ratios=heights)
    for row, section in enumerate(sections):
        ax = fig.add_subplot(grid[row])
        names = lanes(section)
        colours = class_colours(section)
        per_class = bars(section)
        for start, down_s in outages(section):
            ax.axvspan(start, start + down_s, color=OUTAGE_COLOUR, lw=0, zorder=1)  # over the grid, under the bars
        total_s = float(section["duration_s"])
        for y, name in enumerate(reversed(names)):
            ax.broken_barh(per_class.get(name, []), (y - 0.35, 0.7), facecolors=colours.get(name, "black"), zorder=2)
            seconds = float(section["screen_time_s"].get(name, 0.0))
            share = f"  {seconds / total_s:.0%}" if total_s > 0 else ""
            audited = audit_note(section, name)
            ax.text(1.01, y, f"{length(seconds)}{share}{audited}", transform=ax.get_yaxis_transform(), va="center")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([n if n != section.get("background") else f"{n} (background)" for n in reversed(names)])
        ax.set_ylim(-0.6, len(names) - 0.4)
        ax.set_xlim(0, span_s(section))
        minutes = span_s(section) >= 120
        ax.xaxis.set_major_locator(MultipleLocator(tick_step(span_s(section))))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos, m=minutes: clock(x, m)))
        ax.grid(axis="x", color="#e0e0e0")
        ax.set_axisbelow(True)
        note = "   (shaded: outages)" if section.get("outages") else ""
        ax.set_xlabel(f"{'time' if minutes else 'seconds'} from the first sample{note}")
        ended = section.get("ended", "")
        ax.set_title(
            f"{section.get('source', '')} · {length(total_s)} analysed · {ended}", loc="left", fontsize="medium"
        )
    return fig


def png(sections: Sequence[Section]) -> bytes:
    buffer = io.BytesIO()
    figure(sections).savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def plot_report(report: Path, output: Path | None = None, html: Path | None = None) -> list[Path]:
    """Draw `report` to `output` (PNG) and/or `html` (a self-contained page); the files written.
    With neither, REPORT.png beside the report."""
    from stream.outputs.atomic import atomic_write_text
    from stream.outputs.plot_page import page

    sections = load_sections(report)
    picture = png(sections)
    if output is None and html is None:
        output = report.with_suffix(".png")
    written: list[Path] = []
    try:
        if output is not None:
            output.write_bytes(picture)
            written.append(output)
        if html is not None:
            atomic_write_text(html, page(sections, picture, title=report.name))
            written.append(html)
    except OSError as exc:
        raise BadInputError(f"cannot write: {exc}") from None
    return written
