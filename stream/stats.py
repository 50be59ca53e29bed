"""Live numbers of a run, written by the pipeline and read by the dashboard."""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.records import Prediction


@dataclass
class RunStats:
    source: str
    live: bool
    classes: list[str]
    characters: list[str]
    state: str = "starting"
    samples: int = 0
    frames_read: int = 0
    dropped: int = 0
    input_fps: float = 0.0
    analysis_fps: float = 0.0
    latency_s: float = 0.0
    elapsed_s: float = 0.0
    t_s: float = 0.0  # media (or live) time of the latest sample
    duration_s: float | None = None  # files: approximate length, for progress and ETA
    device: str = ""
    outages: int = 0
    current: Prediction | None = None
    totals: dict[str, float] = field(default_factory=dict)
