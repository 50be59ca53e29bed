"""The run's report: what was analysed, for how long each class was on screen, and when."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from stream.records import Segment


@dataclass(frozen=True)
class TimelineEntry:
    t_s: float
    label: str
    confidence: float


@dataclass
class Report:
    source: str  # credentials masked
    model: str
    classes: list[str]
    characters: list[str]
    background: str | None
    samples: int
    duration_s: float
    screen_time_s: dict[str, float]
    segments: list[Segment]
    timeline: list[TimelineEntry]
    dropped: int
    frames_read: int = 0
    every_s: float = 1.0
    device: str = ""
    multi_label: bool = False
    outages: list[dict] = field(default_factory=list)  # [{start_s, end_s}] a live source was down
    reconnects: int = 0
    inferences_saved: int = 0  # samples that reused the previous result (near-duplicate frames)
    ended: str = "end of stream"  # or "interrupted", "duration reached", "source failed: ..."
    started_at: str = ""
    screentime_version: str = ""

    @property
    def share(self) -> dict[str, float]:
        if self.duration_s <= 0:
            return {k: 0.0 for k in self.screen_time_s}
        return {k: v / self.duration_s for k, v in self.screen_time_s.items()}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["screen_time_s"] = {k: round(v, 3) for k, v in self.screen_time_s.items()}
        data["share"] = {k: round(v, 4) for k, v in self.share.items()}
        data["segments"] = [
            {"class": s.label, "start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3)} for s in self.segments
        ]
        data["timeline"] = [
            {"t_s": round(e.t_s, 3), "class": e.label, "confidence": round(e.confidence, 4)} for e in self.timeline
        ]
        data["duration_s"] = round(self.duration_s, 3)
        data["note"] = (
            "multi-label: a frame counts for every character on it, so totals need not add up to the duration"
            if self.multi_label
            else "each sample stands for the time until the next (or an outage); totals add up to duration_s, "
            "which excludes outages"
        )
        return data
