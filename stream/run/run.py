"""One run: it owns its sources (each with its pipeline and thread) and every run-wide output.

Like Frigate's dispatcher, which holds every communicator, and inference's single results
dispatcher: the run opens each output once and hands it the events (`stream.outputs.events`) of every
source, or of the one source it is attached to (an overlay video, a camera's day files). No
output counts its users and no pipeline is changed after it is built: each pipeline's `emit` is
the run's dispatch.

Sources can be added to and removed from a running run (`add_source`, `remove_source`); a
removed source's outputs get its final report, the others go on untouched. That is the seam a
fleet monitor adds and removes cameras through.

Each output gets one event at a time (a lock per output, so outputs need none of their own and
a slow one holds up no other). An output that cannot write (OutputError, OSError) is cut off and
reported at the end (exit 4); any other exception from an output is a bug: logged with its
traceback and raised at the end. `Ended` reaches every output exactly once per source, also for
a source that never started (its report None); a source's own outputs are closed right after.

It runs past 300 lines because a run's life (open, add, remove, iterate, close, raise) is one
object's, with the threads and the queue it owns.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stream.counting.report import Report
from stream.counting.resume import Carried
from stream.counting.stats import RunStats
from stream.errors import BadInputError, OutputError, ScreentimeError, SourceError
from stream.model.engine import Model
from stream.outputs.events import Ended, Event, Guard, Output, SourceTag
from stream.records import Prediction
from stream.run.pipeline import Halt, Pipeline
from stream.settings import SourceSettings

log = logging.getLogger(__name__)

BACKLOG = 256  # predictions waiting for the run's reader before the sources' threads wait
POLL_S = 0.2  # how often a waiting thread looks at the stop events
_DONE = object()


def unique_name(base: str, taken: Sequence[str]) -> str:
    """`base`, or `base-2`, `base-3` ... where it is taken."""
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def default_name(source_name: str, live: bool, taken: Sequence[str]) -> str:
    """The masked URL of a live source, the file name of a file; made unique in the run."""
    return unique_name(source_name if live else Path(source_name).name, taken)


class Runner(Protocol):
    """What the run drives for one source: a local `Pipeline`, or a camera counted on a cluster
    node (`stream.cluster.remote`). `run()` emits the source's events and yields its predictions."""

    report: Report | None
    stats: RunStats

    def run(self) -> Iterator[Prediction]: ...


