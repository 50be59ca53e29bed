"""A reader thread per source feeding a bounded buffer whose policy is named, not implied.

Files use `BufferPolicy.WAIT`: the reader blocks when the consumer is busy, so no frame is ever
dropped and analysis runs as fast as the slower side allows. Live sources use
`BufferPolicy.NEWEST`: only the newest sampled frame is kept and every overwritten one is
counted as dropped, so latency cannot build up when inference is slower than the stream.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from stream.preprocess import fit_frame, thumbnail
from stream.reconnect import ConnectionState, ReconnectPolicy, connect_with_retry
from stream.records import Frame
from stream.sampler import Sampler

log = logging.getLogger(__name__)


class BufferPolicy(StrEnum):
    WAIT = "wait"  # block the producer; never drop (files)
    NEWEST = "newest"  # keep only the newest item; count drops (live)


class StreamState(StrEnum):
    CONNECTING = "connecting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"


class _End:
    """Poison pill: the reader has finished (see `FrameReader.error` for why)."""


END = _End()


class FrameBuffer:
    """Bounded hand-over between the reader thread and the pipeline."""

    def __init__(self, policy: BufferPolicy, maxsize: int = 64) -> None:
        self.policy = policy
        self.maxsize = 1 if policy is BufferPolicy.NEWEST else maxsize
        self.dropped = 0
        self._items: collections.deque[Frame] = collections.deque()
        self._ended = False
        self._cond = threading.Condition()

    def put(self, frame: Frame, stop: threading.Event) -> bool:
        """Hand over a frame; False if `stop` was set while waiting for room."""
        with self._cond:
            if self.policy is BufferPolicy.NEWEST:
                if self._items:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self.maxsize:
                    if stop.is_set():
                        return False
                    self._cond.wait(0.1)
            self._items.append(frame)
            self._cond.notify_all()
            return True

    def close(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def get_many(self, limit: int, timeout_s: float = 0.1) -> list[Frame] | _End:
        """Wait up to `timeout_s` for a frame, then take up to `limit` of those waiting.

        Returns [] on timeout and END once the reader has finished and everything is taken.
        """
        with self._cond:
            if not self._items and not self._ended:
                self._cond.wait(timeout_s)
            if not self._items:
                return END if self._ended else []
            batch = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
            self._cond.notify_all()
            return batch


@dataclass
class ReaderStats:
    """Counters the dashboard shows; written by the reader thread only."""

    frames_read: int = 0
    last_t_s: float = 0.0
    frame_interval_s: float | None = None
    input_fps: float = 0.0
    state: StreamState = StreamState.CONNECTING


class FrameReader(threading.Thread):
    """Grabs every frame, decodes only the ones that are sampled (or all, for the overlay video)."""

    def __init__(
        self,
        source,
        sampler: Sampler,
        buffer: FrameBuffer,
        stop: threading.Event,
        decode_all: bool = False,
        tap: Callable[[Frame], None] | None = None,
        policy: ReconnectPolicy | None = None,
        connection: ConnectionState | None = None,
        model_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(name=f"reader:{source.name}", daemon=True)
        self.source = source
        self.sampler = sampler
        self.buffer = buffer
        self.stop_event = stop
        self.decode_all = decode_all
        self.tap = tap  # sees every decoded frame (live overlay video), must not block
        self.stats = ReaderStats(state=StreamState.RUNNING)
        self.error: BaseException | None = None
        self.model_size = model_size  # resize sampled frames here, so it overlaps inference
        self.policy = policy or ReconnectPolicy()
        self.connection = connection or ConnectionState(connected=True)
        # Outages on the source's clock. `down_since` is set while one is in progress; the
        # pipeline reads both (only this thread writes them).
        self.outages: list[tuple[float, float]] = []
        self.down_since: float | None = None

    def run(self) -> None:
        try:
            self._loop()
            self.stats.state = StreamState.ENDED
        except BaseException as exc:  # handed to the consumer, which decides what it means
            self.error = exc
            self.stats.state = StreamState.FAILED
        finally:
            self.buffer.close()

    def _loop(self) -> None:
        index = 0
        last_wall: float | None = None
        while not self.stop_event.is_set():
            t_s = self.source.grab()
            if t_s is None:
                if not self.source.reconnectable or not self._reconnect():
                    return
                last_wall = None
                continue
            if self.down_since is not None:  # the first frame after a reconnect ends the outage
                self.outages.append((self.down_since, t_s))
                self.down_since = None
                self.stats.state = StreamState.RUNNING
            now = time.monotonic()
            self._update_stats(t_s, now, last_wall)
            last_wall = now
            sampled = self.sampler.due(t_s)
            if not (sampled or self.decode_all):
                index += 1
                continue
            image = self.source.retrieve()
            if image is None:
                log.warning("%s: frame %d could not be decoded; skipped", self.source.name, index)
                index += 1
                continue
            model_input = thumb = None
            if sampled and self.model_size is not None:
                model_input = fit_frame(image, self.model_size)
                thumb = thumbnail(model_input)  # what the model sees; 10x cheaper than from the full frame
            frame = Frame(image, t_s, index, captured_at=now, sampled=sampled, model_input=model_input, thumb=thumb)
            index += 1
            if self.tap is not None:
                self.tap(frame)
            if (sampled or self.buffer.policy is BufferPolicy.WAIT) and not self.buffer.put(frame, self.stop_event):
                return
            if sampled and hasattr(self.source, "skip_to"):  # a file sampled sparsely: jump over whole GOPs
                self.source.skip_to(self.sampler.next_due_s)

    def _reconnect(self) -> bool:
        """The stream dropped: reconnect with backoff. False if stopped first; raises when retries run out.

        The outage starts where the last good frame ends (a hang is noticed only a timeout later)
        and ends at the first frame after reconnecting; one still open when the reader stops is
        closed by the pipeline at the end of the run.
        """
        source = self.source
        stats = self.stats
        self.down_since = (
            min(source.clock(), stats.last_t_s + (stats.frame_interval_s or 0.0))
            if stats.frames_read
            else source.clock()
        )
        self.stats.state = StreamState.RECONNECTING
        self.connection.connected = False
        log.warning("%s: stream lost at %.1f s; reconnecting", source.name, self.down_since)
        source.close()
        info = connect_with_retry(
            source.open, self.policy, self.stop_event, self.connection, source.name, clock=time.monotonic
        )
        if info is None:
            return False
        self.connection.reconnects += 1
        log.info(
            "%s: reconnected after %.1f s (%dx%d)",
            source.name,
            source.clock() - self.down_since,
            info.width,
            info.height,
        )
        return True

    def _update_stats(self, t_s: float, now: float, last_wall: float | None) -> None:
        stats = self.stats
        if stats.frames_read:
            stats.frame_interval_s = t_s - stats.last_t_s
        stats.frames_read += 1
        stats.last_t_s = t_s
        if last_wall is not None and now > last_wall:
            rate = 1.0 / (now - last_wall)
            stats.input_fps = rate if stats.input_fps == 0 else 0.9 * stats.input_fps + 0.1 * rate
