"""The pipeline: source -> sampler -> engine -> counters -> sinks.

It receives its collaborators rather than building them, so a test can hand it a slow engine or
a failing sink. One stop event ends everything; whatever ends the run (end of stream, Ctrl-C,
SIGTERM, `--duration`, a failed source) goes through the same `finally`, so the report always
gets written with what was seen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import numpy as np

from stream.counters import ScreenTimeCounter
from stream.engine import Engine
from stream.errors import SourceError
from stream.modelcard import ModelCard
from stream.preprocess import near_duplicate
from stream.reader import END, BufferPolicy, FrameBuffer, FrameReader
from stream.reconnect import ConnectionState, ReconnectPolicy, connect_with_retry
from stream.records import Frame, Prediction
from stream.report import Report, TimelineEntry
from stream.sampler import Sampler
from stream.sinks import Sink
from stream.smoothing import Smoother
from stream.stats import RunStats
from stream.version import __version__

log = logging.getLogger(__name__)


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
        t_s=t_s,
        label=label,
        confidence=float(probs[top]),
        probs={c: float(p) for c, p in zip(card.classes, probs, strict=True)},
        present=present,
        latency_s=latency_s,
    )


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
        batch_size: int = 8,
        decode_all: bool = False,
        model_name: str = "",
        reconnect: ReconnectPolicy | None = None,
        smoothing: int | None = None,
        skip_similar: float = 0.0,
    ) -> None:
        self.source = source
        self.engine = engine
        self.card = engine.card
        self.sampler = sampler
        self.sinks = list(sinks)
        self.stop = stop or threading.Event()  # may be shared by several pipelines: only read here
        self._halt = _Halt(self.stop)  # this pipeline's own end, seen by its reader
        self.duration_s = duration_s
        self.batch_size = batch_size if not source.live else 1
        self.decode_all = decode_all  # the overlay video wants every frame
        self.model_name = model_name or str(engine.path)
        self.reconnect = reconnect or ReconnectPolicy()
        self.connection = ConnectionState()
        self.counter = ScreenTimeCounter(self.card.classes)
        # Samples averaged per verdict: the flag, else the model's own default, else none.
        window = smoothing if smoothing is not None else int(self.card.smoothing.get("window", 1))
        self.smoother = Smoother(window)
        self.skip_similar = skip_similar  # mean grey-level difference under which a result is reused
        self.inferences_saved = 0
        self._reference_thumb: np.ndarray | None = None
        self._last_probs: np.ndarray | None = None
        self._outages_smoothed = 0
        self.timeline: list[TimelineEntry] = []
        self.report: Report | None = None
        self.ended = "end of stream"
        self.stats = RunStats(
            source=source.name,
            live=source.live,
            classes=list(self.card.classes),
            characters=list(self.card.characters),
            device=engine.device_name,
        )

    def run(self) -> Iterator[Prediction]:
        """Yield each sample's prediction as it is counted; `self.report` is set at the end."""
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        info = self._open()
        if info is None:  # stopped while still trying to connect
            self.ended = "interrupted"
            self.report = self._empty_report(started_at)
            return
        self.stats.duration_s = info.duration_s
        buffer = FrameBuffer(BufferPolicy.NEWEST if info.live else BufferPolicy.WAIT)
        overlay_tap = None
        if info.live and self.decode_all:
            overlay_tap = self._tap_overlay
        reader = FrameReader(
            self.source,
            self.sampler,
            buffer,
            self._halt,
            decode_all=self.decode_all,  # live: every frame to the overlay tap, only sampled ones to the buffer
            tap=overlay_tap,
            policy=self.reconnect,
            connection=self.connection,
            model_size=self.card.input_size,
        )
        self._wall0 = time.monotonic()
        self._last_t: float | None = None
        self._first_t: float | None = None
        started: list[Sink] = []
        try:
            for sink in self.sinks:
                sink.start(info, self.card)
                started.append(sink)
            reader.start()
            self.stats.state = "running"
            yield from self._consume(buffer, reader)
            if self.stop.is_set() and self.ended == "end of stream":
                self.ended = "interrupted"  # stopped by the caller, whoever noticed first
            if reader.error is not None:
                raise reader.error
        except KeyboardInterrupt:
            self.ended = "interrupted"
        finally:
            self._halt.set()
            reader.join(timeout=10)
            self.source.close()
            self.report = self._finish(reader, buffer, started_at)
            self.stats.state = self.ended
            for sink in started:
                try:
                    sink.close(self.report)
                except Exception as exc:  # one failing sink must not lose the others' output
                    log.error("%s failed to close: %s", type(sink).__name__, exc)
        if reader.stats.frames_read == 0 and not info.live:
            raise SourceError(f"{self.source.name}: no decodable frames")

    def _consume(self, buffer: FrameBuffer, reader: FrameReader) -> Iterator[Prediction]:
        limit = 1 if self.source.live else max(self.batch_size, 64)
        while True:
            if self.stop.is_set():
                return
            if self._duration_reached():
                self.ended = "duration reached"
                return
            items = buffer.get_many(limit)
            # Outages are registered before the frames handed over with them are counted, so a
            # sample never stands across the time the source was down.
            self._register_outages(reader)
            self._refresh_stats(reader, buffer)
            if items is END:
                return
            for chunk in self._chunks(items):
                yield from self._process(chunk)
                if self.ended == "duration reached":
                    return

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
                self.ended = "duration reached"
                return
            if id(frame) in verdicts:
                current = self._count(frame, verdicts[id(frame)])
                yield current
            if self.decode_all and not self.source.live:
                for sink in self.sinks:
                    sink.frame(frame, current)

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
        probs = self.engine.predict(images) if to_run else []
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
        if self.counter.outages != self._outages_smoothed:  # never average across an outage
            self.smoother.reset()
            self._outages_smoothed = self.counter.outages
        prediction = to_prediction(self.smoother.push(probs), self.card, frame.t_s, latency)
        self.counter.add(frame.t_s, prediction.present)
        self.timeline.append(TimelineEntry(frame.t_s, prediction.label, prediction.confidence))
        self._last_t = frame.t_s
        stats = self.stats
        stats.samples += 1
        stats.current = prediction
        stats.t_s = frame.t_s
        stats.latency_s = latency
        stats.elapsed_s = time.monotonic() - self._wall0
        stats.analysis_fps = stats.samples / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
        stats.totals = self.counter.running_totals(frame.t_s)
        for sink in self.sinks:
            sink.update(prediction, frame, stats)
        return prediction

    def _open(self):
        """Open the source; network sources retry with backoff (bounded by the policy)."""
        if not self.source.reconnectable:
            info = self.source.open()
            self.connection.connected = True
            return info
        self.stats.state = "connecting"
        return connect_with_retry(
            self.source.open, self.reconnect, self._halt, self.connection, self.source.name, clock=time.monotonic
        )

    def _outages(self, reader: FrameReader, end_s: float | None = None) -> list[tuple[float, float]]:
        spans = list(reader.outages)
        if reader.down_since is not None:
            spans.append((reader.down_since, end_s if end_s is not None else self.source.clock()))
        return spans

    def _register_outages(self, reader: FrameReader) -> None:
        for start, _ in self._outages(reader):
            self.counter.pause(start)

    def _tap_overlay(self, frame: Frame) -> None:
        for sink in self.sinks:
            sink.frame(frame, None)

    def _duration_reached(self) -> bool:
        if self.duration_s is None or not self.source.live:
            return False
        return time.monotonic() - self._wall0 >= self.duration_s

    def _refresh_stats(self, reader: FrameReader, buffer: FrameBuffer) -> None:
        stats = self.stats
        stats.frames_read = reader.stats.frames_read
        stats.input_fps = reader.stats.input_fps
        stats.dropped = buffer.dropped
        stats.elapsed_s = time.monotonic() - self._wall0
        stats.outages = len(self._outages(reader))
        if self.source.live:
            conn = self.connection
            if reader.down_since is not None or not conn.connected:
                stats.state = (
                    f"reconnecting in {conn.next_retry_in_s:.1f} s (attempt {conn.attempt})"
                    if conn.attempt
                    else "reconnecting"
                )
            else:
                stats.state = "connected" if not conn.reconnects else f"connected ({conn.reconnects} reconnects)"
        if self.source.live and self._last_t is not None:
            stats.totals = self.counter.running_totals(self.source.clock())

    def _empty_report(self, started_at: str) -> Report:
        """Stopped before the source ever connected: a report that says so."""
        return self._report(started_at, samples=0, duration_s=0.0, segments=[], timeline=[], dropped=0)

    def _report(self, started_at: str, **fields) -> Report:
        background = self.card.classes[self.card.background] if self.card.background is not None else None
        return Report(
            source=self.source.name,
            model=self.model_name,
            classes=list(self.card.classes),
            characters=list(self.card.characters),
            background=background,
            screen_time_s=dict(self.counter.totals_s),
            every_s=self.sampler.every_s,
            device=self.engine.device_name,
            multi_label=self.card.multi_label,
            ended=self.ended,
            started_at=started_at,
            screentime_version=__version__,
            **fields,
        )

    def _end_time(self, reader: FrameReader) -> float:
        """Where analysed time ends: the stream's last frame plus one frame, or where we stopped."""
        if self._last_t is None:
            return 0.0
        if self.source.live:
            return max(self._last_t, self.source.clock())
        interval = reader.stats.frame_interval_s or 0.0
        if self.ended == "end of stream":
            return max(self._last_t, reader.stats.last_t_s + interval)
        if self.ended == "duration reached" and self._first_t is not None and self.duration_s is not None:
            return self._first_t + self.duration_s
        return min(self._last_t + max(self.sampler.every_s, interval), reader.stats.last_t_s + interval)

    def _finish(self, reader: FrameReader, buffer: FrameBuffer, started_at: str) -> Report:
        end_s = self._end_time(reader)
        self._register_outages(reader)
        self.counter.finish(end_s)
        start_s = self._first_t if self._first_t is not None else 0.0
        outages = [(max(a, start_s), min(b, end_s)) for a, b in self._outages(reader, end_s)]
        outages = [(a, b) for a, b in outages if b > a]
        down_s = sum(b - a for a, b in outages)
        if reader.error is not None:
            self.ended = f"source failed: {reader.error}"
        return self._report(
            started_at,
            samples=self.counter.samples,
            duration_s=max(0.0, end_s - start_s - down_s) if self._last_t is not None else 0.0,
            segments=sorted(self.counter.segments, key=lambda s: (s.start_s, s.label)),
            timeline=list(self.timeline),
            dropped=buffer.dropped,
            frames_read=reader.stats.frames_read,
            outages=[{"start_s": round(a, 3), "end_s": round(b, 3)} for a, b in outages],
            reconnects=self.connection.reconnects,
            inferences_saved=self.inferences_saved,
        )
