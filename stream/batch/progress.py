"""The batch's progress bar: videos and sampled seconds, each with its rate and ETA.

Seconds are the honest unit of work (a 2-hour film is 40 episodes' worth), so their bar gets
its total from the files' own durations, probed on the driver (headers only, milliseconds each).
"""

from __future__ import annotations

import av
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text


def probe_duration_s(path: str) -> float:
    """A file's duration from its container header; 0.0 when it does not say (or is not a video)."""
    try:
        with av.open(path) as container:
            if container.duration:
                return container.duration / av.time_base
            stream = container.streams.video[0]
            if not stream.duration:
                return 0.0
            assert stream.time_base is not None  # FFmpeg gives every demuxed stream a time base
            return float(stream.duration * stream.time_base)
    except (av.FFmpegError, OSError, IndexError):
        return 0.0


class RateColumn(ProgressColumn):
    """Completed units per second, as measured by rich over its recent window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f}/s" if speed else "-/s", style="progress.data.speed")


class BatchProgress:
    """Two bars, or nothing at all when `enabled` is False (not a terminal, tests)."""

    def __init__(self, videos: int, seconds: float, enabled: bool, console: Console | None = None) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("{task.description:>15}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )
        self._videos = self._progress.add_task("videos", total=videos)
        self._seconds = self._progress.add_task("sampled seconds", total=max(seconds, 1.0))

    def __enter__(self) -> BatchProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def seconds(self, advance_s: float) -> None:
        self._progress.advance(self._seconds, advance_s)

    def video(self) -> None:
        self._progress.advance(self._videos, 1)
