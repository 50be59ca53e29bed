"""The Python API behind `screentime watch`, with the same names, for notebooks and services.

    run = watch("episode.mp4", "model.onnx", every_s=1.0)
    for prediction in run:          # per-sample results as they are counted
        ...
    run.report.screen_time_s        # the report, complete once the loop ends

or simply `report = watch(...).run()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from stream.counting.report import Report
from stream.counting.resume import load_previous, resumed_accountant
from stream.counting.stats import RunStats
from stream.errors import BadInputError
from stream.model.engine import Engine, choose_model
from stream.options import WatchConfig, watch_config
from stream.outputs.dashboard import DashboardSink
from stream.outputs.events import Output
from stream.outputs.monitoring import build
from stream.outputs.overlay import OverlaySink
from stream.outputs.report_sink import ReportSink, TimelineSink
from stream.records import Prediction
from stream.run.run import Run
from stream.sources.open import open_source

if TYPE_CHECKING:  # imported only when a live view is asked for
    from stream.outputs.liveview import LiveView

log = logging.getLogger(__name__)


class Watch:
    """One run over one or more sources: iterate for predictions; `reports` is set at the end.

    A `stream.run.run.Run` owns it all: one engine, one stop event, the run-wide outputs (dashboard,
    report file, timeline, live view, metrics, events: a section per source when there are
    several) and a pipeline (and reader thread) per source. One source's permanent failure does
    not stop the others: the run goes on and raises at the end, naming every source that failed.
    Sources can be added (`add_source`) and removed (`remove_source`) while it runs.
    """

    def __init__(self, config: WatchConfig, stop: threading.Event | None = None, console: Console | None = None):
        config.validate()
        self.config = config
        self.engine = Engine(choose_model(config.model, config.device, config.precision), config.device)
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
            from stream.outputs.liveview import LiveView

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
        if config.csv and len(config.sources) == 1 and self.runner.tags:
            raise BadInputError(
                f"--csv {config.csv}: a run begun with one source writes no source column; begin with several"
            )
        settings = config.settings(overlay=output is not None)
        source = open_source(spec, settings)
        outputs: list[Output] = []
        if output is not None:
            outputs.append(OverlaySink(output, live=source.live, segment_minutes=config.segment_minutes))
        carried = None
        if self.previous and index is not None:
            carried = resumed_accountant(self.previous[index], self.engine.card.classes)
        tag = self.runner.add_source(
            source,
            settings,
            name=name,
            outputs=outputs,
            model_name=str(config.model),
            carried=carried,
        )
        return tag

    def remove_source(self, tag, timeout_s: float | None = None) -> Report | None:
        """Stop one source (a tag, or its name); its outputs get its final report, returned."""
        if isinstance(tag, str):
            named = [t for t in self.runner.tags if t.name == tag]
            if not named:
                raise BadInputError(f"no source named {tag!r} in this run (names: {', '.join(self.names)})")
            tag = named[0]
        return self.runner.remove_source(tag, timeout_s)

    @property
    def stats(self) -> list[RunStats]:
        """Every source's latest numbers, a frozen snapshot each, in the order the sources were added
        (thread-safe: each pipeline replaces its snapshot whole)."""
        return [self.runner.pipeline(tag).stats for tag in self.runner.tags]

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


def watch(source: str | Path | Sequence[str | Path], model: str | Path, **options: Any) -> Watch:
    """Analyse files, webcam indices or stream URLs (one, or several at once); see the module
    docstring. `options` are `watch`'s, by their keyword names in `stream.options.WATCH_OPTIONS`
    (the CLI's flags, declared once); an unknown name is refused, naming it."""
    sources = [str(source)] if isinstance(source, str | Path) else [str(s) for s in source]
    return Watch(watch_config(sources, model, options))
