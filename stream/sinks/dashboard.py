"""The live terminal dashboard (rich). `render` is a pure function of `RunStats`, so it is tested
by rendering to a string; the sink only owns the `Live` display that refreshes it.

Below the totals, a strip of the last few minutes: one line per character, one cell per
`Strip.cell_s` seconds, full where the character was on screen for at least half the cell's
samples, half where for fewer, blank where not at all, a dot where there was no sample (not yet,
or the camera was down). Totals say how much; the strip says when, which is what a person
watching a wall of cameras asks first.
"""

from __future__ import annotations

import threading

from rich.bar import Bar
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from stream.modelcard import ModelCard
from stream.records import VideoInfo
from stream.report import Report
from stream.report_table import audit_cells
from stream.sinks import BaseSink
from stream.stats import RunStats
from stream.strip import Cell

STRIP_COLOURS = ("cyan", "magenta", "yellow", "green", "bright_red", "bright_blue", "white")
FULL, PART, ABSENT, NO_DATA = "█", "▄", " ", "·"


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def render(stats: RunStats) -> RenderableType:
    covered = sum(stats.totals.values()) or 1.0
    table = Table(expand=True, box=None)
    table.add_column("character")
    table.add_column("screen time", justify="right")
    table.add_column("share", justify="right")
    table.add_column("", ratio=1)
    for name in stats.classes:
        seconds = stats.totals.get(name, 0.0)
        share = seconds / covered
        label = name if name in stats.characters else f"[dim]{name} (background)[/]"
        table.add_row(label, f"{seconds:8.1f} s", f"{share:5.1%}", Bar(1.0, 0, share, color="cyan"))
    now = stats.current
    current = (
        Text.assemble(("now: ", "bold"), (now.label, "bold yellow"), f"  {now.confidence:.0%}")
        if now
        else Text("now: waiting for the first frame", style="dim")
    )
    numbers = [
        f"samples {stats.samples}",
        f"decoded {stats.decoded_fps:.1f} fps",
        f"sampled {stats.sampled_fps:.1f}/s",
        f"analysed {stats.analysed_fps:.1f}/s",
        f"dropped {stats.dropped}",
        f"elapsed {_clock(stats.elapsed_s)}",
    ]
    if stats.live:  # capture-to-count latency means something only for live sources
        numbers[3:3] = [f"latency {stats.latency_s * 1000:.0f} ms"]
        numbers.append(f"outages {stats.outages}")
    parts: list[RenderableType] = [table]
    if (recent := strip(stats)) is not None:
        parts.append(recent)
    parts += [current, Text("   ".join(numbers))]
    if stats.duration_s:
        done = min(1.0, stats.t_s / stats.duration_s)
        speed = stats.t_s / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
        eta = (stats.duration_s - stats.t_s) / speed if speed > 0 else 0.0
        progress = Table.grid(expand=True, padding=(0, 1))
        progress.add_column(ratio=1)
        progress.add_column()
        progress.add_row(
            ProgressBar(total=1.0, completed=done),
            f"{done:.0%} of {_clock(stats.duration_s)}   {speed:.1f}x real time   ETA {_clock(eta)}",
        )
        parts.append(progress)
    state = f"{stats.state} ({stats.detail})" if stats.detail else str(stats.state)
    title = f"screentime · {stats.source} · {state} · {stats.device}"
    return Panel(Group(*parts), title=title, title_align="left")


def strip_cell(cell: Cell | None, label: str) -> str:
    """The glyph for one character in one cell of the strip."""
    if cell is None or cell.samples == 0:
        return NO_DATA
    share = cell.share(label)
    return FULL if share >= 0.5 else PART if share > 0 else ABSENT


def strip(stats: RunStats) -> RenderableType | None:
    """Who was on screen when, over the last few minutes; None before the first sample."""
    cells = stats.recent.window()
    if not cells or not stats.characters:
        return None
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    for i, name in enumerate(stats.characters):
        line = Text()
        colour = STRIP_COLOURS[i % len(STRIP_COLOURS)]
        for cell in cells:
            glyph = strip_cell(cell, name)
            line.append(glyph, style="dim" if glyph == NO_DATA else colour)
        grid.add_row(name, line)
    span_s = stats.recent.cell_s * stats.recent.cells
    span = f"{span_s:g} s" if span_s < 120 else f"{span_s / 60:g} min"
    grid.add_row("", Text(f"last {span}, one cell = {stats.recent.cell_s:g} s, now at the right", "dim"))
    return grid


def summary(report: Report) -> RenderableType:
    table = Table(title=f"screen time · {report.source} · {report.duration_s:.1f} s analysed ({report.ended})")
    table.add_column("class")
    table.add_column("seconds", justify="right")
    table.add_column("share", justify="right")
    table.add_column("segments", justify="right")
    found = report.intervals  # empty for a model card without held-out counts
    if found:
        table.add_column("90% interval s", justify="right")
    if report.audit:
        table.add_column(f"audited s (n={report.audit['n']})", justify="right")
        table.add_column("audit interval s", justify="right")
    for name, seconds in report.screen_time_s.items():
        runs = sum(1 for s in report.segments if s.label == name)
        label = name if name in report.characters else f"{name} (background)"
        row = [label, f"{seconds:.1f}", f"{report.share[name]:.1%}", str(runs)]
        if found:
            row.append(f"{found[name].low:.1f}-{found[name].high:.1f}" if name in found else "")
        if report.audit:
            row += audit_cells(report.audit, name)
        table.add_row(*row)
    if found:
        table.caption = "interval: from the model's held-out mistakes; valid for footage like its training frames"
    return table


class DashboardSink(BaseSink):
    """One live display for the run: a panel per source. Shared by the sources' pipelines, so it
    starts with the first of them and ends, printing every summary, with the last."""

    def __init__(
        self, stats: RunStats | list[RunStats], console: Console | None = None, refresh_per_second: float = 4
    ) -> None:
        self.stats = stats if isinstance(stats, list) else [stats]
        self.console = console or Console()
        self._live = Live(
            get_renderable=lambda: Group(*(render(s) for s in self.stats)),
            console=self.console,
            refresh_per_second=refresh_per_second,
            transient=True,
        )
        self._lock = threading.Lock()
        self._running = 0
        self._reports: list[Report] = []

    def start(self, info: VideoInfo, card: ModelCard) -> None:
        with self._lock:
            if self._running == 0:
                self._live.start()
            self._running += 1

    def close(self, report: Report | None) -> None:
        with self._lock:
            if report is not None:
                self._reports.append(report)
            self._running -= 1
            if self._running > 0:
                return
            self._live.stop()
            for finished in self._reports:
                self.console.print(summary(finished))
