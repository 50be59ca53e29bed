"""The Python API behind `screentime watch`, with the same names, for notebooks and services.

    run = watch("episode.mp4", "model.onnx", every_s=1.0)
    for prediction in run:          # per-sample results as they are counted
        ...
    run.report.screen_time_s        # the report, complete once the loop ends

or simply `report = watch(...).run()`.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from stream.atomic import check_writable
from stream.engine import Engine, choose_model
from stream.errors import BadInputError
from stream.pipeline import Pipeline
from stream.preprocess import SKIP_SIMILAR_DEFAULT
from stream.reconnect import ReconnectPolicy
from stream.records import Prediction
from stream.report import Report
from stream.sampler import Sampler, interval_from
from stream.sinks import Sink
from stream.sinks.dashboard import DashboardSink
from stream.sinks.overlay import OverlaySink
from stream.sinks.report_sink import ReportSink
from stream.sources import open_source


@dataclass
class WatchConfig:
    """The flags of `screentime watch`, validated once at the edge."""

    sources: list[str]
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
    smoothing: int | None = None  # samples averaged per verdict; None: the model's default
    skip_similar: float = SKIP_SIMILAR_DEFAULT  # reuse the last result when a frame differs by less (mean grey levels)
    precision: str = "auto"  # auto: the INT8 twin on CPU when there is one; fp32; int8

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WatchConfig:
        return cls(
            sources=list(args.source),
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
            smoothing=args.smooth,
            skip_similar=args.skip_similar,
            precision=args.precision,
        )

    def output_paths(self) -> list[Path | None]:
        """One overlay video per source: OUT.mp4 for one source, OUT-1.mp4, OUT-2.mp4 ... for several."""
        if self.output is None:
            return [None] * len(self.sources)
        if len(self.sources) == 1:
            return [self.output]
        return [
            self.output.with_name(f"{self.output.stem}-{i}{self.output.suffix}")
            for i in range(1, len(self.sources) + 1)
        ]

    def validate(self) -> None:
        """Every output path is checked before any work starts, so a run is never wasted."""
        if not self.sources:
            raise BadInputError("give at least one source")
        if self.duration_s is not None and self.duration_s <= 0:
            raise BadInputError("--duration must be > 0")
        if self.max_reconnects is not None and self.max_reconnects < 0:
            raise BadInputError("--max-reconnects must be >= 0")
        if self.timeout_s <= 0:
            raise BadInputError("--timeout must be > 0")
        if self.smoothing is not None and self.smoothing < 0:
            raise BadInputError("--smooth must be >= 0")
        if self.output is not None and self.output.suffix.lower() not in (".mp4", ".mov", ".mkv"):
            raise BadInputError(f"{self.output}: the overlay video must be .mp4, .mov or .mkv")
        for path in (self.report, self.csv, *self.output_paths()):
            if path is None:
                continue
            try:
                check_writable(path)
            except OSError as exc:
                raise BadInputError(f"{path}: cannot write ({exc})") from None


class Watch:
    """One run over one or more sources: iterate for predictions; `reports` is set at the end.

    Each source has its own pipeline (and reader thread); all share one engine, one stop event,
    one dashboard and one report file (a section per source when there are several).
    """

    def __init__(self, config: WatchConfig, stop: threading.Event | None = None, console: Console | None = None):
        config.validate()
        self.config = config
        self.stop_event = stop or threading.Event()
        self.engine = Engine(choose_model(config.model, config.device, config.precision), config.device)
        policy = ReconnectPolicy(max_attempts=config.max_reconnects)
        report_sink = ReportSink(config.report, config.csv, sections=len(config.sources))
        self.pipelines: list[Pipeline] = []
        for index, (spec, output) in enumerate(zip(config.sources, config.output_paths(), strict=True)):
            # A file sampled at an interval decodes only what it samples; the overlay needs every frame.
            sparse = config.every_s if output is None and config.every_s > 0 else None
            source = open_source(
                spec, timeout_s=config.timeout_s, rtsp_transport=config.rtsp_transport, sparse_every_s=sparse
            )
            sinks: list[Sink] = []
            if config.report or config.csv:
                sinks.append(report_sink.section(index))
            if output is not None:
                sinks.append(OverlaySink(output, live=source.live))
            self.pipelines.append(
                Pipeline(
                    source,
                    self.engine,
                    Sampler(config.every_s),
                    sinks,
                    stop=self.stop_event,
                    duration_s=config.duration_s,
                    batch_size=config.batch_size,
                    decode_all=output is not None,
                    model_name=str(config.model),
                    reconnect=policy,
                    smoothing=config.smoothing,
                    skip_similar=config.skip_similar,
                )
            )
        if config.dashboard:
            dashboard = DashboardSink([p.stats for p in self.pipelines], console=console)
            for pipeline in self.pipelines:
                pipeline.sinks.append(dashboard)
        self.reports: list[Report] = []

    @property
    def report(self) -> Report | None:
        """The report of the first (or only) source."""
        return self.reports[0] if self.reports else None

    def __iter__(self) -> Iterator[Prediction]:
        if len(self.pipelines) == 1:
            try:
                yield from self.pipelines[0].run()
            finally:
                self.reports = [r for r in [self.pipelines[0].report] if r is not None]
            return
        yield from self._run_parallel()

    def _run_parallel(self) -> Iterator[Prediction]:
        results: queue.Queue = queue.Queue(maxsize=256)
        errors: list[BaseException] = []
        done = object()

        def consume(pipeline: Pipeline) -> None:
            try:
                for prediction in pipeline.run():
                    results.put(prediction)
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)
            finally:
                results.put(done)

        threads = [
            threading.Thread(target=consume, args=(p,), name=f"pipeline:{p.source.name}") for p in self.pipelines
        ]
        for thread in threads:
            thread.start()
        try:
            finished = 0
            while finished < len(threads):
                item = results.get()
                if item is done:
                    finished += 1
                else:
                    yield item
        finally:
            if errors or finished < len(threads):  # the caller stopped iterating early
                self.stop_event.set()
            for thread in threads:
                thread.join()
            self.reports = [p.report for p in self.pipelines if p.report is not None]
        if errors:
            raise errors[0]

    def run(self) -> Report:
        """Run to the end; the report of the first source (all of them are in `reports`)."""
        for _ in self:
            pass
        assert self.report is not None
        return self.report

    def stop(self) -> None:
        """Ask the run to end; the reports are still written (thread-safe)."""
        self.stop_event.set()


def watch(
    source: str | Sequence[str],
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
    smoothing: int | None = None,
    skip_similar: float = SKIP_SIMILAR_DEFAULT,
    precision: str = "auto",
) -> Watch:
    """Analyse files, webcam indices or stream URLs (one, or several at once); see the module docstring."""
    config = WatchConfig(
        sources=[str(source)] if isinstance(source, str | Path) else [str(s) for s in source],
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
        smoothing=smoothing,
        skip_similar=skip_similar,
        precision=precision,
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
        run.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for report in run.reports:
        if not config.dashboard:
            from stream.sinks.dashboard import summary

            Console().print(summary(report))
        print(f"{report.samples} samples over {report.duration_s:.1f} s of {report.source} ({report.ended})")
    return 0
