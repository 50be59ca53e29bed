"""The counting of one source, as a pure object: push samples, losses and gaps, finish, report.

`watch` (the pipeline, one sample at a time as they come) and `batch` (a whole video's samples
at once, on the driver) both drive this one tally, so a video counts the same whichever ran it.
It owns what turns probabilities into screen time: the smoother, the verdict
(`stream.model.verdict`), the accountant and the timeline. It reads no clock and starts no thread.

Times come in on the source's own clock. A resumed run (`--resume`) carries an earlier run's
accountant on and its source starts at `offset_s` on that accountant's clock: the offset is
added here, in `at`, and nowhere else.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from stream.counting.accounting import Accountant
from stream.counting.report import Report, TimelineEntry
from stream.counting.smoothing import Smoother
from stream.model.card import ModelCard
from stream.model.verdict import to_prediction
from stream.records import Prediction


def now_utc() -> str:
    """The wall-clock time a report states (`started_at`, `updated_at`)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def is_new(t_s: float, last_t_s: float | None) -> bool:
    """Never count a frame twice: only a frame later than the last one counted counts."""
    return last_t_s is None or t_s > last_t_s


class Tally:
    """One source's samples -> predictions, totals, timeline and report."""

    def __init__(
        self,
        card: ModelCard,
        smoothing: int | None = None,
        carried: Accountant | None = None,
        offset_s: float = 0.0,
        timeline: bool = True,
    ) -> None:
        self.card = card
        window = smoothing if smoothing is not None else int(card.smoothing.get("window", 1))
        self.smoother = Smoother(window)  # samples averaged per verdict: the flag, the model's default, or none
        self.accountant = carried or Accountant(card.classes)
        self.offset_s = offset_s
        self.timeline: list[TimelineEntry] | None = [] if timeline else None
        self.last_t_s: float | None = None  # the last sample counted, on the source's clock
        self.first_t_s: float | None = None

    def at(self, t_s: float) -> float:
        """A time on the source's clock -> on the accountant's (the resume offset, applied once)."""
        return t_s + self.offset_s

    def sample(self, t_s: float, probs: np.ndarray, latency_s: float = 0.0) -> Prediction | None:
        """Count one sample; None for a frame no newer than the last one counted."""
        if not is_new(t_s, self.last_t_s):
            return None
        t = self.at(t_s)
        prediction = to_prediction(self.smoother.push(probs), self.card, t, latency_s)
        self.accountant.sample(t, prediction.present)
        if self.timeline is not None:
            self.timeline.append(TimelineEntry(t, prediction.label, prediction.confidence))
        if self.first_t_s is None:
            self.first_t_s = t_s
        self.last_t_s = t_s
        return prediction

    def lost(self, t_s: float) -> float:
        """The stream was lost at `t_s`; that time on the accountant's clock."""
        t = self.at(t_s)
        self.accountant.lost(t)
        return t

    def gap(self, start_s: float, end_s: float) -> tuple[float, float]:
        """The stream is back after an outage; never average across it."""
        start, end = self.at(start_s), self.at(end_s)
        self.accountant.gap(start, end)
        self.smoother.reset()
        return start, end

    def discontinuity(self, t_s: float, jump_s: float) -> None:
        """The source's timestamps jumped at `t_s` (its clock already made them continuous): listed, not counted."""
        self.accountant.discontinuities.append((self.at(t_s), jump_s))

    def finish(self, end_s: float | None) -> None:
        """Analysed time ends at `end_s` on the source's clock (None: at the last sample)."""
        self.accountant.finish(None if end_s is None else self.at(end_s))

    def running_totals(self, now_s: float) -> dict[str, float]:
        """Totals with the standing sample credited up to `now_s` (source clock), for display."""
        return self.accountant.running_totals(self.at(now_s))

    def outage_s(self, now_s: float | None) -> float:
        return self.accountant.outage_s(None if now_s is None else self.at(now_s))

    def report(self, **meta) -> Report:
        """The report as it stands; `meta` is `Report.from_accountant`'s description of the run."""
        return Report.from_accountant(self.accountant, self.card, timeline=self.timeline, **meta)
