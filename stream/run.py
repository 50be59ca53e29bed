"""One run: it owns its sources (each with its pipeline and thread) and every run-wide output.

Like Frigate's dispatcher, which holds every communicator, and inference's single results
dispatcher: the run opens each output once (an `ExitStack`), tells it when a source joins and
leaves, and hands it every record tagged with the source it belongs to. No output counts its
users and no pipeline is changed after it is built: a source's pipeline gets, beside its own
sinks (an overlay video), one `_Door` through which its records reach the run's outputs.

Sources can be added to and removed from a running run (`add_source`, `remove_source`); a
removed source's outputs get its final report, the others go on untouched. That is the seam a
fleet monitor adds and removes cameras through.

Output calls are serialised by one lock, so outputs need none of their own. An output that
cannot write (OutputError, OSError) is cut off and reported at the end (exit 4); any other
exception from an output is a bug: logged with its traceback and raised at the end.

It runs past 300 lines because a run's life (open, add, remove, iterate, close, raise) is one
object's, with the threads and the queue it owns.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from stream.engine import Engine
from stream.errors import BadInputError, OutputError, ScreentimeError, SourceError
from stream.pipeline import Halt, Pipeline
from stream.records import Prediction
from stream.report import Report
from stream.sampler import Sampler
from stream.sinks import BaseSink, Guard, Output, Sink, SourceTag

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


@dataclass
class _Member:
    """One source of the run and what the run holds of it."""

    tag: SourceTag
    pipeline: Pipeline
    stop: threading.Event
    thread: threading.Thread | None = None
    left: bool = False  # the outputs have been told it left
    report: Report | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class _Door(BaseSink):
    """A source's way to the run's outputs: its pipeline calls it like any sink."""

    def __init__(self, run: Run, tag: SourceTag) -> None:
        self._run, self._tag = run, tag

    def update(self, prediction, frame, stats) -> None:
        self._run._send("update", self._tag, prediction, frame, stats)

    def frame(self, frame, prediction) -> None:
        self._run._send("frame", self._tag, frame, prediction)

    def control(self, item) -> None:
        self._run._send("control", self._tag, item)

    def checkpoint(self, report) -> None:
        self._run._send("checkpoint", self._tag, report)

    def tick(self, stats) -> None:
        self._run._send("tick", self._tag, stats)

    def close(self, report) -> None:
        self._run._leave(self._tag.key, report)


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
        engine: Engine,
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
        self._send_lock = threading.RLock()  # one output call at a time
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

    def pipeline(self, tag: SourceTag | int) -> Pipeline:
        return self._members[_key(tag)].pipeline

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
        sampler: Sampler,
        *,
        name: str | None = None,
        sinks: Sequence[Sink] = (),
        engine: Engine | None = None,
        **options,
    ):
        """Add a source (before or while the run runs); `options` are the Pipeline's keywords.

        Its pipeline is built here, complete: its own `sinks` and its door to the run's outputs;
        `engine`: its own model (a fleet's camera may have one), else the run's.
        """
        if self._state == "closed":
            raise BadInputError("the run has ended: no source can be added")
        taken = [m.tag.name for m in self._members.values() if not m.left]  # a name that left may come back
        if name is not None and name in taken:
            raise BadInputError(f"a source named {name!r} is already in the run")
        name = name or default_name(source.name, source.live, taken)
        tag = SourceTag(next(self._keys), name, source.name, source.live)
        stop = Halt(self.stop_event)  # this source's own stop, also set by the run's
        pipeline = Pipeline(source, engine or self.engine, sampler, [*sinks, _Door(self, tag)], stop=stop, **options)
        member = _Member(tag, pipeline, stop)
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
                self._call(output, "__enter__")
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
        with self._send_lock:
            for output in self.outputs:
                self._call(output, "added", member.tag, lambda pipeline=member.pipeline: pipeline.stats)
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
        member = self._members[key]
        with self._send_lock:
            if member.left:
                return
            member.left = True
            member.report = report
            for output in self.outputs:
                self._call(output, "removed", member.tag, report)

    def _send(self, method: str, tag: SourceTag, *args) -> None:
        with self._send_lock:
            for output in self.outputs:
                self._call(output, method, tag, *args)

    def _closer(self, output: Output):
        def close(*exc) -> bool:
            self._call(output, "__exit__", None, None, None)
            return False

        return close

    def _call(self, output: Output, method: str, *args) -> None:
        self.guard.call(output, method, *args)


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
