"""The live terminal dashboard (rich). `render` is a pure function of `RunStats`, so it is tested
by rendering to a string; the sink only owns the `Live` display that refreshes it.

Below the totals, a strip of the last few minutes: one line per character, one cell per
`Strip.cell_s` seconds, full where the character was on screen for at least half the cell's
samples, half where for fewer, blank where not at all, a dot where there was no sample (not yet,
or the camera was down). Totals say how much; the strip says when, which is what a person
watching a wall of cameras asks first.
"""

from __future__ import annotations

from typing import assert_never

from rich.bar import Bar
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from stream.counting.report import Report
from stream.counting.report_table import audit_cells
from stream.counting.stats import RunState, RunStats
from stream.counting.strip import Cell
from stream.outputs import events as ev
from stream.outputs.clock import clock
from stream.outputs.events import Event, OutputBase

STRIP_COLOURS = ("cyan", "magenta", "yellow", "green", "bright_red", "bright_blue", "white")
FULL, PART, ABSENT, NO_DATA = "█", "▄", " ", "·"


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
        f"elapsed {clock(stats.elapsed_s, padded=True)}",
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
        of, eta_clock = clock(stats.duration_s, padded=True), clock(eta, padded=True)
        progress.add_row(
            ProgressBar(total=1.0, completed=done), f"{done:.0%} of {of}   {speed:.1f}x real time   ETA {eta_clock}"
        )
        parts.append(progress)
    detail = connection_detail(stats)
    state = f"{stats.state} ({detail})" if detail else str(stats.state)
    title = f"screentime · {stats.source} · {state} · {stats.device}"
    return Panel(Group(*parts), title=title, title_align="left")


def connection_detail(stats: RunStats) -> str:
    """A live source's connection, for people: "retry 3 in 4.2 s", "2 reconnects", or nothing."""
    if not stats.live:
        return ""
    retrying = stats.state is RunState.RECONNECTING or (stats.state is RunState.CONNECTING and stats.retry_attempt)
    if retrying:
        return f"retry {stats.retry_attempt} in {stats.next_retry_in_s:.1f} s" if stats.retry_attempt else ""
    return f"{stats.reconnects} reconnects" if stats.reconnects else ""


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


class DashboardSink(OutputBase):
    """One live display for the run: a panel per source, in the order they were added. Opened
    with the run; at its end the display stops and every source's summary is printed."""

    def __init__(self, console: Console | None = None, refresh_per_second: float = 4) -> None:
        self.stats: dict[int, RunStats] = {}  # per source: the latest snapshot an event brought
        self.console = console or Console()
        self._live = Live(
            get_renderable=lambda: Group(*(render(stats) for stats in list(self.stats.values()))),
            console=self.console,
            refresh_per_second=refresh_per_second,
            transient=True,
        )
        self._reports: list[Report] = []

    def __enter__(self) -> DashboardSink:
        self._live.start()
        return self

    def handle(self, event: Event) -> None:
        match event:
            case ev.Started(tag=tag, stats=stats) | ev.Sampled(tag=tag, stats=stats) | ev.Tick(tag=tag, stats=stats):
                self.stats[tag.key] = stats
            case ev.Ended(tag=tag, report=report, stats=stats):
                self.stats[tag.key] = stats
                if report is not None:
                    self._reports.append(report)
            case ev.Pictured() | ev.SourceLost() | ev.SourceBack() | ev.ClockJumped() | ev.Checkpoint():
                pass
            case _:
                assert_never(event)

    def __exit__(self, *exc) -> None:
        self._live.stop()
        for finished in self._reports:
            self.console.print(summary(finished))
