"""The Python API behind `screentime watch`, with the same names, for notebooks and services.

    run = watch("episode.mp4", "model.onnx", every_s=1.0)
    for prediction in run:          # per-sample results as they are counted
        ...
    run.report.screen_time_s        # the report, complete once the loop ends

or simply `report = watch(...).run()`.
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from stream.atomic import check_writable
from stream.crop import parse_crop
from stream.defaults import (
    BATCH_SIZE,
    CHECKPOINT_S,
    CROP,
    EVERY_S,
    METRICS_HOST,
    MQTT_UPDATE_S,
    OPEN_TIMEOUT_S,
    RTSP_BACKEND,
    RTSP_TRANSPORT,
    SEGMENT_MINUTES,
    TIMEOUT_S,
    VIEW_FPS,
    VIEW_HOST,
)
from stream.engine import Engine, choose_model
from stream.errors import BadInputError, OutputError, ScreentimeError, SourceError
from stream.monitoring import MonitorConfig, attach, split_names
from stream.pipeline import Pipeline
from stream.preprocess import SKIP_SIMILAR_DEFAULT
from stream.reconnect import ReconnectPolicy
from stream.records import Prediction
from stream.report import Report
from stream.resume import load_previous, resumed_accountant
from stream.sampler import Sampler, interval_from
from stream.sinks import Sink
from stream.sinks.dashboard import DashboardSink
from stream.sinks.overlay import OverlaySink
from stream.sinks.report_sink import ReportSink, TimelineSink
from stream.sources import open_source

if TYPE_CHECKING:  # imported only when a live view is asked for
    from stream.sinks.liveview import LiveView

log = logging.getLogger(__name__)


@dataclass
class WatchConfig:
    """The flags of `screentime watch`, validated once at the edge."""

    sources: list[str]
    model: Path
    every_s: float = EVERY_S
    report: Path | None = None
    csv: Path | None = None
    output: Path | None = None
    dashboard: bool = False
    device: str = "auto"
    duration_s: float | None = None
    batch_size: int = BATCH_SIZE
    max_reconnects: int | None = None  # None: forever
    rtsp_transport: str = RTSP_TRANSPORT
    rtsp_backend: str = RTSP_BACKEND  # pyav: decode only what sampling needs; opencv: every frame
    timeout_s: float = TIMEOUT_S
    open_timeout_s: float = OPEN_TIMEOUT_S
    checkpoint_s: float = CHECKPOINT_S
    resume: bool = False  # carry on the totals of the report already at `report`
    segment_minutes: float = SEGMENT_MINUTES  # live overlay: a new OUT-0001.mp4 ... every N minutes (0: one file)
    smoothing: int | None = None  # samples averaged per verdict; None: the model's default
    skip_similar: float = SKIP_SIMILAR_DEFAULT  # reuse the last result when a frame differs by less (mean grey levels)
    precision: str = "auto"  # auto: the INT8 twin on CPU when there is one; fp32; int8
    view_port: int | None = None  # live view in a browser (MJPEG over HTTP) on this port; 0: any free port
    view_host: str = VIEW_HOST
    view_fps: float = VIEW_FPS
    crop: object = CROP  # "auto", "none" or a stream.crop.Crop: black bars cut before the model sees a frame
    monitor: MonitorConfig = field(default_factory=MonitorConfig)  # --name, --metrics-port, --mqtt ...

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
            rtsp_backend=args.rtsp_backend,
            timeout_s=args.timeout,
            open_timeout_s=args.open_timeout,
            checkpoint_s=args.checkpoint,
            resume=args.resume,
            segment_minutes=args.segment_minutes,
            smoothing=args.smooth,
            skip_similar=args.skip_similar,
            precision=args.precision,
            view_port=args.view_port,
            view_host=args.view_host,
            view_fps=args.view_fps,
            monitor=MonitorConfig.from_args(args),
            crop=getattr(args, "crop", CROP),
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
        if self.open_timeout_s <= 0:
            raise BadInputError("--open-timeout must be > 0")
        if self.segment_minutes < 0:
            raise BadInputError("--segment-minutes must be >= 0")
        if self.checkpoint_s <= 0:
            raise BadInputError("--checkpoint must be > 0")
        if self.resume and self.report is None:
            raise BadInputError("--resume needs --report (the report whose totals to carry on)")
        if self.smoothing is not None and self.smoothing < 0:
            raise BadInputError("--smooth must be >= 0")
        if self.view_port is not None and not 0 <= self.view_port <= 65535:
            raise BadInputError("--view-port must be 0-65535")
        if self.view_fps <= 0:
            raise BadInputError("--view-fps must be > 0")
        if self.output is not None and self.output.suffix.lower() not in (".mp4", ".mov", ".mkv"):
            raise BadInputError(f"{self.output}: the overlay video must be .mp4, .mov or .mkv")
        self.monitor.validate(len(self.sources))
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
    one dashboard, one report file and one timeline (a section per source when there are
    several). One source's permanent failure does not stop the others: the run goes on and
    raises at the end, naming every source that failed.
    """

    def __init__(self, config: WatchConfig, stop: threading.Event | None = None, console: Console | None = None):
        config.validate()
        self.config = config
        self.stop_event = stop or threading.Event()
        self.engine = Engine(choose_model(config.model, config.device, config.precision), config.device)
        policy = ReconnectPolicy(max_attempts=config.max_reconnects)
        sections = len(config.sources)
        previous = load_previous(config.report, config.resume, sections)
        shared: list[Sink] = []
        if config.report:
            shared.append(ReportSink(config.report, sections))
        if config.csv:
            shared.append(TimelineSink(config.csv, sections, append=config.resume))
        self.pipelines: list[Pipeline] = []
        for index, (spec, output) in enumerate(zip(config.sources, config.output_paths(), strict=True)):
            # A file or camera sampled at an interval decodes only what it samples; the overlay needs every frame.
            sparse = config.every_s if output is None and config.every_s > 0 else None
            source = open_source(
                spec,
                timeout_s=config.timeout_s,
                rtsp_transport=config.rtsp_transport,
                open_timeout_s=config.open_timeout_s,
                sparse_every_s=sparse,
                rtsp_backend=config.rtsp_backend,
            )
            sinks: list[Sink] = [sink.section(index) if sections > 1 else sink for sink in shared]
            if output is not None:
                sinks.append(OverlaySink(output, live=source.live, segment_minutes=config.segment_minutes))
            carried = resumed_accountant(previous[index], self.engine.card.classes) if previous else None
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
                    checkpoint_s=config.checkpoint_s,
                    accountant=carried.accountant if carried else None,
                    time_offset_s=carried.offset_s if carried else 0.0,
                    tap_every_s=1 / config.view_fps if config.view_port is not None else None,
                    crop=config.crop,
                )
            )
            if carried:
                self.pipelines[-1].resumed = carried.runs
        if config.dashboard:
            dashboard = DashboardSink([p.stats for p in self.pipelines], console=console)
            for pipeline in self.pipelines:
                pipeline.sinks.append(dashboard)
        self.view: LiveView | None = None  # the live view's server, closed when the run ends (see __iter__)
        if config.view_port is not None:
            from stream.sinks.liveview import LiveView

            names = [p.source.name for p in self.pipelines]
            self.view = LiveView(names, config.view_port, config.view_host, config.view_fps)
            for index, pipeline in enumerate(self.pipelines):
                pipeline.sinks.append(self.view.sink(index))
        self.monitoring = attach(config.monitor, self.pipelines, config.every_s)  # metrics, MQTT, webhook
        self.reports: list[Report] = []
        self.failures: dict[str, BaseException] = {}  # source name -> why it failed (or its outputs did)

    @property
    def report(self) -> Report | None:
        """The report of the first (or only) source."""
        return self.reports[0] if self.reports else None

    def __iter__(self) -> Iterator[Prediction]:
        try:
            yield from self._iterate()
        finally:
            if self.view is not None:  # also when a source failed before its pipeline started its sinks
                self.view.close()

    def _iterate(self) -> Iterator[Prediction]:
        if len(self.pipelines) == 1:
            pipeline = self.pipelines[0]
            try:
                yield from pipeline.run()
            finally:
                self.reports = [r for r in [pipeline.report] if r is not None]
            return
        yield from self._run_parallel()

    def _run_parallel(self) -> Iterator[Prediction]:
        """Fan-in of every source's predictions. Producers never block on a consumer that has
        gone: puts time out and watch the stop event, so stopping early cannot deadlock."""
        results: queue.Queue = queue.Queue(maxsize=256)
        done = object()

        def put(item: object) -> None:
            while True:
                try:
                    results.put(item, timeout=0.2)
                    return
                except queue.Full:
                    if self.stop_event.is_set():
                        return

        def consume(pipeline: Pipeline) -> None:
            try:
                for prediction in pipeline.run():
                    put(prediction)
            except Exception as exc:  # this source (or its outputs) failed; the others go on
                self.failures[pipeline.source.name] = exc
                log.error("%s", exc)
            finally:
                put(done)

        threads = [
            threading.Thread(target=consume, args=(p,), name=f"pipeline:{p.source.name}", daemon=True)
            for p in self.pipelines
        ]
        for thread in threads:
            thread.start()
        finished = 0
        try:
            while finished < len(threads):
                try:
                    item = results.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is done:
                    finished += 1
                else:
                    yield item
        finally:
            if finished < len(threads):  # the caller stopped iterating early
                self.stop_event.set()
            for thread in threads:
                thread.join()
            self.reports = [p.report for p in self.pipelines if p.report is not None]
        raise_failures(self.failures, len(self.pipelines))

    def run(self) -> Report:
        """Run to the end; the report of the first source (all of them are in `reports`)."""
        for _ in self:
            pass
        assert self.report is not None
        return self.report

    def stop(self) -> None:
        """Ask the run to end; the reports are still written (thread-safe)."""
        self.stop_event.set()


