"""The Python API behind `screentime watch`, with the same names, for notebooks and services.

    run = watch("episode.mp4", "model.onnx", every_s=1.0)
    for prediction in run:          # per-sample results as they are counted
        ...
    run.report.screen_time_s        # the report, complete once the loop ends

or simply `report = watch(...).run()`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from stream.atomic import check_writable
from stream.engine import Engine
from stream.errors import BadInputError
from stream.pipeline import Pipeline
from stream.reconnect import ReconnectPolicy
from stream.records import Prediction
from stream.report import Report
from stream.sampler import Sampler, interval_from
from stream.sinks import Sink
from stream.sinks.dashboard import DashboardSink
from stream.sinks.overlay import OverlaySink
from stream.sinks.report_sink import ReportSink
from stream.sources import mask_url, open_source


@dataclass
class WatchConfig:
    """The flags of `screentime watch`, validated once at the edge."""

    source: str
    model: Path
    every_s: float = 1.0
    report: Path | None = None
    csv: Path | None = None
    output: Path | None = None
    dashboard: bool = False
    device: str = "auto"
    duration_s: float | None = None
    batch_size: int = 8
    max_reconnects: int | None = None  # None: forever
    rtsp_transport: str = "tcp"
    timeout_s: float = 5.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WatchConfig:
        return cls(
            source=args.source,
            model=args.model,
            every_s=interval_from(args.every, args.fps),
            report=args.report,
            csv=args.csv,
            output=args.output,
            dashboard=not args.no_dashboard and sys.stdout.isatty(),
            device=args.device,
            duration_s=args.duration,
            max_reconnects=0 if args.no_retry else args.max_reconnects,
            rtsp_transport=args.rtsp_transport,
            timeout_s=args.timeout,
        )

    def validate(self) -> None:
        """Every output path is checked before any work starts, so a run is never wasted."""
        if self.duration_s is not None and self.duration_s <= 0:
            raise BadInputError("--duration must be > 0")
        if self.max_reconnects is not None and self.max_reconnects < 0:
            raise BadInputError("--max-reconnects must be >= 0")
        if self.timeout_s <= 0:
            raise BadInputError("--timeout must be > 0")
        if self.output is not None and self.output.suffix.lower() not in (".mp4", ".mov", ".mkv"):
            raise BadInputError(f"{self.output}: the overlay video must be .mp4, .mov or .mkv")
        for path in (self.report, self.csv, self.output):
            if path is None:
                continue
            try:
                check_writable(path)
            except OSError as exc:
                raise BadInputError(f"{path}: cannot write ({exc})") from None


class Watch:
    """One run: iterate for predictions; `report` is set when the iteration ends."""

    def __init__(self, config: WatchConfig, stop: threading.Event | None = None, console: Console | None = None):
        config.validate()
        self.config = config
        self.stop_event = stop or threading.Event()
        self.engine = Engine(config.model, config.device)
        self.source = open_source(config.source, timeout_s=config.timeout_s, rtsp_transport=config.rtsp_transport)
        live = self.source.live
        sinks: list[Sink] = []
        if config.report or config.csv:
            sinks.append(ReportSink(config.report, config.csv))
        if config.output:
            sinks.append(OverlaySink(config.output, live=live))
        self.pipeline = Pipeline(
            self.source,
            self.engine,
            Sampler(config.every_s),
            sinks,
            stop=self.stop_event,
            duration_s=config.duration_s,
            batch_size=config.batch_size,
            decode_all=config.output is not None,
            model_name=str(config.model),
            reconnect=ReconnectPolicy(max_attempts=config.max_reconnects),
        )
        if config.dashboard:
            self.pipeline.sinks.append(DashboardSink(self.pipeline.stats, console=console))
        self.report: Report | None = None

    def __iter__(self) -> Iterator[Prediction]:
        try:
            yield from self.pipeline.run()
        finally:
            self.report = self.pipeline.report

    def run(self) -> Report:
        for _ in self:
            pass
        assert self.report is not None
        return self.report

    def stop(self) -> None:
        """Ask the run to end; the report is still written (thread-safe)."""
        self.stop_event.set()


def watch(
    source: str,
    model: str | Path,
    every_s: float | None = None,
    fps: float | None = None,
    report: str | Path | None = None,
    csv: str | Path | None = None,
    output: str | Path | None = None,
    dashboard: bool = False,
    device: str = "auto",
    duration_s: float | None = None,
    max_reconnects: int | None = None,
    rtsp_transport: str = "tcp",
    timeout_s: float = 5.0,
) -> Watch:
    """Analyse a file, webcam index or stream URL; see the module docstring."""
    config = WatchConfig(
        source=str(source),
        model=Path(model),
        every_s=interval_from(every_s, fps),
        report=Path(report) if report else None,
        csv=Path(csv) if csv else None,
        output=Path(output) if output else None,
        dashboard=dashboard,
        device=device,
        duration_s=duration_s,
        max_reconnects=max_reconnects,
        rtsp_transport=rtsp_transport,
        timeout_s=timeout_s,
    )
    return Watch(config)


def run_cli_watch(config: WatchConfig) -> int:
    """Run with signal handling: first Ctrl-C or SIGTERM stops cleanly, a second Ctrl-C forces."""
    run = Watch(config)
    presses = 0

    def on_signal(signum, _frame) -> None:
        nonlocal presses
        presses += 1
        if presses > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        run.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        report = run.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not config.dashboard:
        from stream.sinks.dashboard import summary

        Console().print(summary(report))
    print(f"{report.samples} samples over {report.duration_s:.1f} s of {mask_url(config.source)} ({report.ended})")
    return 0
