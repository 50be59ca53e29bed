"""Where results go. Every sink has the same small interface and is a context manager.

`start(info, card)` once, `update(prediction, frame, stats)` per analysed frame, `frame(frame,
prediction)` for every frame in order when an overlay video is written (a live source with
a live view also gets a few frames a second between samples), `control(item)` when a live
stream is lost (`Lost`) or back (`Gap`), in order with the samples and on their clock,
`checkpoint(report)` every few seconds of a run (the report so far, `ended == "running"`),
`tick(stats)` about once a second whether or not samples come (a camera that is down),
`close(report)` once.
A sink that cannot write raises (OutputError); the pipeline cuts it off and the others go on.

Sinks belong to one source's pipeline (the overlay video). Outputs that a whole run shares
(report, timeline, dashboard, metrics, live view, events) are `Output`s: the run (`stream.run`)
opens each once and closes it once (they are context managers), tells it when a source joins
(`added`) and leaves (`removed`, with the source's final report), and hands it every record
tagged with its source. An output never counts who uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from stream.errors import OutputError
from stream.modelcard import ModelCard
from stream.records import Frame, Gap, Lost, Prediction, VideoInfo
from stream.report import Report

if TYPE_CHECKING:
    from stream.stats import RunStats

log = logging.getLogger(__name__)


class Sink(Protocol):
    def start(self, info: VideoInfo, card: ModelCard) -> None: ...

    def update(self, prediction: Prediction, frame: Frame, stats) -> None: ...

    def frame(self, frame: Frame, prediction: Prediction | None) -> None: ...

    def control(self, item: Lost | Gap) -> None: ...

    def checkpoint(self, report: Report) -> None: ...

    def tick(self, stats) -> None: ...

    def close(self, report: Report | None) -> None: ...


class BaseSink:
    """No-op defaults so each sink implements only what it uses."""

    def start(self, info: VideoInfo, card: ModelCard) -> None:
        pass

    def update(self, prediction: Prediction, frame: Frame, stats) -> None:
        pass

    def frame(self, frame: Frame, prediction: Prediction | None) -> None:
        pass

    def control(self, item: Lost | Gap) -> None:
        pass

    def checkpoint(self, report: Report) -> None:
        pass

    def tick(self, stats) -> None:
        pass

    def close(self, report: Report | None) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close(None)


@dataclass(frozen=True)
class SourceTag:
    """Which source of a run a record belongs to: `key` numbers sources in the order they were
    added (never reused), `name` is its name for outputs (`--name`, else the masked URL or file
    name), `source` the source's own name (masked URL or path as given)."""

    key: int
    name: str
    source: str
    live: bool


class Output:
    """A run-wide output; no-op defaults so each implements only what it uses.

    `__enter__` opens it (a server thread, a live display, a file) and `__exit__` closes it, once
    each, by the run. A call raising OutputError or OSError cuts the output off (exit 4); any
    other exception is a bug, raised at the end of the run.
    """

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def added(self, tag: SourceTag, numbers: Callable[[], RunStats]) -> None:
        """A source joined; `numbers()` is its latest frozen snapshot (read it whenever needed)."""

    def update(self, tag: SourceTag, prediction: Prediction, frame: Frame, stats) -> None:
        pass

    def frame(self, tag: SourceTag, frame: Frame, prediction: Prediction | None) -> None:
        pass

    def control(self, tag: SourceTag, item: Lost | Gap) -> None:
        pass

    def checkpoint(self, tag: SourceTag, report: Report) -> None:
        pass

    def tick(self, tag: SourceTag, stats) -> None:
        pass

    def removed(self, tag: SourceTag, report: Report | None) -> None:
        """The source has left the run; `report` is its final report (None: it never started)."""


class Guard:
    """Calls sinks or outputs and cuts off one that fails, the others going on: the one policy of
    the pipeline (a source's sinks) and the run (its outputs).

    An output that cannot write (OutputError, OSError) is a user's problem: one line in `failed`
    (exit 4). Anything else is a bug in it: logged with its traceback, the first kept in `bug`
    to be raised when the run has finished its other outputs.
    """

    def __init__(self) -> None:
        self._cut: set[int] = set()
        self.failed: list[str] = []
        self.bug: Exception | None = None

    def live(self, targets: list) -> list:
        return [t for t in targets if id(t) not in self._cut]

    def call(self, target: object, method: str, *args) -> None:
        if id(target) in self._cut:
            return
        try:
            getattr(target, method)(*args)
        except (OutputError, OSError) as exc:
            self._cut.add(id(target))
            line = str(exc) if isinstance(exc, OutputError) else f"{type(target).__name__}: {exc}"
            self.failed.append(line)
            log.warning("output failed, the run goes on without it: %s", line)
        except Exception as exc:
            self._cut.add(id(target))
            log.error("bug in output %s.%s; the run goes on without it", type(target).__name__, method, exc_info=True)
            if self.bug is None:
                self.bug = exc
