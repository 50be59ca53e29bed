"""Where results go: one typed event stream, one output interface.

Each source's pipeline emits frozen, source-tagged events through its run: `Started` (the source
is open: its size, the model card, the first numbers), `Sampled` (a counted sample: prediction,
picture, numbers), `Pictured` (a picture between samples, for the overlay video and the live
view), `SourceLost` / `SourceBack` (a live stream down and back, in order with the samples and
on their clock), `ClockJumped` (a timestamp jump left out of the count), `Checkpoint` (the
report so far, every few seconds), `Tick` (numbers about once a second, samples or not) and
`Ended` (the final report; None if the source never started). What an output needs travels in
the event: numbers are frozen `RunStats` snapshots, never a live object of another thread.

Every output, per-source (an overlay video, a camera's day files) or run-wide (report,
dashboard, metrics, live view, events), is one protocol: a context manager with one method,
`handle(event)`, that dispatches with `match` and `assert_never`. The run opens each once,
hands it the events (all of them, or one source's), and closes it once. An output that cannot
write raises OutputError (or OSError) and is cut off, the others going on (exit 4 at the end);
any other exception is a bug, raised at the end of the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from stream.errors import OutputError
from stream.modelcard import ModelCard
from stream.records import Discontinuity, Frame, Gap, Lost, Prediction, VideoInfo
from stream.report import Report

if TYPE_CHECKING:
    from stream.stats import RunStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceTag:
    """Which source of a run a record belongs to: `key` numbers sources in the order they were
    added (never reused), `name` is its name for outputs (`--name`, else the masked URL or file
    name), `source` the source's own name (masked URL or path as given)."""

    key: int
    name: str
    source: str
    live: bool


@dataclass(frozen=True)
class Started:
    tag: SourceTag
    info: VideoInfo  # a live source not yet connected: 0x0, no fps
    card: ModelCard
    stats: RunStats


@dataclass(frozen=True)
class Sampled:
    tag: SourceTag
    prediction: Prediction
    frame: Frame
    stats: RunStats


@dataclass(frozen=True)
class Pictured:
    """A picture that is not a sample: every frame for an overlay video, a few a second of a
    live source for the live view. `prediction`: the latest sample's (None before the first)."""

    tag: SourceTag
    frame: Frame
    prediction: Prediction | None


@dataclass(frozen=True)
class SourceLost:
    tag: SourceTag
    lost: Lost


@dataclass(frozen=True)
class SourceBack:
    tag: SourceTag
    gap: Gap


@dataclass(frozen=True)
class ClockJumped:
    tag: SourceTag
    jump: Discontinuity


@dataclass(frozen=True)
class Checkpoint:
    tag: SourceTag
    report: Report


@dataclass(frozen=True)
class Tick:
    tag: SourceTag
    stats: RunStats


@dataclass(frozen=True)
class Ended:
    tag: SourceTag
    report: Report | None  # None: the source never started
    stats: RunStats  # the final numbers


Event = Started | Sampled | Pictured | SourceLost | SourceBack | ClockJumped | Checkpoint | Tick | Ended


class Output(Protocol):
    """What the run hands events to (see the module)."""

    def __enter__(self) -> object: ...

    def __exit__(self, *exc: object) -> None: ...

    def handle(self, event: Event) -> None: ...


class OutputBase:
    """An output with nothing to open or close: `__enter__`/`__exit__` that do nothing."""

    def __enter__(self) -> OutputBase:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Guard:
    """Hands events to outputs and cuts off one that fails, the others going on: the run's one policy.

    An output that cannot write (OutputError, OSError) is a user's problem: one line in `failed`
    (exit 4). Anything else is a bug in it: logged with its traceback, the first kept in `bug`
    to be raised when the run has finished its other outputs.
    """

    def __init__(self) -> None:
        self._cut: set[int] = set()
        self.failed: list[str] = []
        self.bug: Exception | None = None

    def is_cut(self, output: object) -> bool:
        return id(output) in self._cut

    def deliver(self, output: Output, event: Event) -> None:
        self._guarded(output, type(event).__name__, output.handle, event)

    def enter(self, output: Output) -> None:
        self._guarded(output, "__enter__", output.__enter__)

    def exit(self, output: Output) -> None:
        """Close it, even if it was cut off (its files are closed); a failure is counted once."""
        cut = id(output) in self._cut
        self._cut.discard(id(output))
        if cut:
            try:
                output.__exit__(None, None, None)
            except Exception:
                log.debug("closing %s, already cut off", type(output).__name__, exc_info=True)
            self._cut.add(id(output))
        else:
            self._guarded(output, "__exit__", output.__exit__, None, None, None)

    def _guarded(self, output: object, what: str, call: Callable[..., object], *args: object) -> None:
        if id(output) in self._cut:
            return
        try:
            call(*args)
        except (OutputError, OSError) as exc:
            self._cut.add(id(output))
            line = str(exc) if isinstance(exc, OutputError) else f"{type(output).__name__}: {exc}"
            self.failed.append(line)
            log.warning("output failed, the run goes on without it: %s", line)
        except Exception as exc:
            self._cut.add(id(output))
            log.error("bug in output %s (%s); the run goes on without it", type(output).__name__, what, exc_info=True)
            if self.bug is None:
                self.bug = exc
