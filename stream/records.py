"""Records that flow through the pipeline. Times are seconds: media clock for files, monotonic for live."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a source once it is open."""

    width: int
    height: int
    fps: float | None  # as reported; may be 0 or absurd for files, and is only used for output rate
    frame_count: int | None  # as reported; None for live sources
    live: bool

    @property
    def duration_s(self) -> float | None:
        """Approximate length from reported count and rate (progress and ETA only, never accounting)."""
        if self.live or not self.frame_count or not self.fps:
            return None
        return self.frame_count / self.fps


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame. `image` is None for a frame that was grabbed but not decoded."""

    image: np.ndarray | None
    t_s: float
    index: int
    captured_at: float = 0.0  # time.monotonic() when the reader got it, for latency
    sampled: bool = True
    model_input: np.ndarray | None = None  # resized for the model in the reader thread (overlaps inference)
    thumb: np.ndarray | None = None  # tiny grey copy for near-duplicate detection


@dataclass(frozen=True)
class Prediction:
    """The classifier's verdict on one sampled frame."""

    t_s: float
    label: str
    confidence: float
    probs: dict[str, float] = field(default_factory=dict)
    present: tuple[str, ...] = ()  # classes counted on screen (one, or several for multi-label)
    latency_s: float = 0.0


@dataclass(frozen=True)
class Segment:
    """A run of consecutive samples of one class."""

    label: str
    start_s: float
    end_s: float


# Control records: what happens to a stream travels through the reader's buffer in order with its
# frames, so the consumer never polls the reader's internals to find out (the poison-pill idea).


@dataclass(frozen=True)
class Lost:
    """The stream stopped delivering at `t_s` (its last good frame's end); reconnecting."""

    t_s: float
    why: str = ""


@dataclass(frozen=True)
class Gap:
    """The stream was down from `start_s` until its first frame after reconnecting, at `end_s`."""

    start_s: float
    end_s: float


@dataclass(frozen=True)
class Discontinuity:
    """The stream's timestamps jumped by `jump_s` (negative: backwards) just before the frame
    that the source's continuous clock puts at `t_s`; the jump itself is not counted
    (stream.sources.mediaclock)."""

    t_s: float
    jump_s: float


class EndReason(StrEnum):
    END_OF_STREAM = "end of stream"
    INTERRUPTED = "interrupted"  # the caller stopped the run (Ctrl-C, SIGTERM, API stop, --duration on live)
    DURATION = "duration reached"
    FAILED = "source failed"


@dataclass(frozen=True)
class End:
    """The reader is done. `end_s`: where the stream's own time ends (the last frame's end for a
    file, the clock when stopped for a live source); `error` when it failed."""

    reason: EndReason
    end_s: float | None
    error: BaseException | None = None


Item = Frame | Lost | Gap | Discontinuity | End
