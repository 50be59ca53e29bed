"""Screen time with an error bar: what the model's held-out mistakes say the true total could be.

For one character, a run counts S seconds in which the model said "on screen" and D - S in which
it said "not". Cross-validation at training counted, on frames the scoring head never trained on
(or chose its checkpoint on), how often an "on" verdict was right (tp of tp + fp) and how often
an "off" verdict missed the character (fn of fn + tn). The true total is then

    S * (share of "on" samples truly on) + (D - S) * (share of "off" samples truly on)

and both shares are uncertain twice over: the rates come from a few hundred labelled frames
(Beta posteriors, Jeffreys prior) and the run's own samples scatter around them (binomial).
A seeded Monte Carlo over both gives the interval, so one report always states the same one.
Mistakes come in runs (a scene fools the model for its whole length), so both the held-out
counts and the run's samples are worth fewer independent observations than their number: the
counts are divided by the held-out mistakes' design effect, and the run's samples are capped at
one per correlation time (that effect times the spacing of the training frames).

What it covers: footage like the labelled frames. On a new show, season or camera the held-out
rates do not hold, and neither does the interval; label a few frames of it (README, "New
footage"). The rates are those of unsmoothed frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stream.model.card_metrics import CardMetrics

LEVEL = 0.9
DRAWS = 4000
COVERS = (
    "{level:.0%} interval for the true seconds, from the model's held-out mistakes at training "
    "(cross-validation) and the number of samples; valid for footage like the training frames, "
    "not on another show or print (audit the video for that); `estimate` is its point estimate, "
    "the count corrected for the model's held-out mistakes"
)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    expected: float  # the mean of the draws: the count corrected for the model's known bias
    estimate: float = float("nan")  # the median of the draws: the interval's own point estimate, always inside it

    def contains(self, seconds: float) -> bool:
        return self.low <= seconds <= self.high


def interval(
    on_s: float,
    duration_s: float,
    samples: int,
    counts: Sequence[int],
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = 0,
    design_effect: float = 1.0,
    correlation_s: float = 0.0,
) -> Interval:
    """Interval for one class's true seconds, given `on_s` of `duration_s` counted "on" over
    `samples` samples and the held-out presence `counts` (tp, fp, fn, tn). `design_effect`
    deflates the counts; `correlation_s` caps the samples at one per that many seconds. Samples
    are split between "on" and "off" in proportion to their seconds."""
    tp, fp, fn, tn = (float(c) / max(design_effect, 1.0) for c in counts)
    if correlation_s > 0 and duration_s > 0:
        samples = min(samples, max(1, round(duration_s / correlation_s)))
    off_s = max(duration_s - on_s, 0.0)
    n_on = round(samples * on_s / duration_s) if duration_s > 0 else 0
    n_off = max(samples - n_on, 0)
    rng = np.random.default_rng(seed)
    right_when_on = rng.beta(tp + 0.5, fp + 0.5, draws)
    missed_when_off = rng.beta(fn + 0.5, tn + 0.5, draws)
    on_share = rng.binomial(n_on, right_when_on) / n_on if n_on else right_when_on
    off_share = rng.binomial(n_off, missed_when_off) / n_off if n_off else missed_when_off
    true_s = on_s * on_share + off_s * off_share
    low, high = np.quantile(true_s, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(low), float(high), float(true_s.mean()), float(np.median(true_s)))


def intervals(
    totals_s: Mapping[str, float],
    duration_s: float,
    samples: int,
    heldout_counts: Mapping[str, Sequence[int]],
    level: float = LEVEL,
    design_effect: float = 1.0,
    correlation_s: float = 0.0,
) -> dict[str, Interval]:
    """An interval per class that has held-out counts (a model card without them gives none)."""
    return {
        name: interval(
            seconds,
            duration_s,
            samples,
            heldout_counts[name],
            level,
            design_effect=design_effect,
            correlation_s=correlation_s,
        )
        for name, seconds in totals_s.items()
        if name in heldout_counts and len(heldout_counts[name]) == 4
    }


def card_intervals(
    totals_s: Mapping[str, float], duration_s: float, samples: int, card_metrics: CardMetrics, level: float = LEVEL
) -> dict[str, Interval]:
    """`intervals` with what the model card says of its held-out mistakes (counts, their design
    effect, the training frames' spacing); none for a card without counts."""
    deff = card_metrics.heldout_design_effect
    return intervals(
        totals_s, duration_s, samples, card_metrics.heldout_counts, level, deff, deff * card_metrics.frame_spacing_s
    )