def raise_failures(failures: dict[str, BaseException], sources: int) -> None:
    """One error naming every failed source: a source failure (exit 3) outranks an output one (4)."""
    if not failures:
        return
    errors = list(failures.values())
    if len(errors) == 1 and sources == 1:
        raise errors[0]
    for error in errors:
        if not isinstance(error, ScreentimeError):  # a bug, not a user's problem: keep its traceback
            raise error
    if any(isinstance(e, SourceError) for e in errors):
        kind: type[ScreentimeError] = SourceError
    elif all(isinstance(e, OutputError) for e in errors):
        kind = OutputError
    elif any(isinstance(e, BadInputError) for e in errors):
        kind = BadInputError
    else:
        kind = ScreentimeError
    detail = "; ".join(str(e) for e in errors)
    raise kind(f"{len(errors)} of {sources} sources failed: {detail}")


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
    rtsp_transport: str = RTSP_TRANSPORT,
    timeout_s: float = TIMEOUT_S,
    open_timeout_s: float = OPEN_TIMEOUT_S,
    checkpoint_s: float = CHECKPOINT_S,
    resume: bool = False,
    smoothing: int | None = None,
    skip_similar: float = SKIP_SIMILAR_DEFAULT,
    precision: str = "auto",
    view_port: int | None = None,
    view_host: str = VIEW_HOST,
    view_fps: float = VIEW_FPS,
    name: str | Sequence[str] | None = None,
    metrics_port: int | None = None,
    metrics_host: str = METRICS_HOST,
    mqtt: str | None = None,
    mqtt_update_s: float = MQTT_UPDATE_S,
    min_segment_s: float | None = None,
    webhook: str | None = None,
    rtsp_backend: str = RTSP_BACKEND,
    crop: str = CROP,
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
        open_timeout_s=open_timeout_s,
        checkpoint_s=checkpoint_s,
        resume=resume,
        smoothing=smoothing,
        skip_similar=skip_similar,
        precision=precision,
        view_port=view_port,
        view_host=view_host,
        view_fps=view_fps,
        monitor=MonitorConfig(
            names=split_names(name),
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            mqtt=mqtt,
            mqtt_update_s=mqtt_update_s,
            min_segment_s=min_segment_s,
            webhook=webhook,
        ),
        rtsp_backend=rtsp_backend,
        crop=parse_crop(crop) if isinstance(crop, str) else crop,
    )
    return Watch(config)


def run_cli_watch(config: WatchConfig) -> int:
    """Run with signal handling: first Ctrl-C or SIGTERM stops cleanly, a second Ctrl-C forces.

    The exit status is 0 only when every source ran and every output asked for was written.
    """
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
        summarise(run, config.dashboard)
    return 0


def summarise(run: Watch, dashboard: bool) -> None:
    for report in run.reports:
        if not dashboard:
            from stream.sinks.dashboard import summary

            Console().print(summary(report))
        print(f"{report.samples} samples over {report.duration_s:.1f} s of {report.source} ({report.ended})")
