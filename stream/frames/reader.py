"""A reader thread per source: grabs frames, decodes the sampled ones, and reports what happens to
the stream in band.

Everything the pipeline learns from the reader travels through one ordered buffer: frames,
`Lost` when a live stream stops delivering, `Gap` when it delivers again, `Discontinuity` where
the source's timestamps jumped (its clock made them continuous), and exactly one `End`,
whatever ended it (end of file, stop, failure). The reader is the only thread that opens,
reads and closes its capture, so a stop never releases a capture another thread is inside.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from stream.frames.buffer import BufferPolicy, FrameBuffer
from stream.frames.crop import AUTO, Cropper, scan_file
from stream.frames.preprocess import fit_frame, thumbnail
from stream.frames.sampler import Sampler
from stream.records import End, EndReason, Frame, Gap, Lost
from stream.sources.capture import Capture
from stream.sources.reconnect import ReconnectPolicy, connect_with_retry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReaderStats:
    """The reader's numbers and its connection's state: a frozen snapshot that the reader thread
    (their only writer) replaces whole, so the pipeline reads each one whole from its own."""

    frames_read: int = 0  # frames seen (timestamps), decoded or not
    decoded: int = 0  # pictures decoded (by the source's count where it keeps one: files, cameras)
    last_t_s: float = 0.0
    frame_interval_s: float | None = None
    dropped: int = 0  # live frames replaced by newer ones before the pipeline took them
    connected: bool = False
    attempt: int = 0  # the reconnect attempt under way (0: none)
    next_retry_in_s: float = 0.0
    reconnects: int = 0
    last_error: str = ""


class FrameReader(threading.Thread):
    """Grabs every frame, decodes only the ones that are sampled (or all, for the overlay video)."""

    def __init__(
        self,
        source: Capture,
        sampler: Sampler,
        buffer: FrameBuffer,
        stop: threading.Event,
        decode_all: bool = False,
        tap: Callable[[Frame], None] | None = None,
        tap_every_s: float = 0.0,
        policy: ReconnectPolicy | None = None,
        model_size: tuple[int, int] | None = None,
        opened: bool = True,
        cropper: Cropper | None = None,
    ) -> None:
        super().__init__(name=f"reader:{source.name}", daemon=True)
        self.source = source
        self.sampler = sampler
        self.buffer = buffer
        self.stop_event = stop
        self.decode_all = decode_all
        self.tap = tap  # sees decoded frames (live overlay video, live view), must not block
        # Without decode_all the tap gets the sampled frames and, between them, a frame decoded for it
        # at most every tap_every_s (the live view needs a few pictures a second, not every one).
        self.tap_every_s = tap_every_s
        self._tapped_t_s = float("-inf")
        self.stats = ReaderStats(connected=opened)
        self.model_size = model_size  # resize sampled frames here, so it overlaps inference
        self.cropper = cropper  # black bars off before the resize (stream.frames.crop)
        self.policy = policy or ReconnectPolicy()
        self._opened = opened  # files are opened by the caller (errors before any output starts)
        self._down_since: float | None = None
        self._index = 0
        self._jumps_seen = 0  # the source's discontinuities already passed on

    def run(self) -> None:
        end: End | None = None
        try:
            end = self._loop()
        except BaseException as exc:  # handed to the consumer in band, which decides what it means
            end = End(EndReason.FAILED, self._clock_end(), exc)
        finally:
            self.source.close()
            self.buffer.put(end or End(EndReason.FAILED, self._clock_end()))

    def _loop(self) -> End:
        if self.cropper is not None and self.cropper.mode == AUTO:
            recording = self.source.recording
            if recording is not None:  # a file's crop from pictures spread over all of it, before its first sample
                try:
                    self.cropper.prime(scan_file(recording))
                except Exception as exc:  # the run decodes the file itself: learn the bars from its samples
                    log.warning("%s: black bars not measured ahead (%s); learnt as it goes", self.source.name, exc)
        if not self._opened and not self._connect():
            return self._stopped()
        while not self.stop_event.is_set():
            t_s = self.source.grab()
            if t_s is None:
                if not self.source.reconnectable:
                    return End(EndReason.END_OF_STREAM, self._frames_end())
                self._lose()
                if not self._connect():
                    return self._stopped()
                continue
            if self._down_since is not None:  # the first frame after a reconnect ends the outage
                self.buffer.put(Gap(self._down_since, t_s))
                self._down_since = None
                self.sampler.restart()  # re-anchor the grid here: this frame is sampled
            self._pass_discontinuities()
            if not self._handle(t_s):
                break
        return self._stopped()

    def _pass_discontinuities(self) -> None:
        """Hand on, in order with the frames, where the source's timestamps jumped."""
        jumps = self.source.discontinuities
        for jump in jumps[self._jumps_seen :]:
            log.warning(
                "%s: timestamps jump by %+.3f s at %.3f s; not counted", self.source.name, jump.jump_s, jump.t_s
            )
            self.buffer.put(jump)
        self._jumps_seen = len(jumps)

    def _handle(self, t_s: float) -> bool:
        """Sample, decode and hand over the frame at `t_s`; False if stopped while waiting for room."""
        stats = self.stats
        interval = t_s - stats.last_t_s if stats.frames_read else stats.frame_interval_s
        self._publish(frames_read=stats.frames_read + 1, last_t_s=t_s, frame_interval_s=interval)
        now = time.monotonic()
        index = self._index
        self._index += 1
        # A source that decodes only what sampling needs says which frames have a picture (and
        # how early one may stand in for a due sample); the sampler waits for one that has.
        source = self.source
        sampled = source.picture_ready and self.sampler.due(t_s, source.early_s)
        counted = source.decoded is not None  # the source counts what its decoder did, sampled or not
        if counted and source.decoded != self.stats.decoded:
            self._publish(decoded=source.decoded)
        tapped = self.tap is not None and (self.decode_all or sampled or t_s - self._tapped_t_s >= self.tap_every_s)
        if not (sampled or self.decode_all or tapped):
            return True
        image = source.retrieve()
        if image is None:
            if sampled:
                log.warning("%s: frame %d could not be decoded; skipped", source.name, index)
            return True
        if not counted:
            self._publish(decoded=self.stats.decoded + 1)
        model_input = thumb = None
        if sampled and self.model_size is not None:
            model_input = fit_frame(self.cropper(image) if self.cropper else image, self.model_size)
            thumb = thumbnail(model_input)  # what the model sees; 10x cheaper than from the full frame
        frame = Frame(image, t_s, index, captured_at=now, sampled=sampled, model_input=model_input, thumb=thumb)
        if tapped and self.tap is not None:
            self._tapped_t_s = t_s
            self.tap(frame)
        if (sampled or self.buffer.policy is BufferPolicy.WAIT) and not self.buffer.put(frame, self.stop_event):
            return False
        if self.buffer.dropped != self.stats.dropped:  # the buffer counts in this thread, on our put
            self._publish(dropped=self.buffer.dropped)
        if sampled and self.sampler.next_due_s is not None:  # a sparse source then decodes only what is needed
            source.skip_to(self.sampler.next_due_s)
        return True

    def _lose(self) -> None:
        """The stream dropped. The outage starts where the last good frame ends (a hang is noticed
        only a timeout later), or now if no frame came since (re)connecting."""
        stats = self.stats
        clock = self.source.clock()
        if self._down_since is None:
            seen = stats.frames_read > 0
            self._down_since = min(clock, stats.last_t_s + (stats.frame_interval_s or 0.0)) if seen else clock
            self.buffer.put(Lost(self._down_since))
            log.warning("%s: stream lost at %.1f s; reconnecting", self.source.name, self._down_since)
        self._publish(connected=False)
        self.source.close()

    def _connect(self) -> bool:
        """Open (or reopen) with backoff; False if stopped first. Raises when retries run out."""
        info = connect_with_retry(
            self.source.open, self.policy, self.stop_event, self._publish, self.source.name, clock=time.monotonic
        )
        if info is None:
            return False
        if self._opened:
            self._publish(reconnects=self.stats.reconnects + 1)
            log.info("%s: reconnected (%dx%d)", self.source.name, info.width, info.height)
        self._opened = True
        return True

    def _publish(self, **changes: object) -> None:
        self.stats = replace(self.stats, **changes)  # type: ignore[arg-type]

    def _stopped(self) -> End:
        if self.source.live:
            return End(EndReason.INTERRUPTED, self._clock_end())
        return End(EndReason.INTERRUPTED, self._frames_end() if self.stats.frames_read else None)

    def _frames_end(self) -> float | None:
        """A file's time ends one frame after its last frame starts (as long as the source says)."""
        if not self.stats.frames_read:
            return None
        return self.source.end_after_s(self.stats.last_t_s, self.stats.frame_interval_s)

    def _clock_end(self) -> float | None:
        if self.source.live:
            return self.source.clock()
        return self._frames_end()
