"""The run's report: what was analysed, for how long each class was on screen, and when.

Written at every checkpoint of a live run (`ended` is "running" then, with the segments still
open listed apart) and at the end. Times are kept exact in memory, so totals add up, and
rounded to the millisecond where they are written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.confidence.interval import COVERS, LEVEL, Interval, card_intervals
from stream.counting.accounting import Accountant
from stream.model.card import ModelCard
from stream.model.card_metrics import CardMetrics
from stream.records import Segment
from stream.version import __version__

RUNNING = "running"  # `ended` of a checkpoint written while the run goes on


def ms(seconds: float) -> float:
    """A time as written: milliseconds, no float noise (180.00000000000003 -> 180.0)."""
    return round(seconds, 3)


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
    timeline: list[TimelineEntry] | None  # files only: a live run's timeline is on disk (--csv), not in memory
    dropped: int
    frames_read: int = 0
    every_s: float = 1.0
    device: str = ""
    multi_label: bool = False
    outages: list[dict[str, float]] = field(default_factory=list)  # [{start_s, end_s}] a live source was down
    reconnects: int = 0
    discontinuities: list[dict[str, float]] = field(
        default_factory=list
    )  # [{t_s, jump_s}] timestamp jumps, not counted
    inferences_saved: int = 0  # samples that reused the previous result (near-duplicate frames)
    ended: str = "end of stream"  # or "running", "interrupted", "duration reached", "source failed: ..."
    started_at: str = ""
    updated_at: str = ""  # wall clock (UTC) of this write
    start_s: float = 0.0  # the first sample, on the source's clock
    end_s: float = 0.0  # analysed up to here, on the source's clock
    open_segments: list[Segment] = field(default_factory=list)  # checkpoints: still open at end_s
    resumed: int = 0  # how many earlier runs' totals this report carries on (--resume)
    screentime_version: str = ""
    model_sha256: str = ""  # of the ONNX file that ran (the INT8 twin when chosen): which weights made these numbers
    card_metrics: CardMetrics = field(
        default_factory=CardMetrics
    )  # the model card's (held-out mistakes: the intervals)
    crop: dict | None = None  # black bars cut before the model saw each frame (stream.frames.crop); None: not stated
    audit: dict | None = None  # totals corrected by labelled sampled frames (stream.confidence.audit)

    @classmethod
    def from_accountant(
        cls,
        accountant: Accountant,
        card: ModelCard,
        *,
        source: str,
        model: str,
        ended: str,
        timeline: list[TimelineEntry] | None,
        every_s: float,
        device: str,
        started_at: str,
        updated_at: str,
        frames_read: int = 0,
        dropped: int = 0,
        reconnects: int = 0,
        inferences_saved: int = 0,
        resumed: int = 0,
        model_sha256: str = "",
        crop: dict | None = None,
    ) -> Report:
        """The report as the accountant stands. `watch`'s pipeline and `batch` both build it here,
        so a file's report cannot depend on which of them analysed it."""
        acc = accountant
        background = card.classes[card.background] if card.background is not None else None
        end_s = acc.accounted_until_s
        return cls(
            source=source,
            model=model,
            classes=list(card.classes),
            characters=list(card.characters),
            background=background,
            samples=acc.samples,
            duration_s=acc.duration_s,
            screen_time_s=dict(acc.totals_s),
            segments=acc.segments(),
            timeline=list(timeline) if timeline is not None else None,
            dropped=dropped,
            frames_read=frames_read,
            every_s=every_s,
            device=device,
            multi_label=card.multi_label,
            outages=[{"start_s": a, "end_s": b} for a, b in acc.outages],
            reconnects=reconnects,
            discontinuities=[{"t_s": t, "jump_s": j} for t, j in acc.discontinuities],
            inferences_saved=inferences_saved,
            ended=ended,
            started_at=started_at,
            updated_at=updated_at,
            start_s=acc.start_s or 0.0,
            end_s=end_s,
            open_segments=[Segment(label, start, end_s) for label, start in acc.open.items()],
            resumed=resumed,
            screentime_version=__version__,
            model_sha256=model_sha256,
            card_metrics=card.metrics,
            crop=crop,
        )

    @property
    def share(self) -> dict[str, float]:
        if self.duration_s <= 0:
            return dict.fromkeys(self.screen_time_s, 0.0)
        return {k: v / self.duration_s for k, v in self.screen_time_s.items()}

    @property
    def intervals(self) -> dict[str, Interval]:
        """Per class, where the true seconds likely lie (stream.confidence.interval); empty for models
        whose card has no held-out counts."""
        return card_intervals(self.screen_time_s, self.duration_s, self.samples, self.card_metrics)

    def to_dict(self) -> dict:
        data = {
            "source": self.source,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "classes": self.classes,
            "characters": self.characters,
            "background": self.background,
            "ended": self.ended,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "samples": self.samples,
            "every_s": self.every_s,
            "start_s": ms(self.start_s),
            "end_s": ms(self.end_s),
            "duration_s": ms(self.duration_s),
            "screen_time_s": {k: ms(v) for k, v in self.screen_time_s.items()},
            "share": {k: round(v, 4) for k, v in self.share.items()},
            **self._intervals(),
            "segments": [_segment(s) for s in self.segments],
            "open_segments": [{"class": s.label, "start_s": ms(s.start_s)} for s in self.open_segments],
            "outages": [{"start_s": ms(o["start_s"]), "end_s": ms(o["end_s"])} for o in self.outages],
            "reconnects": self.reconnects,
            "discontinuities": [{"t_s": ms(d["t_s"]), "jump_s": ms(d["jump_s"])} for d in self.discontinuities],
            "dropped": self.dropped,
            "frames_read": self.frames_read,
            "inferences_saved": self.inferences_saved,
            "device": self.device,
            "multi_label": self.multi_label,
            "resumed": self.resumed,
            "screentime_version": self.screentime_version,
        }
        if self.crop is not None:
            data["crop"] = self.crop
        if self.audit is not None:
            data["audit"] = self.audit
        if self.timeline is not None:
            data["timeline"] = [
                {"t_s": ms(e.t_s), "class": e.label, "confidence": round(e.confidence, 4)} for e in self.timeline
            ]
        data["note"] = (
            "multi-label: a frame counts for every character on it, so totals need not add up to the duration"
            if self.multi_label
            else "each sample stands for the time until the next (or an outage); totals add up to duration_s, "
            "which excludes outages"
        )
        return data

    def _intervals(self) -> dict:
        found = self.intervals
        if not found:
            return {}
        return {
            "screen_time_interval_s": {
                k: {"low": ms(v.low), "high": ms(v.high), "estimate": ms(v.estimate)} for k, v in found.items()
            },
            "interval": COVERS.format(level=LEVEL),
        }


def _segment(segment: Segment) -> dict:
    return {"class": segment.label, "start_s": ms(segment.start_s), "end_s": ms(segment.end_s)}
