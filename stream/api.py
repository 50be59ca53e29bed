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
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from stream.atomic import check_writable
from stream.defaults import (
    BATCH_SIZE,
    CHECKPOINT_S,
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
from stream.errors import BadInputError
from stream.monitoring import MonitorConfig, build, split_names
from stream.pipeline import Pipeline
from stream.preprocess import SKIP_SIMILAR_DEFAULT
from stream.reconnect import ReconnectPolicy
from stream.records import Prediction
from stream.report import Report
from stream.resume import load_previous, resumed_accountant
from stream.run import Run
from stream.sampler import Sampler, interval_from
from stream.sinks import Output, Sink
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

    A `stream.run.Run` owns it all: one engine, one stop event, the run-wide outputs (dashboard,
    report file, timeline, live view, metrics, events: a section per source when there are
    several) and a pipeline (and reader thread) per source. One source's permanent failure does
    not stop the others: the run goes on and raises at the end, naming every source that failed.
    Sources can be added (`add_source`) and removed (`remove_source`) while it runs.
    """

    def __init__(self, config: WatchConfig, stop: threading.Event | None = None, console: Console | None = None):
        config.validate()
        self.config = config
        self.engine = Engine(choose_model(config.model, config.device, config.precision), config.device)
        self.policy = ReconnectPolicy(max_attempts=config.max_reconnects)
        several = len(config.sources) > 1
        self.previous = load_previous(config.report, config.resume, len(config.sources))
        outputs: list[Output] = []
        if config.report:
            outputs.append(ReportSink(config.report, several))
        if config.csv:
            outputs.append(TimelineSink(config.csv, several, append=config.resume))
        if config.dashboard:
            outputs.append(DashboardSink(console=console))
        self.view: LiveView | None = None
        if config.view_port is not None:
            from stream.sinks.liveview import LiveView

            self.view = LiveView(config.view_port, config.view_host, config.view_fps)
            outputs.append(self.view)
        self.monitoring = build(config.monitor, self.engine, config.every_s)  # metrics, MQTT, webhook
        self.runner = Run(self.engine, outputs + self.monitoring.outputs, holds=self.monitoring.senders, stop=stop)
        names = config.monitor.names or [None] * len(config.sources)
        for index, (spec, output, name) in enumerate(zip(config.sources, config.output_paths(), names, strict=True)):
            self.add_source(spec, name=name, output=output, index=index)

    def add_source(self, spec: str, name: str | None = None, output: Path | None = None, index: int | None = None):
        """Add a source to the run (also while it runs), with the run's options; its tag.

        `output`: its own overlay video; `index`: its place in a resumed report (`--resume`)."""
        config = self.config
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
        sinks: list[Sink] = []
        if output is not None:
            sinks.append(OverlaySink(output, live=source.live, segment_minutes=config.segment_minutes))
        carried = None
        if self.previous and index is not None:
            carried = resumed_accountant(self.previous[index], self.engine.card.classes)
        tag = self.runner.add_source(
            source,
            Sampler(config.every_s),
            name=name,
            sinks=sinks,
            duration_s=config.duration_s,
            batch_size=config.batch_size,
            decode_all=output is not None,
            model_name=str(config.model),
            reconnect=self.policy,
            smoothing=config.smoothing,
            skip_similar=config.skip_similar,
            checkpoint_s=config.checkpoint_s,
            accountant=carried.accountant if carried else None,
            time_offset_s=carried.offset_s if carried else 0.0,
            resumed=carried.runs if carried else 0,
            tap_every_s=1 / config.view_fps if config.view_port is not None else None,
        )
        return tag

    def remove_source(self, tag, timeout_s: float | None = None) -> Report | None:
        """Stop one source (a tag, or its name); its outputs get its final report, returned."""
        if isinstance(tag, str):
            tag = next(t for t in self.runner.tags if t.name == tag)
        return self.runner.remove_source(tag, timeout_s)

    @property
    def pipelines(self) -> list[Pipeline]:
        return [self.runner.pipeline(tag) for tag in self.runner.tags]

    @property
    def names(self) -> list[str]:
        """Every source's name for the outputs (`--name`, else the masked URL or file name)."""
        return [tag.name for tag in self.runner.tags]

    @property
    def stop_event(self) -> threading.Event:
        return self.runner.stop_event

    @property
    def reports(self) -> list[Report]:
        """The final report of every source that has ended, in the order the sources were added."""
        return self.runner.reports

    @property
    def failures(self) -> dict[str, BaseException]:
        return self.runner.failures

    @property
    def report(self) -> Report | None:
        """The report of the first (or only) source."""
        return self.reports[0] if self.reports else None

    def __iter__(self) -> Iterator[Prediction]:
        for _tag, prediction in self.runner:
            yield prediction

    def run(self) -> Report:
        """Run to the end; the report of the first source (all of them are in `reports`)."""
        for _ in self:
            pass
        assert self.report is not None
        return self.report

    def stop(self) -> None:
        """Ask the run to end; the reports are still written (thread-safe)."""
        self.runner.stop()


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