@dataclass
class _Member:
    """One source of the run and what the run holds of it."""

    tag: SourceTag
    pipeline: Runner
    stop: threading.Event
    outputs: list[Output] = field(default_factory=list)  # its own: they see only its events
    thread: threading.Thread | None = None
    left: bool = False  # the outputs have been told it left
    report: Report | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Run:
    """Sources analysed by one engine, their records dispatched to the run's outputs.

        with Run(engine, [ReportSink(path)]) as run:
            run.add_source(source, Sampler(1.0))
            for tag, prediction in run:
                ...

    Iterating starts the sources' threads and yields each prediction with its source's tag,
    until every source has ended (or, with `keep_open`, until `stop()`). Leaving the loop early
    stops the run. At the end every output is closed, then the run raises what went wrong: a bug
    first, then failed sources (exit 3, naming each), then outputs that could not write (exit 4).
    """

    def __init__(
        self,
        engine: Model | None,
        outputs: Sequence[Output] = (),
        *,
        holds: Sequence[AbstractContextManager] = (),
        stop: threading.Event | None = None,
        keep_open: bool = False,
    ) -> None:
        self.engine = engine
        self.outputs = list(outputs)
        self._holds = list(holds)  # opened before the outputs, closed after them (event senders)
        self.stop_event = stop or threading.Event()
        self.keep_open = keep_open
        self._stack = ExitStack()
        self._lock = threading.RLock()  # the member table and the attached outputs
        self._output_locks: dict[int, threading.Lock] = {}  # one event at a time per output
        self._attached: list[tuple[Output, int | None]] = []  # (output, the source key it sees, or all)
        self._members: dict[int, _Member] = {}
        self._keys = itertools.count()
        self._results: queue.Queue = queue.Queue(maxsize=BACKLOG)
        self._state = "new"  # new -> open -> closed
        self.guard = Guard()  # outputs that failed: cut off, one line each, the first bug kept to raise
        self.failures: dict[str, BaseException] = {}  # source name -> why it failed

    # -- sources ---------------------------------------------------------------------------

    @property
    def tags(self) -> list[SourceTag]:
        """Every source added so far, in order, ended or not."""
        return [m.tag for m in self._members.values()]

    def pipeline(self, tag: SourceTag | int) -> Runner:
        return self._members[_key(tag)].pipeline

    def source_outputs(self, tag: SourceTag | int) -> list[Output]:
        """The outputs a source brought of its own (its overlay video, a camera's day files)."""
        return list(self._members[_key(tag)].outputs)

    def report(self, tag: SourceTag | int) -> Report | None:
        """A source's final report (None until it has ended, or if it never started)."""
        return self._members[_key(tag)].report

    @property
    def reports(self) -> list[Report]:
        """The final reports of the sources that have ended, in the order they were added."""
        return [m.report for m in self._members.values() if m.report is not None]

    def add_source(
        self,
        source,
        settings: SourceSettings,
        *,
        name: str | None = None,
        outputs: Sequence[Output] = (),
        engine: Model | None = None,
        model_name: str = "",
        carried: Carried | None = None,
    ) -> SourceTag:
        """Add a source (before or while the run runs), with its settings.

        `outputs`: its own (an overlay video), opened now or with the run, closed when it ends;
        `engine`: its own model (a fleet's camera may have one), else the run's; `carried`: an
        earlier run's totals it carries on.
        """
        model = engine or self.engine

        def make(emit: Callable[[Event], None], tag: SourceTag, stop: threading.Event) -> Runner:
            if model is None:
                raise BadInputError(f"{tag.name}: no model (the run has none, and none was given for this source)")
            return Pipeline(source, model, settings, emit, tag=tag, stop=stop, model_name=model_name, carried=carried)

        return self.add_runner(make, name, source.name, source.live, outputs=outputs)

    def add_runner(
        self,
        make: Callable[[Callable[[Event], None], SourceTag, threading.Event], Runner],
        name: str | None,
        source_name: str,
        live: bool,
        *,
        outputs: Sequence[Output] = (),
    ) -> SourceTag:
        """Add a source whose runner `make(emit, tag, stop)` builds (a camera on a cluster node)."""
        if self._state == "closed":
            raise BadInputError("the run has ended: no source can be added")
        taken = [m.tag.name for m in self._members.values() if not m.left]  # a name that left may come back
        if name is not None and name in taken:
            raise BadInputError(f"a source named {name!r} is already in the run")
        name = name or default_name(source_name, live, taken)
        tag = SourceTag(next(self._keys), name, source_name, live)
        stop = Halt(self.stop_event)  # this source's own stop, also set by the run's
        member = _Member(tag, make(self.dispatch, tag, stop), stop, list(outputs))
        with self._lock:
            self._members[tag.key] = member
        if self._state == "open":
            self._start(member)
        return tag

    def remove_source(self, tag: SourceTag | int, timeout_s: float | None = None) -> Report | None:
        """Stop one source and wait for its end; its outputs have its final report (returned)."""
        member = self._members[_key(tag)]
        member.stop.set()
        if member.thread is not None:
            member.done.wait(timeout_s)
        return member.report

    def stop(self) -> None:
        """Ask every source to end; reports are still written (thread-safe)."""
        self.stop_event.set()

    # -- the run's life ----------------------------------------------------------------------

    def __enter__(self) -> Run:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Open every output once and start the sources added so far."""
        if self._state != "new":
            return
        try:
            for held in self._holds:
                self._stack.enter_context(held)
            for output in self.outputs:
                self._attach(output, None)
                self._stack.push(self._closer(output))
        except BaseException:
            self._stack.close()
            raise
        self._state = "open"
        for member in list(self._members.values()):
            self._start(member)

    def close(self) -> None:
        """Stop every source, wait for each, close every output (idempotent)."""
        if self._state == "closed":
            return
        if any(m.thread is not None and m.thread.is_alive() for m in self._members.values()):
            self.stop_event.set()  # only then: a stop event the caller shares is not set by a run that ended
        for member in list(self._members.values()):
            if member.thread is not None:
                while member.thread.is_alive():
                    self._drain()
                    member.thread.join(POLL_S)
        self._state = "closed"
        self._stack.close()

    def __iter__(self) -> Iterator[tuple[SourceTag, Prediction]]:
        self.open()
        try:
            while not (self.stop_event.is_set() and self.keep_open):
                if not self.keep_open and all(m.done.is_set() for m in self._members.values()):
                    with contextlib.suppress(queue.Empty):  # predictions put before the last End
                        while True:
                            item = self._results.get_nowait()
                            if item is not _DONE:
                                yield item
                    break
                try:
                    item = self._results.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if item is not _DONE:
                    yield item
        finally:
            self.close()
        self.raise_failures()

    def raise_failures(self) -> None:
        """What went wrong, as one error: a bug outranks a source's failure, which outranks an output's."""
        if self.guard.bug is not None:
            raise self.guard.bug
        if self.failures:
            for line in self.guard.failed:
                log.error("%s", line)
            raise_failures(self.failures, len(self._members))
        if self.guard.failed:
            raise OutputError("; ".join(self.guard.failed))

    # -- inside ------------------------------------------------------------------------------

    def _start(self, member: _Member) -> None:
        for output in member.outputs:
            self._attach(output, member.tag.key)
        member.thread = threading.Thread(
            target=self._consume, args=(member,), name=f"pipeline:{member.tag.name}", daemon=True
        )
        member.thread.start()

    def _consume(self, member: _Member) -> None:
        try:
            for prediction in member.pipeline.run():
                self._put((member.tag, prediction), member.stop)
        except Exception as exc:  # this source (or its own sinks) failed; the others go on
            member.error = exc
            self.failures[member.tag.source] = exc
            if len(self._members) > 1 and isinstance(exc, ScreentimeError):  # alone, it is the run's error
                log.error("%s", exc)
        finally:
            self._leave(member.tag.key, member.pipeline.report)  # also for a source that never started
            member.done.set()
            self._put(_DONE, None)

    def _put(self, item: object, stop: threading.Event | None) -> None:
        """Never block on a reader that has gone: give up once this source or the run is stopped."""
        while True:
            try:
                self._results.put(item, timeout=POLL_S)
                return
            except queue.Full:
                if (stop is not None and stop.is_set()) or (stop is None and self.stop_event.is_set()):
                    return

    def _drain(self) -> None:
        """Free the backlog while closing, so no source waits to hand over a prediction."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._results.get_nowait()

    def _leave(self, key: int, report: Report | None) -> None:
        """A source's end: `Ended` to the outputs if its pipeline did not get as far."""
        if not self._members[key].left:
            member = self._members[key]
            self.dispatch(Ended(member.tag, report, member.pipeline.stats))

    def dispatch(self, event: Event) -> None:
        """Hand one event to every output that sees its source (thread-safe; any source's thread)."""
        key = event.tag.key
        with self._lock:
            targets = [(o, self._output_locks[id(o)]) for o, only in self._attached if only is None or only == key]
            member = self._members.get(key)
            if isinstance(event, Ended) and member is not None:
                if member.left:
                    return  # exactly once
                member.left, member.report = True, event.report
        for output, lock in targets:
            with lock:
                self.guard.deliver(output, event)
        if isinstance(event, Ended) and member is not None:
            for output in member.outputs:  # a source's own outputs end with it
                self._detach(output)

    def _attach(self, output: Output, key: int | None) -> None:
        self._output_locks[id(output)] = threading.Lock()
        self.guard.enter(output)
        with self._lock:
            self._attached.append((output, key))

    def _detach(self, output: Output) -> None:
        with self._lock:
            self._attached = [(o, k) for o, k in self._attached if o is not output]
            lock = self._output_locks.pop(id(output))  # a fleet's cameras come and go: none left behind
        with lock:
            self.guard.exit(output)

    def _closer(self, output: Output):
        def close(*exc) -> bool:
            self._detach(output)
            return False

        return close


def _key(tag: SourceTag | int) -> int:
    return tag.key if isinstance(tag, SourceTag) else tag


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
