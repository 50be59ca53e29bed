"""Samples and their probabilities -> the video's report, by `watch`'s own rules.

The pieces are the pipeline's: `to_prediction` turns probabilities into a verdict, the
`Smoother` averages them as `watch --smooth` does, the `Accountant` owns the time, and
`Report.from_accountant` writes it down. Only the order of calls is spelled here, because in
the pipeline it is spread over a live loop with sinks and a dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stream.accounting import Accountant
from stream.batch.decode import VideoRecord
from stream.modelcard import ModelCard
from stream.pipeline import now_utc, to_prediction
from stream.records import EndReason
from stream.report import Report, TimelineEntry
from stream.smoothing import Smoother


def tally(
    times_s: Sequence[float], probs: Sequence[np.ndarray], card: ModelCard, end_s: float | None, smoothing: int | None
) -> tuple[Accountant, list[TimelineEntry]]:
    """Count the samples in order, then end the analysed time where the file's time ends
    (None: at the last sample), as the pipeline does at the end of a file."""
    window = smoothing if smoothing is not None else int(card.smoothing.get("window", 1))
    smoother = Smoother(window)
    accountant = Accountant(card.classes)
    timeline: list[TimelineEntry] = []
    for t_s, p in zip(times_s, probs, strict=True):
        prediction = to_prediction(smoother.push(p), card, t_s)
        accountant.sample(t_s, prediction.present)
        timeline.append(TimelineEntry(t_s, prediction.label, prediction.confidence))
    if times_s:
        accountant.finish(end_s if end_s is not None else times_s[-1])
    return accountant, timeline


def video_report(
    record: VideoRecord,
    inferred: dict[int, np.ndarray],
    card: ModelCard,
    *,
    source: str,
    model: str,
    model_sha256: str,
    every_s: float,
    device: str,
    smoothing: int | None = None,
) -> Report:
    """The report `watch --report` writes for this video: each sample takes the probabilities
    of the picture it was inferred from (itself, or the last one before it for a near-duplicate)."""
    probs = [inferred[seq] for seq in record.origin]
    accountant, timeline = tally(record.times_s, probs, card, record.end_s, smoothing)
    report = Report.from_accountant(
        accountant,
        card,
        source=source,
        model=model,
        ended=str(EndReason.END_OF_STREAM),
        timeline=timeline,
        every_s=every_s,
        device=device,
        started_at=record.started_at,
        updated_at=now_utc(),
        frames_read=record.frames_read,
        inferences_saved=record.inferences_saved,
        model_sha256=model_sha256,
    )
    report.crop = record.crop
    return report
