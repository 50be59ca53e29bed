"""The pipeline: source -> sampler -> engine -> accountant -> sinks.

It receives its collaborators rather than building them, so a test can hand it a slow engine or
a failing sink. It consumes one ordered stream of records from its reader (frames, `Lost`,
`Gap`, `End`) and never looks inside the reader. Whatever ends the run (end of stream, Ctrl-C,
SIGTERM, `--duration`, a failed source) goes through the same `finally`: the accountant is
finished and every sink closed with the report. A sink that fails is cut off and reported at
the end (OutputError) while the others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import numpy as np

from stream.accounting import Accountant
from stream.buffer import BufferPolicy, FrameBuffer
from stream.crop import Cropper
from stream.defaults import BATCH_SIZE, CHECKPOINT_S, CROP
from stream.engine import Engine
from stream.errors import OutputError, SourceConnectionError, SourceError
from stream.modelcard import ModelCard
from stream.preprocess import near_duplicate
from stream.reader import FrameReader
from stream.reconnect import ConnectionState, ReconnectPolicy
from stream.records import End, EndReason, Frame, Gap, Item, Lost, Prediction, VideoInfo
from stream.report import RUNNING, Report, TimelineEntry, ms
from stream.sampler import Sampler
from stream.sinks import Sink
from stream.smoothing import Smoother
from stream.stats import RunState, RunStats

log = logging.getLogger(__name__)

STOP_GRACE_S = 2.0  # beyond the source's own timeouts, how long a stop waits for the reader's End


def to_prediction(probs: np.ndarray, card: ModelCard, t_s: float, latency_s: float = 0.0) -> Prediction:
    """Probabilities -> verdict. Multi-label models count every class above 0.5."""
    top = int(np.argmax(probs))
    label = card.classes[top]
    if card.multi_label:
        present = tuple(c for i, c in enumerate(card.classes) if probs[i] >= 0.5 and i != card.background)
        if not present:
            present = (card.classes[card.background],) if card.background is not None else (label,)
        label = "+".join(present)  # e.g. "jerry+tom" in the timeline
    else:
        present = (label,)
    return Prediction(
        t_s=ms(t_s),
        label=label,
        confidence=float(probs[top]),
        probs={c: float(p) for c, p in zip(card.classes, probs, strict=True)},
        present=present,
        latency_s=latency_s,
    )


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Halt(threading.Event):
    """Set when this pipeline ends, or when the run's shared stop event is.

    Everything that waits on it polls with short timeouts, so the parent is seen promptly.
    """

    def __init__(self, parent: threading.Event) -> None:
        super().__init__()
        self._parent = parent

    def is_set(self) -> bool:
        return super().is_set() or self._parent.is_set()


class Pipeline:
    """One source analysed by one engine, fanned out to sinks."""

    def __init__(
        self,
        source,
        engine: Engine,
        sampler: Sampler,
        sinks: Sequence[Sink] = (),
        stop: threading.Event | None = None,
        duration_s: float | None = None,
        batch_size: int = BATCH_SIZE,
        decode_all: bool = False,
        model_name: str = "",
        reconnect: ReconnectPolicy | None = None,
        smoothing: int | None = None,
        skip_similar: float = 0.0,
        checkpoint_s: float = CHECKPOINT_S,
        accountant: Accountant | None = None,
        time_offset_s: float = 0.0,
        tap_every_s: float | None = None,
        crop: str | object = CROP,
    ) -> None:
        self.source = source
        self.cropper = Cropper(crop)  # black bars found (auto) or given, cut before the resize
        self.engine = engine
        self.card = engine.card
        self.sampler = sampler
        self.sinks = list(sinks)
        self.stop = stop or threading.Event()  # may be shared by several pipelines: only read here
        self._halt = _Halt(self.stop)  # this pipeline's own end, seen by its reader
        self.duration_s = duration_s
        self.batch_size = batch_size if not source.live else 1
        self.decode_all = decode_all  # the overlay video wants every frame
        self.tap_every_s = tap_every_s  # live: also a frame this often for sinks' frame() (the live view)
        self.model_name = model_name or str(engine.path)
        self.reconnect = reconnect or ReconnectPolicy()
        self.checkpoint_s = checkpoint_s
        self.connection = ConnectionState()
        # A resumed run carries an earlier run's accountant on; its times continue after `time_offset_s`.
        self.accountant = accountant or Accountant(self.card.classes)
        self.offset_s = time_offset_s
        self.resumed = 0  # earlier runs whose totals this one carries on
        window = smoothing if smoothing is not None else int(self.card.smoothing.get("window", 1))
        self.smoother = Smoother(window)  # samples averaged per verdict: the flag, the model's default, or none
        self.skip_similar = skip_similar  # mean grey-level difference under which a result is reused
        self.inferences_saved = 0
        self.inferences = 0
        self._reference_thumb: np.ndarray | None = None
        self._last_probs: np.ndarray | None = None
        self.timeline: list[TimelineEntry] | None = None if source.live else []
        self.report: Report | None = None
        self.ended: str = EndReason.END_OF_STREAM
        self.failed_outputs: list[str] = []  # one line per output that failed
        self._failed: set[int] = set()  # ids of sinks cut off after failing
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

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Iterator[Prediction]:
        """Yield each sample's prediction as it is counted; `self.report` is set at the end.

        Raises the source's error (SourceError) or, if only outputs failed, OutputError, after
        every sink has been closed with the report.
        """
        self._started_at = now_utc()
        self._wall0 = time.monotonic()
        info = self._open_local()  # files and webcams: a bad path fails here, before any output
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
            connection=self.connection,
            model_size=self.card.input_size,
            opened=info is not None,
            cropper=self.cropper,
        )
        self._last_t: float | None = None
        self._first_t: float | None = None
        self._stop_clock: float | None = None
        self._next_checkpoint = time.monotonic() + self.checkpoint_s
        self._rates = (time.monotonic(), 0, 0, 0)
        for sink in self.sinks:
            self._call(sink, "start", info or VideoInfo(0, 0, None, None, live=True), self.card)
        end: End | None = None
        try:
            reader.start()
            end = yield from self._consume(buffer)
        except KeyboardInterrupt:
            self.ended = EndReason.INTERRUPTED
        finally:
            self._halt.set()
            if end is None:
                end = self._await_end(buffer)
            self._finish(end)
        if self.source_error is not None:
            raise self.source_error
        if self.failed_outputs:
            raise OutputError("; ".join(self.failed_outputs))

    def _open_local(self) -> VideoInfo | None:
        """Open a source that does not reconnect (file, webcam) here; network streams open in the
        reader, with backoff, so a camera that is down does not hold up the other sources."""
        if self.source.reconnectable:
            return None
        info = self.source.open()
        self.connection.connected = True
        self.stats.duration_s = info.duration_s
        return info

    def _consume(self, buffer: FrameBuffer) -> Iterator[Prediction]:
        limit = 1 if self.source.live else max(self.batch_size, 64)
        while True:
            if self.stop.is_set():
                self._stopping(EndReason.INTERRUPTED)
                return None
            if self._duration_reached():
                self._stopping(EndReason.DURATION)
                return None
            items = buffer.get(limit)
            frames: list[Frame] = []
            for item in items:
                if isinstance(item, Frame):
                    frames.append(item)
                    continue
                yield from self._frames(frames)
                frames = []
                if self.ended is EndReason.DURATION:
                    return None
                if isinstance(item, End):
                    return item
                self._control(item)
            yield from self._frames(frames)
            if self.ended is EndReason.DURATION:
                return None
            self._tick()

    def _frames(self, frames: list[Frame]) -> Iterator[Prediction]:
        for chunk in self._chunks(frames):
            yield from self._process(chunk)
            if self.ended is EndReason.DURATION:
                return
            self._tick()

    def _control(self, item: Item) -> None:
        if isinstance(item, Lost):
            item = Lost(item.t_s + self.offset_s, item.why)
            self.accountant.lost(item.t_s)
            self.stats.state = RunState.RECONNECTING
            self.stats.screen_s = dict(self.accountant.totals_s)
        elif isinstance(item, Gap):
            item = Gap(item.start_s + self.offset_s, item.end_s + self.offset_s)
            self.accountant.gap(item.start_s, item.end_s)
            self.smoother.reset()  # never average across an outage
            self.stats.state = RunState.RUNNING
        else:
            return
        for sink in self._live_sinks():  # in order with the samples, on the accountant's clock
            self._call(sink, "control", item)

    def _stopping(self, reason: EndReason) -> None:
        self.ended = reason
        if self.source.live:
            self._stop_clock = self.source.clock()

    def _await_end(self, buffer: FrameBuffer) -> End:
        """After a stop: wait for the reader's End (bounded by the source's own timeouts), still
        taking outages in order, counting no more frames."""
        self._halt.set()
        wait_s = STOP_GRACE_S + getattr(self.source, "open_timeout_s", 0.0) + getattr(self.source, "timeout_s", 0.0)
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

    def _process(self, chunk: list[Frame]) -> Iterator[Prediction]:
        # A frame no newer than the last analysed one is never counted twice.
        sampled = [f for f in chunk if f.sampled and (self._last_t is None or f.t_s > self._last_t)]
        verdicts = self._infer(sampled)
        current = self.stats.current
        for frame in chunk:
            if self._first_t is None:
                self._first_t = frame.t_s
            if self.duration_s is not None and not self.source.live and frame.t_s >= self._first_t + self.duration_s:
                self.ended = EndReason.DURATION
                return
            if id(frame) in verdicts:
                current = self._count(frame, verdicts[id(frame)])
                yield current
            if self.decode_all and not self.source.live:
                for sink in self._live_sinks():
                    self._call(sink, "frame", frame, current)

    def _infer(self, frames: list[Frame]) -> dict[int, np.ndarray]:
        """Probabilities per frame id. A near-duplicate of the last inferred frame (a held drawing,
        a still) reuses its result instead of running the model again."""
        to_run: list[Frame] = []
        source_of: dict[int, Frame | None] = {}  # frame id -> inferred frame whose result it reuses
        for frame in frames:
            if near_duplicate(frame.thumb, self._reference_thumb, self.skip_similar):
                source_of[id(frame)] = to_run[-1] if to_run else None
                self.inferences_saved += 1
            else:
                to_run.append(frame)
                self._reference_thumb = frame.thumb
        images = [f.model_input if f.model_input is not None else f.image for f in to_run]
        started = time.monotonic()
        probs = self.engine.predict(images) if to_run else []
        if to_run:
            self.stats.inference_s = (time.monotonic() - started) / len(to_run)  # per frame, batched
        self.inferences += len(to_run)
        self.stats.inferences = self.inferences  # before the samples' update(): sinks see which were model runs
        verdicts = {id(f): p for f, p in zip(to_run, probs, strict=True)}
        for frame in frames:
            if id(frame) in source_of:
                origin = source_of[id(frame)]
                verdicts[id(frame)] = verdicts[id(origin)] if origin is not None else self._last_probs
        if frames:
            self._last_probs = verdicts[id(frames[-1])]
        return verdicts

    def _count(self, frame: Frame, probs: np.ndarray) -> Prediction:
        latency = time.monotonic() - frame.captured_at if frame.captured_at else 0.0
        t_s = frame.t_s + self.offset_s
        prediction = to_prediction(self.smoother.push(probs), self.card, t_s, latency)
        self.accountant.sample(t_s, prediction.present)
        if self.timeline is not None:
            self.timeline.append(TimelineEntry(t_s, prediction.label, prediction.confidence))
        self._last_t = frame.t_s
        stats = self.stats
        stats.state = RunState.RUNNING
        stats.samples += 1
        stats.current = prediction
        stats.t_s = frame.t_s
        stats.latency_s = latency
        stats.totals = self.accountant.running_totals(t_s)
        stats.recent.add(t_s, prediction.present)
        stats.screen_s = dict(self.accountant.totals_s)
        for sink in self._live_sinks():
            self._call(sink, "update", prediction, frame, stats)
        return prediction

    def _tap(self, frame: Frame) -> None:
        for sink in self._live_sinks():
            self._call(sink, "frame", frame, None)

    def _duration_reached(self) -> bool:
        if self.duration_s is None or not self.source.live:
            return False
        return time.monotonic() - self._wall0 >= self.duration_s  # wall clock, whatever the camera does

    # -- live numbers and checkpoints -------------------------------------------------------

    def _tick(self) -> None:
        """Between batches: refresh the dashboard's numbers and write a checkpoint when one is due."""
        now = time.monotonic()
        stats, reader = self.stats, self._reader
        stats.frames_read = reader.stats.frames_read
        stats.dropped = self._buffer.dropped
        stats.elapsed_s = now - self._wall0
        stats.outages = len(self.accountant.outages) + self.accountant.down
        stats.decoded = reader.stats.decoded
        stats.inferences = self.inferences
        stats.inferences_saved = self.inferences_saved
        stats.reconnects = self.connection.reconnects
        stats.outage_s = self.accountant.outage_s(self.source.clock() + self.offset_s if self.source.live else None)
        t0, decoded0, samples0, inferred0 = self._rates
        if now - t0 >= 1.0:
            span = now - t0
            stats.decoded_fps = (reader.stats.decoded - decoded0) / span
            stats.sampled_fps = (stats.samples - samples0) / span
            stats.analysed_fps = (self.inferences - inferred0) / span
            self._rates = (now, reader.stats.decoded, stats.samples, self.inferences)
            for sink in self._live_sinks():  # once a second, samples or not (a camera that is down)
                self._call(sink, "tick", stats)
        if self.source.live:
            conn = self.connection
            if stats.state is RunState.RECONNECTING or (stats.state is RunState.CONNECTING and conn.attempt):
                stats.detail = f"retry {conn.attempt} in {conn.next_retry_in_s:.1f} s" if conn.attempt else ""
            else:
                stats.detail = f"{conn.reconnects} reconnects" if conn.reconnects else ""
            if self._last_t is not None and not self.accountant.down:
                stats.totals = self.accountant.running_totals(self.source.clock() + self.offset_s)
        if now >= self._next_checkpoint:
            self._next_checkpoint = now + self.checkpoint_s
            self.checkpoint()

    def checkpoint(self) -> None:
        """Hand every sink the report as it stands (the report sink rewrites its file atomically)."""
        report = self._report(RUNNING)
        for sink in self._live_sinks():
            self._call(sink, "checkpoint", report)

    # -- the end -----------------------------------------------------------------------------

    def _finish(self, end: End) -> None:
        if end.reason is EndReason.FAILED:
            if isinstance(end.error, Exception) or end.error is None:
                self.source_error = end.error or SourceError(f"{self.source.name}: failed")
            else:  # KeyboardInterrupt inside the reader
                self.ended = EndReason.INTERRUPTED
        elif self.ended is EndReason.END_OF_STREAM:
            self.ended = end.reason
        if self._reader.stats.frames_read == 0 and self.source_error is None:
            if not self.source.live:
                if end.reason is EndReason.END_OF_STREAM:  # ended, not stopped, before a single frame
                    self.source_error = SourceError(f"{self.source.name}: no decodable frames")
            elif self.source.reconnectable:  # a camera that never answered is a failure, whatever stopped the run
                why = self.connection.last_error or f"{self.source.name}: no picture"
                waited = time.monotonic() - self._wall0
                self.source_error = SourceConnectionError(f"{why} (nothing received in {waited:.0f} s)")
        self.accountant.finish(self._end_time(end))
        if self.source_error is not None:
            self.ended = f"{EndReason.FAILED}: {self.source_error}"
        self.report = self._report(str(self.ended))
        self.stats.screen_s = dict(self.accountant.totals_s)
        self.stats.state = RunState.FAILED if self.source_error is not None else RunState.ENDED
        for sink in self._live_sinks():
            self._call(sink, "close", self.report)

    def _end_time(self, end: End) -> float | None:
        """Where analysed time ends, on the accountant's clock (None: at the last sample)."""
        if self._last_t is None:
            return None
        reader_end = end.end_s if end.end_s is not None else self._last_t
        if self.source.live:
            stop = self._stop_clock if self._stop_clock is not None else reader_end
            return min(stop, reader_end) + self.offset_s
        if self.ended is EndReason.END_OF_STREAM and end.reason is EndReason.END_OF_STREAM:
            return reader_end
        if self.ended is EndReason.DURATION and self._first_t is not None and self.duration_s is not None:
            return self._first_t + self.duration_s
        interval = self._reader.stats.frame_interval_s or 0.0
        return min(self._last_t + max(self.sampler.every_s, interval), reader_end)

    def _report(self, ended: str) -> Report:
        report = Report.from_accountant(
            self.accountant,
            self.card,
            source=self.source.name,
            model=self.model_name,
            ended=ended,
            timeline=self.timeline,
            every_s=self.sampler.every_s,
            device=self.engine.device_name,
            started_at=self._started_at,
            updated_at=now_utc(),
            frames_read=self._reader.stats.frames_read if self._reader else 0,
            dropped=self._buffer.dropped if self._buffer else 0,
            reconnects=self.connection.reconnects,
            inferences_saved=self.inferences_saved,
            resumed=self.resumed,
            model_sha256=self.engine.sha256,
        )
        report.crop = self.cropper.describe()
        return report

    # -- sinks -------------------------------------------------------------------------------

    def _live_sinks(self) -> list[Sink]:
        return [s for s in self.sinks if id(s) not in self._failed]

    def _call(self, sink: Sink, method: str, *args) -> None:
        """Call a sink; one that fails is cut off (its error kept for the exit status), the others go on."""
        if id(sink) in self._failed:
            return
        try:
            getattr(sink, method)(*args)
        except Exception as exc:
            self._failed.add(id(sink))
            message = str(exc) if isinstance(exc, OutputError) else f"{type(sink).__name__}: {exc}"
            self.failed_outputs.append(message)
            log.warning("output failed, the run goes on without it: %s", message)
