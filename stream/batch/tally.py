"""Samples and their probabilities -> the video's report, by `watch`'s own rules.

The counting is `stream.counting.tally.Tally`, the one `watch`'s pipeline drives sample by sample: here
a whole video's samples are pushed in order, then the file's end, so a video's report cannot
depend on whether `watch` or `batch` analysed it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stream.batch.decode import VideoRecord
from stream.counting.report import Report
from stream.counting.tally import Tally, now_utc
from stream.model.card import ModelCard
from stream.records import EndReason


def tally(
    times_s: Sequence[float], probs: Sequence[np.ndarray], card: ModelCard, end_s: float | None, smoothing: int | None
) -> Tally:
    """Count the samples in order, then end the analysed time where the file's time ends
    (None: at the last sample), as the pipeline does at the end of a file."""
    counted = Tally(card, smoothing)
    for t_s, p in zip(times_s, probs, strict=True):
        counted.sample(t_s, p)
    if times_s:
        counted.finish(end_s if end_s is not None else times_s[-1])
    return counted


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
    counted = tally(record.times_s, probs, card, record.end_s, smoothing)
    for t_s, jump_s in record.discontinuities:
        counted.discontinuity(t_s, jump_s)
    return counted.report(
        source=source,
        model=model,
        ended=str(EndReason.END_OF_STREAM),
        every_s=every_s,
        device=device,
        started_at=record.started_at,
        updated_at=now_utc(),
        frames_read=record.frames_read,
        inferences_saved=record.inferences_saved,
        model_sha256=model_sha256,
        crop=record.crop,
    )
