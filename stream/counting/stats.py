"""Live numbers of a run: frozen snapshots, made by the pipeline's thread (its only writer) and
read whole by the dashboard, metrics and live view from theirs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from stream.counting.strip import Strip
from stream.records import Prediction


class RunState(StrEnum):
    """Where one source's run stands; set by the pipeline from the records it consumes."""

    CONNECTING = "connecting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"


@dataclass(frozen=True)
class RunStats:
    source: str
    live: bool
    classes: list[str]
    characters: list[str]
    state: RunState = RunState.CONNECTING
    retry_attempt: int = 0  # live: the reconnect attempt under way (0: none)
    next_retry_in_s: float = 0.0  # live: seconds until that attempt
    samples: int = 0
    frames_read: int = 0
    dropped: int = 0
    decoded_fps: float = 0.0  # pictures decoded per second of wall time
    sampled_fps: float = 0.0  # samples counted per second
    analysed_fps: float = 0.0  # model inferences per second (near-duplicates reuse a result instead)
    latency_s: float = 0.0
    elapsed_s: float = 0.0
    t_s: float = 0.0  # media (or live) time of the latest sample
    duration_s: float | None = None  # files: approximate length, for progress and ETA
    device: str = ""
    outages: int = 0
    outage_s: float = 0.0  # seconds down so far, the current outage included
    reconnects: int = 0
    decoded: int = 0  # pictures decoded so far
    inferences: int = 0  # model runs so far
    inferences_saved: int = 0  # samples that reused a near-duplicate's result
    inference_s: float = 0.0  # the latest model run's time per frame
    current: Prediction | None = None
    recent: Strip = field(default_factory=Strip)  # who was on screen in the last few minutes (thread-safe)
    totals: dict[str, float] = field(default_factory=dict)  # for display: the standing sample counts up to now
    # Seconds credited so far (up to the latest sample, loss or end): they only grow, so counters
    # read them. `totals` can step back a little: the next sample is timestamped at capture,
    # before the moment a display last credited the standing sample up to.
    screen_s: dict[str, float] = field(default_factory=dict)
