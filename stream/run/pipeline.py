"""The pipeline: source -> sampler -> engine -> tally -> events, for one source.

It receives its collaborators rather than building them, so a test can hand it a slow engine or
a recording `emit`. It consumes one ordered stream of records from its reader (frames, `Lost`,
`Gap`, `End`) and never looks inside the reader: the reader publishes frozen snapshots of its
numbers. Whatever ends the run (end of stream, Ctrl-C, SIGTERM, `--duration`, a failed source)
goes through the same `finally`: the accountant is finished and `Ended` emitted with the
report. What it learns leaves as events (`stream.outputs.events`), handed to `emit` (the run's dispatch
to its outputs).

Why it runs past 300 lines: the consuming loop, its batching and inference, the live numbers
and the end are one state machine over one buffer, and splitting them would pass that state
between modules. What is not that state lives elsewhere: the counting (`stream.counting.tally`), the
rules (`stream.model.verdict`, `stream.counting.reuse`), the run-wide outputs (`stream.run.run`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace

import numpy as np

from stream.counting.accounting import Accountant
from stream.counting.report import RUNNING, Report, TimelineEntry
from stream.counting.resume import Carried
from stream.counting.reuse import Reuse
from stream.counting.stats import RunState, RunStats
from stream.counting.tally import Tally, is_new, now_utc
from stream.errors import SourceConnectionError, SourceError
from stream.frames.buffer import BufferPolicy, FrameBuffer
from stream.frames.crop import Cropper
from stream.frames.reader import FrameReader
from stream.frames.sampler import Sampler
from stream.model.engine import Model
from stream.outputs import events as ev
from stream.outputs.events import Event, SourceTag
from stream.records import Discontinuity, End, EndReason, Frame, Gap, Item, Lost, Prediction, VideoInfo
from stream.settings import SourceSettings
from stream.sources.reconnect import ReconnectPolicy

log = logging.getLogger(__name__)

STOP_GRACE_S = 2.0  # beyond the source's own timeouts, how long a stop waits for the reader's End


HALT_POLL_S = 0.2  # how often a wait on a Halt looks at its parent


class Halt(threading.Event):
    """Set when this pipeline ends, or when the run's shared stop event is.

    `wait` polls the parent every HALT_POLL_S, so a long wait on it still ends promptly at a stop.
    """

    def __init__(self, parent: threading.Event) -> None:
        super().__init__()
        self._parent = parent

    def is_set(self) -> bool:
        return super().is_set() or self._parent.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            super().wait(HALT_POLL_S if left is None else min(HALT_POLL_S, left))
        return True


def _discard(event: Event) -> None:
    pass


class Pipeline:
    """One source analysed by one engine, its events handed to `emit`."""

    def __init__(
        self,
        source,
        engine: Model,
        settings: SourceSettings,
        emit: Callable[[Event], None] = _discard,
        *,
        tag: SourceTag | None = None,
        stop: threading.Event | None = None,
        model_name: str = "",
        carried: Carried | None = None,
        reconnect: ReconnectPolicy | None = None,
        clock_from: Callable[[Frame], float] | None = None,
    ) -> None:
        """`settings`: the source's, validated; `carried`: an earlier run's totals to carry on
        (`--resume`, a fleet's day); `reconnect`: a policy other than the settings' (tests);
        `clock_from`: the offset of this source's clock, told by its first counted frame (a
        cluster's camera placed again carries its clock on from where its last sample was)."""
        self.source = source
        self.settings = settings
        self.cropper = Cropper(settings.crop)  # black bars found (auto) or given, cut before the resize
        self.engine = engine
        self.card = engine.card
        self.sampler = Sampler(settings.every_s)
        self.emit = emit
        self.tag = tag or SourceTag(0, source.name, source.name, source.live)
        self.stop = stop or threading.Event()  # may be shared by several pipelines: only read here
        self._halt = Halt(self.stop)  # this pipeline's own end, seen by its reader
        self.duration_s = settings.duration_s
        self.batch_size = settings.batch_size if not source.live else 1
        self.decode_all = settings.every_frame  # the overlay video wants every frame
        self.tap_every_s = settings.view_every_s  # live: also a picture this often (the live view)
        self.model_name = model_name or str(engine.path)
        self.reconnect = reconnect or settings.reconnect
        self.checkpoint_s = settings.checkpoint_s
        self._clock_from = clock_from
        # A resumed run carries an earlier run's accountant on; its times continue after its offset.
        accountant, offset_s = (carried.accountant, carried.offset_s) if carried else (None, 0.0)
        self.tally = Tally(self.card, settings.smoothing, accountant, offset_s, timeline=not source.live)
        self.resumed = carried.runs if carried else 0  # earlier runs whose totals this one carries on
        self.reuse = Reuse(settings.skip_similar)  # near-duplicates of the last inferred sample reuse its result
        self.inferences = 0
        self._last_probs: np.ndarray | None = None
        self._reference_model = engine.sha256  # the model whose result a near-duplicate may reuse
        self.report: Report | None = None
        self.ended: str = ""  # why it ended, set once at the end (as in the report)
        self.source_error: BaseException | None = None
        self._buffer: FrameBuffer | None = None  # both made by run()
        self._reader: FrameReader | None = None
        self.stats = RunStats(
            source=source.name,
            live=source.live,
            classes=list(self.card.classes),
            characters=list(self.card.characters),
            device=engine.device_name,
            totals=dict(self.accountant.totals_s),
            screen_s=dict(self.accountant.totals_s),
        )

    @property
    def accountant(self) -> Accountant:
        return self.tally.accountant

    @property
    def timeline(self) -> list[TimelineEntry] | None:
        return self.tally.timeline

    @property
    def inferences_saved(self) -> int:
        return self.reuse.saved

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Iterator[Prediction]:
        """Yield each sample's prediction as it is counted; `self.report` is set at the end.

        Raises the source's error (SourceError) after `Ended` has been emitted with the report.
        """
        self._started_at = now_utc()
        self._wall0 = time.monotonic()
        try:
            info = self._open_local()  # files and webcams: a bad path fails here, before any output is written
        except BaseException:  # the outputs still hear of it (a tile, a series), then of its end
            self.emit(ev.Started(self.tag, VideoInfo(0, 0, None, None, live=self.source.live), self.card, self.stats))
            raise
        buffer = FrameBuffer(BufferPolicy.NEWEST if self.source.live else BufferPolicy.WAIT)
        self._buffer = buffer
        self._reader = reader = FrameReader(
            self.source,
            self.sampler,
            buffer,
            self._halt,
            decode_all=self.decode_all,  # live: every frame to the overlay tap, only sampled ones to the buffer
            tap=self._tap if self.source.live and (self.decode_all or self.tap_every_s is not None) else None,
            tap_every_s=self.tap_every_s or 0.0,
            policy=self.reconnect,
            model_size=self.card.input_size,
            opened=info is not None,
            cropper=self.cropper,
        )
        self._first_t: float | None = None
        self._stop_clock: float | None = None
        self._next_checkpoint = time.monotonic() + self.checkpoint_s
        self._rates = (time.monotonic(), 0, 0, 0)
        self.emit(ev.Started(self.tag, info or VideoInfo(0, 0, None, None, live=True), self.card, self.stats))
        outcome: End | EndReason | None = None  # the reader's End, or why this pipeline stopped
        try:
            reader.start()
            outcome = yield from self._consume(buffer)
        except KeyboardInterrupt:
            outcome = EndReason.INTERRUPTED
        finally:
            self._halt.set()
            end = outcome if isinstance(outcome, End) else self._await_end(buffer)
            self._finish(end, stopped=outcome if isinstance(outcome, EndReason) else None)
        if self.source_error is not None:
            raise self.source_error

    def _open_local(self) -> VideoInfo | None:
        """Open a source that does not reconnect (file, webcam) here; network streams open in the
        reader, with backoff, so a camera that is down does not hold up the other sources."""
        if self.source.reconnectable:
            return None
        info = self.source.open()
        self._publish(duration_s=info.duration_s)
        return info

    def _consume(self, buffer: FrameBuffer) -> Generator[Prediction, None, End | EndReason]:
        """Predictions as records come; returns the reader's End, or why this pipeline stopped."""
        limit = 1 if self.source.live else max(self.batch_size, 64)
        while True:
            if self.stop.is_set():
                return self._stopping(EndReason.INTERRUPTED)
            if self._duration_reached():
                return self._stopping(EndReason.DURATION)
            frames: list[Frame] = []
            for item in buffer.get(limit):
                if isinstance(item, Frame):
                    frames.append(item)
                    continue
                if stopped := (yield from self._frames(frames)):
                    return stopped
                frames = []
                if isinstance(item, End):
                    return item
                self._control(item)
            if stopped := (yield from self._frames(frames)):
                return stopped
            self._tick()

    def _frames(self, frames: list[Frame]) -> Generator[Prediction, None, EndReason | None]:
        for chunk in self._chunks(frames):
            if stopped := (yield from self._process(chunk)):
                return stopped
            self._tick()
        return None

    def _control(self, item: Item) -> None:
        if isinstance(item, Lost):
            item = Lost(self.tally.lost(item.t_s), item.why)
            self._publish(state=RunState.RECONNECTING, screen_s=dict(self.accountant.totals_s))
        elif isinstance(item, Gap):
            item = Gap(*self.tally.gap(item.start_s, item.end_s))  # the tally never averages across it
            self._publish(state=RunState.RUNNING)
        elif isinstance(item, Discontinuity):  # listed in the report; the clock already made it continuous
            self.tally.discontinuity(item.t_s, item.jump_s)
            self.emit(ev.ClockJumped(self.tag, item))
            return
        else:
            return
        # in order with the samples, on the accountant's clock
        self.emit(ev.SourceLost(self.tag, item) if isinstance(item, Lost) else ev.SourceBack(self.tag, item))

    def _stopping(self, reason: EndReason) -> EndReason:
        if self.source.live:
            self._stop_clock = self.source.clock()
        return reason

    def _await_end(self, buffer: FrameBuffer) -> End:
        """After a stop: wait for the reader's End (bounded by the source's own timeouts), still
        taking outages in order, counting no more frames."""
        self._halt.set()
        wait_s = STOP_GRACE_S + self.source.open_timeout_s + self.source.timeout_s
        deadline = time.monotonic() + (wait_s if self.source.live else 10.0)
        while time.monotonic() < deadline:
            for item in buffer.get(64):
                if isinstance(item, End):
                    return item
                if not isinstance(item, Frame):
                    self._control(item)
        log.warning("%s: the reader did not stop within %.0f s; it closes its capture itself", self.source.name, wait_s)
        return End(EndReason.INTERRUPTED, self.source.clock() if self.source.live else None)

    def _chunks(self, items: list[Frame]) -> Iterator[list[Frame]]:
        """Split in order so each chunk holds at most `batch_size` sampled frames."""
        chunk: list[Frame] = []
        sampled = 0
        for frame in items:
            chunk.append(frame)
            sampled += frame.sampled
            if sampled == self.batch_size:
                yield chunk
                chunk, sampled = [], 0
        if chunk:
            yield chunk

    def _process(self, chunk: list[Frame]) -> Generator[Prediction, None, EndReason | None]:
        # A frame no newer than the last analysed one is never counted twice.
        sampled = [f for f in chunk if f.sampled and is_new(f.t_s, self.tally.last_t_s)]
        verdicts = self._infer(sampled)
        current = self.stats.current
        for frame in chunk:
            if self._first_t is None:
                self._first_t = frame.t_s
            if self.duration_s is not None and not self.source.live and frame.t_s >= self._first_t + self.duration_s:
                return EndReason.DURATION
            if id(frame) in verdicts:
                current = self._count(frame, verdicts[id(frame)])
                yield current
            if self.decode_all and not self.source.live:
                self.emit(ev.Pictured(self.tag, frame, current))
        return None

    def _infer(self, frames: list[Frame]) -> dict[int, np.ndarray]:
        """Probabilities per frame id. A near-duplicate of the last inferred frame (a held drawing,
        a still) reuses its result instead of running the model again."""
        to_run: list[Frame] = []
        source_of: dict[int, Frame | None] = {}  # frame id -> inferred frame whose result it reuses
        if self._reference_model != self.engine.sha256:  # a model swapped in (a fleet): results are its own
            self.reuse.forget()
            self._reference_model = self.engine.sha256
        for frame in frames:
            if self.reuse.needs_model(frame.thumb):
                to_run.append(frame)
            else:
                source_of[id(frame)] = to_run[-1] if to_run else None
        images = [f.model_input if f.model_input is not None else f.image for f in to_run]
        decoded = [image for image in images if image is not None]  # all: the reader drops undecodable frames
        started = time.monotonic()
        probs: list[np.ndarray] | np.ndarray = self.engine.predict(decoded) if to_run else []
        if to_run:  # before the samples' update(): sinks see which were model runs, and their time per frame
            self.inferences += len(to_run)
            self._publish(inferences=self.inferences, inference_s=(time.monotonic() - started) / len(to_run))
        verdicts = {id(f): p for f, p in zip(to_run, probs, strict=True)}
        for frame in frames:
            if id(frame) in source_of:
                origin = source_of[id(frame)]
                verdicts[id(frame)] = verdicts[id(origin)] if origin is not None else self._last_probs
        if frames:
            self._last_probs = verdicts[id(frames[-1])]
        return verdicts

    def _count(self, frame: Frame, probs: np.ndarray) -> Prediction:
        if self._clock_from is not None:  # before anything is counted on the clock it sets
            self.tally.offset_s = self._clock_from(frame)
            self._clock_from = None
        latency = time.monotonic() - frame.captured_at if frame.captured_at else 0.0
        prediction = self.tally.sample(frame.t_s, probs, latency)
        assert prediction is not None, "_process passes only frames newer than the last counted"
        t_s = self.tally.at(frame.t_s)
        self.stats.recent.add(t_s, prediction.present)  # a thread-safe history, shared by every snapshot
        stats = self._publish(
            state=RunState.RUNNING,
            samples=self.stats.samples + 1,
            current=prediction,
            t_s=frame.t_s,
            latency_s=latency,
            totals=self.tally.running_totals(frame.t_s),
            screen_s=dict(self.accountant.totals_s),
        )
        self.emit(ev.Sampled(self.tag, prediction, frame, stats))
        return prediction

    def _tap(self, frame: Frame) -> None:
        self.emit(ev.Pictured(self.tag, frame, None))

    def _duration_reached(self) -> bool:
        if self.duration_s is None or not self.source.live:
            return False
        return time.monotonic() - self._wall0 >= self.duration_s  # wall clock, whatever the camera does

    # -- live numbers and checkpoints -------------------------------------------------------

    def _publish(self, **changes) -> RunStats:
        """A new frozen snapshot of the numbers (this thread is their only writer; the dashboard,
        metrics and live view read whichever snapshot is current, whole)."""
        self.stats = replace(self.stats, **changes)
        return self.stats

    def _tick(self) -> None:
        """Between batches: refresh the dashboard's numbers and write a checkpoint when one is due."""
        now = time.monotonic()
        assert self._reader is not None
        seen = self._reader.stats  # the reader's latest snapshot, read once
        numbers: dict[str, object] = {
            "frames_read": seen.frames_read,
            "dropped": seen.dropped,
            "elapsed_s": now - self._wall0,
            "outages": len(self.accountant.outages) + self.accountant.down,
            "decoded": seen.decoded,
            "inferences": self.inferences,
            "inferences_saved": self.reuse.saved,
            "reconnects": seen.reconnects,
            "retry_attempt": seen.attempt,
            "next_retry_in_s": seen.next_retry_in_s if seen.attempt else 0.0,
            "outage_s": self.tally.outage_s(self.source.clock() if self.source.live else None),
        }
        if self.source.live and self.tally.last_t_s is not None and not self.accountant.down:
            numbers["totals"] = self.tally.running_totals(self.source.clock())
        t0, decoded0, samples0, inferred0 = self._rates
        second = now - t0 >= 1.0
        if second:
            span = now - t0
            numbers["decoded_fps"] = (seen.decoded - decoded0) / span
            numbers["sampled_fps"] = (self.stats.samples - samples0) / span
            numbers["analysed_fps"] = (self.inferences - inferred0) / span
            self._rates = (now, seen.decoded, self.stats.samples, self.inferences)
        stats = self._publish(**numbers)
        if second:  # once a second, samples or not (a camera that is down)
            self.emit(ev.Tick(self.tag, stats))
        if now >= self._next_checkpoint:
            self._next_checkpoint = now + self.checkpoint_s
            self.checkpoint()

    def checkpoint(self) -> None:
        """The report as it stands, to the outputs (the report file is rewritten atomically)."""
        self.emit(ev.Checkpoint(self.tag, self._report(RUNNING)))

    # -- the end -----------------------------------------------------------------------------

    def _finish(self, end: End, stopped: EndReason | None) -> None:
        """`stopped`: why this pipeline stopped before the reader ended (None: the reader ended)."""
        ended: str = stopped or end.reason
        if end.reason is EndReason.FAILED:
            ended = stopped or EndReason.END_OF_STREAM
            if isinstance(end.error, Exception) or end.error is None:
                self.source_error = end.error or SourceError(f"{self.source.name}: failed")
            else:  # KeyboardInterrupt inside the reader
                ended = EndReason.INTERRUPTED
        assert self._reader is not None  # made by run() before anything can end
        if self._reader.stats.frames_read == 0 and self.source_error is None:
            if not self.source.live:
                if end.reason is EndReason.END_OF_STREAM:  # ended, not stopped, before a single frame
                    self.source_error = SourceError(f"{self.source.name}: no decodable frames")
            elif self.source.reconnectable:  # a camera that never answered is a failure, whatever stopped the run
                why = self._reader.stats.last_error or f"{self.source.name}: no picture"
                waited = time.monotonic() - self._wall0
                self.source_error = SourceConnectionError(f"{why} (nothing received in {waited:.0f} s)")
        self.tally.finish(self._end_time(end, ended))
        if self.source_error is not None:
            ended = f"{EndReason.FAILED}: {self.source_error}"
        self.ended = ended
        self.report = self._report(str(self.ended))
        state = RunState.FAILED if self.source_error is not None else RunState.ENDED
        self._publish(screen_s=dict(self.accountant.totals_s), state=state)
        self.emit(ev.Ended(self.tag, self.report, self.stats))

    def _end_time(self, end: End, ended: str) -> float | None:
        """Where analysed time ends, on the source's clock (None: at the last sample)."""
        last_t = self.tally.last_t_s
        if last_t is None:
            return None
        reader_end = end.end_s if end.end_s is not None else last_t
        if self.source.live:
            stop = self._stop_clock if self._stop_clock is not None else reader_end
            return min(stop, reader_end)
        if ended is EndReason.END_OF_STREAM and end.reason is EndReason.END_OF_STREAM:
            return reader_end
        if ended is EndReason.DURATION and self._first_t is not None and self.duration_s is not None:
            return self._first_t + self.duration_s
        interval = self._reader.stats.frame_interval_s if self._reader else None
        interval = interval or 0.0
        return min(last_t + max(self.sampler.every_s, interval), reader_end)

    def _report(self, ended: str) -> Report:
        return self.tally.report(
            source=self.source.name,
            model=self.model_name,
            ended=ended,
            every_s=self.sampler.every_s,
            device=self.engine.device_name,
            started_at=self._started_at,
            updated_at=now_utc(),
            frames_read=self._reader.stats.frames_read if self._reader else 0,
            dropped=self._reader.stats.dropped if self._reader else 0,
            reconnects=self._reader.stats.reconnects if self._reader else 0,
            inferences_saved=self.reuse.saved,
            resumed=self.resumed,
            model_sha256=self.engine.sha256,
            crop=self.cropper.describe(),
        )
