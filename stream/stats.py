"""Live numbers of a run, written by the pipeline and read by the dashboard (and other live sinks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from stream.records import Prediction
from stream.strip import Strip


class RunState(StrEnum):
    """Where one source's run stands; set by the pipeline from the records it consumes."""

    CONNECTING = "connecting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"


@dataclass
class RunStats:
    source: str
    live: bool
    classes: list[str]
    characters: list[str]
    state: RunState = RunState.CONNECTING
    detail: str = ""  # e.g. "retry 3 in 4.2 s", "2 reconnects"
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
    totals: dict[str, float] = field(default_factory=dict)
    recent: Strip = field(default_factory=Strip)  # who was on screen in the last few minutes, bounded
    totals: dict[str, float] = field(default_factory=dict)  # for display: the standing sample counts up to now
    # Seconds credited so far (up to the latest sample, loss or end): they only grow, so counters
    # read them. `totals` can step back a little: the next sample is timestamped at capture,
    # before the moment a display last credited the standing sample up to.
    screen_s: dict[str, float] = field(default_factory=dict)
