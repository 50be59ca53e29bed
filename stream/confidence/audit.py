"""An audit: a few sampled frames of the analysed video, labelled by a person, turn the model's
totals into estimates whose interval holds on this very video, whatever its style.

Design-based and model-assisted (the difference estimator of survey sampling; "prediction-powered
inference", Angelopoulos et al., Science 2023): the video's samples are the population, each
standing for `weight_s` seconds; the model has a verdict on every one. The true seconds of a class
are the model's seconds plus the total of the corrections `weight_s * (truth - verdict)`, and
that total is estimated from the labelled draws, each weighted by the inverse of its inclusion
probability. Nothing is assumed of the model: a model that is often wrong gives a wide interval,
one that is never wrong on the draws a zero correction. Power tuning (PPI++, Angelopoulos et al.
2023) leans on the model only as far as its verdicts follow the truth on the draws: the
estimate is lambda * model's seconds + the weighted `truth - lambda * verdict`, lambda in [0, 1]
chosen for the smallest variance, so a poor model leaves the interval about as wide as the
labels alone would make it, not wider. The draw is stratified over time
(the video cut into n runs of consecutive samples, one frame drawn from each), which is where
mistakes cluster; the variance comes from the differences between neighbouring strata
(successive differences, as for a systematic sample: conservative when the truth drifts over
time), never below what n draws cannot rule out when they see no mistake (see `estimate`),
with the finite-population correction and a Student t quantile (n - 1 degrees of freedom).

Only the model's verdicts (the report's timeline) are used: the timeline keeps no per-class
probabilities, so the correction is of hard verdicts. Any frame labelled after the draw and put
into training makes a new model; its audit must be drawn afresh.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

LEVEL = 0.9
METHOD = (
    "{level:.0%} interval: model's seconds + inverse-probability-weighted correction from {n} labelled frames "
    "drawn at random, one per time stratum (prediction-powered estimator, power-tuned: PPI++; successive-difference "
    "variance, floored where no mistake is seen, finite-population correction, Student t); "
    "valid for this video whatever its style"
)


@dataclass(frozen=True)
class Draw:
    """One sampled frame of the audit: its sample's index in the timeline, its stratum, and the
    probability that it was drawn (1 / the stratum's size)."""

    index: int
    stratum: int
    stratum_size: int

    @property
    def probability(self) -> float:
        return 1.0 / self.stratum_size


@dataclass(frozen=True)
class AuditEstimate:
    estimate_s: float
    low_s: float
    high_s: float
    standard_error_s: float
    model_weight: float = 1.0  # how much of the model's total the estimate leans on (PPI++'s lambda)

    @property
    def half_width_s(self) -> float:
        return (self.high_s - self.low_s) / 2


def sample_weights(times_s: Sequence[float], end_s: float) -> list[float]:
    """Seconds each sample stands for: until the next sample, the last until `end_s` (the rule
    the accountant applies to a file's samples)."""
    times = list(times_s)
    return [b - a for a, b in itertools.pairwise(times)] + ([max(end_s - times[-1], 0.0)] if times else [])


def strata(population: int, n: int) -> list[range]:
    """`population` consecutive samples cut into `n` runs as equal as possible (time order)."""
    if not 1 <= n <= population:
        raise ValueError(f"cannot draw {n} frames from {population} samples")
    bounds = [round(i * population / n) for i in range(n + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


def draw(population: int, n: int, seed: int) -> list[Draw]:
    """One sample drawn uniformly from each of `n` time strata; seeded: one seed, one draw."""
    rng = np.random.default_rng(seed)
    return [Draw(int(rng.integers(s.start, s.stop)), h, len(s)) for h, s in enumerate(strata(population, n))]


def t_quantile(p: float, df: int) -> float:
    """Student t quantile (Cornish-Fisher expansion about the normal; exact for df 1 and 2, within
    0.001 from df 3 at the levels used here), so the stream side needs no SciPy."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) * math.sqrt(2 / (4 * p * (1 - p)))
    z = NormalDist().inv_cdf(p)
    v = float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
    )


def estimate(
    model_s: float,
    corrections_s: Sequence[float],
    draws: Sequence[Draw],
    population: int,
    level: float = LEVEL,
    mean_weight_s: float = 1.0,
) -> AuditEstimate:
    """One class's true seconds: `model_s` (the model's total over the whole video) plus the
    inverse-probability-weighted total of the drawn samples' corrections (seconds: weight * (truth
    - verdict), one per draw, one draw per stratum, strata in time order). With `model_s` 0 and
    the drawn samples' own true seconds as corrections, it is the estimate from the labels alone.

    Mistakes are rare events: 20 draws from a model wrong on one sample in ten see none a tenth
    of the time, and the sample variance then says "no doubt at all". So the variance is never
    below that of a mistake rate of z^2/2 pseudo-mistakes in n + z^2 draws (Agresti-Coull's
    adjustment with no mistake seen) times a typical sample's seconds (`mean_weight_s`): the
    interval stays open by what n draws cannot rule out."""
    n = len(draws)
    if n < 4 or n != len(corrections_s):
        raise ValueError("an audit needs at least 4 labelled draws, one correction each")
    by_stratum = sorted(zip(draws, corrections_s, strict=True), key=lambda dc: dc[0].stratum)
    totals = np.array([c / d.probability for d, c in by_stratum])  # each stratum's estimated total
    variance = n / (2 * (n - 1)) * float(np.sum(np.diff(totals) ** 2))  # successive differences
    z2 = NormalDist().inv_cdf((1 + level) / 2) ** 2
    rate = (z2 / 2) / (n + z2)
    floor = (population * mean_weight_s) ** 2 * rate * (1 - rate) / (n + z2)
    variance = max(variance, floor) * max(0.0, 1.0 - n / population)
    se = math.sqrt(variance)
    value = model_s + float(totals.sum())
    half = t_quantile((1 + level) / 2, n - 1) * se
    return AuditEstimate(value, value - half, value + half, se)


def model_weight(truth_s: Sequence[float], model_s: Sequence[float], draws: Sequence[Draw]) -> float:
    """How far to lean on the model (PPI++ power tuning, Angelopoulos et al. 2023): the lambda in
    [0, 1] that minimises the successive-difference variance of the drawn samples' weighted
    `truth - lambda * verdict`. 1: the model's total plus the corrections (PPI); 0: the labels
    alone, for a model whose verdicts vary less with the truth than its mistakes do."""
    order = sorted(range(len(draws)), key=lambda j: draws[j].stratum)
    a = np.array([truth_s[j] / draws[j].probability for j in order])
    b = np.array([model_s[j] / draws[j].probability for j in order])
    da, db = np.diff(a), np.diff(b)
    spread = float(np.sum(db * db))
    return float(np.clip(np.sum(da * db) / spread, 0.0, 1.0)) if spread > 0 else 1.0


def audit(
    classes: Sequence[str],
    predicted: Sequence[Sequence[str]],
    weights_s: Sequence[float],
    draws: Sequence[Draw],
    truth: Sequence[Sequence[str]],
    level: float = LEVEL,
) -> dict[str, AuditEstimate]:
    """Per class, the audited seconds. `predicted[i]`/`weights_s[i]`: the model's classes and
    the seconds of every sample of the video; `truth[j]`: the classes a person saw on `draws[j]`
    (a frame showing two characters counts for both). The model's total enters with the weight
    `model_weight` finds (1 for a model whose verdicts follow the truth: a zero correction for one
    that is always right)."""
    result = {}
    for name in classes:
        model_s = sum(w for p, w in zip(predicted, weights_s, strict=True) if name in p)
        seen_s = [weights_s[d.index] * (name in seen) for d, seen in zip(draws, truth, strict=True)]
        said_s = [weights_s[d.index] * (name in predicted[d.index]) for d in draws]
        lam = model_weight(seen_s, said_s, draws)
        corrections = [s - lam * m for s, m in zip(seen_s, said_s, strict=True)]
        found = estimate(lam * model_s, corrections, draws, len(weights_s), level, _mean(weights_s))
        result[name] = AuditEstimate(found.estimate_s, found.low_s, found.high_s, found.standard_error_s, lam)
    return result


def labels_alone(
    classes: Sequence[str],
    weights_s: Sequence[float],
    draws: Sequence[Draw],
    truth: Sequence[Sequence[str]],
    level: float = LEVEL,
) -> dict[str, AuditEstimate]:
    """The same draws without the model: what the labels alone say (for comparison)."""
    return {
        name: estimate(
            0.0,
            [weights_s[d.index] * (name in seen) for d, seen in zip(draws, truth, strict=True)],
            draws,
            len(weights_s),
            level,
            _mean(weights_s),
        )
        for name in classes
    }


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def audit_record(found: dict[str, AuditEstimate], n: int, level: float = LEVEL, **extra) -> dict:
    """What the report's `audit` states."""
    return {
        "n": n,
        "level": level,
        "estimate_s": {k: round(v.estimate_s, 3) for k, v in found.items()},
        "interval_s": {k: [round(max(v.low_s, 0.0), 3), round(v.high_s, 3)] for k, v in found.items()},
        "model_weight": {k: round(v.model_weight, 3) for k, v in found.items()},
        "method": METHOD.format(level=level, n=n),
        **extra,
    }
