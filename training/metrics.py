"""Classification metrics as plain numpy, shared by `train` and `evaluate`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stream.model.card_metrics import CardMetrics, Counts
from stream.model.verdict import VerdictRule, verdict


def confusion(true: Sequence[int], pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, int), np.asarray(pred, int)), 1)
    return matrix


def summarize(true: Sequence[int], pred: Sequence[int], classes: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall/support and the confusion matrix, JSON-ready."""
    matrix = confusion(true, pred, len(classes))
    total = int(matrix.sum())
    per_class = {}
    for i, name in enumerate(classes):
        tp = int(matrix[i, i])
        predicted, actual = int(matrix[:, i].sum()), int(matrix[i, :].sum())
        per_class[name] = {
            "precision": tp / predicted if predicted else None,
            "recall": tp / actual if actual else None,
            "support": actual,
        }
    return {
        "accuracy": float(np.trace(matrix) / total) if total else None,
        "samples": total,
        "per_class": per_class,
        "confusion": matrix.tolist(),
    }


def summarize_sets(true: Sequence[tuple[int, ...]], pred: Sequence[tuple[int, ...]], classes: Sequence[str]) -> dict:
    """Multi-label: exact-match accuracy and per-class precision/recall of presence."""
    per_class = {}
    for i, name in enumerate(classes):
        tp = sum(1 for t, p in zip(true, pred, strict=True) if i in t and i in p)
        predicted = sum(1 for p in pred if i in p)
        actual = sum(1 for t in true if i in t)
        per_class[name] = {
            "precision": tp / predicted if predicted else None,
            "recall": tp / actual if actual else None,
            "support": actual,
        }
    exact = sum(1 for t, p in zip(true, pred, strict=True) if set(t) == set(p))
    return {"accuracy": exact / len(true) if true else None, "samples": len(true), "per_class": per_class}


def presence_counts(
    true: Sequence[tuple[int, ...]], pred: Sequence[tuple[int, ...]], classes: Sequence[str], background: int | None
) -> dict[str, Counts]:
    """Per class, (true pos, false pos, false neg, true neg) of "on screen" over held-out frames:
    what the screen-time interval (stream.confidence.interval) needs to know of the model's mistakes.
    Single- and multi-label alike; the background class is counted like any other."""
    counts: dict[str, Counts] = {}
    for i, name in enumerate(classes):
        t = np.asarray([i in s for s in true], bool)
        p = np.asarray([i in s for s in pred], bool)
        counts[name] = (int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum()), int((~t & ~p).sum()))
    return counts


def design_effect(wrong_runs: Sequence[Sequence[bool]], block: int = 10, cap: float = 50.0) -> float:
    """How many consecutive frames carry the information of one, judged by the mistakes.

    Neighbouring frames of a video are wrong together (one scene fools the model for its whole
    length), so n held-out frames know less than n independent ones. Batch means: cut each
    time-ordered sequence (one per set) into blocks of `block` frames; if mistakes were
    independent, the blocks' error rates would vary as p(1 - p) / block. The ratio of their
    actual variance to that is the design effect (at least 1): the factor by which correlated
    mistakes inflate the variance of a count.
    """
    means = [float(np.mean(run[i : i + block])) for run in wrong_runs for i in range(0, len(run) - block + 1, block)]
    total = [bool(w) for run in wrong_runs for w in run]
    p = float(np.mean(total)) if total else 0.0
    if len(means) < 4 or p in (0.0, 1.0):
        return 1.0
    return float(min(max(block * float(np.var(means, ddof=1)) / (p * (1 - p)), 1.0), cap))


def verdicts(
    labels: Sequence[tuple[int, ...]], probs: np.ndarray, background: int | None, multi_label: bool
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """(true, predicted) class sets per frame, as `train` and `evaluate` both score them.
    Single-label: one class each (the argmax; as truth, the predicted class where the label
    names it among several, else the label's first). Multi-label: the characters on the frame
    (the background only where none is). Predicted: `stream.model.verdict`, the rule `watch` counts by."""
    rule = VerdictRule(multi_label, background)
    predicted = [verdict(row, rule) for row in probs]
    if multi_label:
        return [tuple(c for c in lab if c != background) or tuple(lab) for lab in labels], predicted
    # A frame labelled with several classes (`1;2`): a single verdict is right when it names one.
    truth: list[tuple[int, ...]] = [
        (p[0],) if p[0] in lab else (lab[0],) for lab, p in zip(labels, predicted, strict=True)
    ]
    return truth, predicted


def score(
    truth: Sequence[tuple[int, ...]], predicted: Sequence[tuple[int, ...]], classes: Sequence[str], multi_label: bool
) -> dict:
    """`summarize_sets` for multi-label models, else `summarize` of the single classes."""
    if multi_label:
        return summarize_sets(truth, predicted, classes)
    return summarize([t[0] for t in truth], [p[0] for p in predicted], classes)


def heldout_mistakes(
    truth: Sequence[tuple[int, ...]],
    predicted: Sequence[tuple[int, ...]],
    runs: Sequence[Sequence[int] | np.ndarray],
    classes: Sequence[str],
    background: int | None,
) -> CardMetrics:
    """What the model card states of the model's held-out mistakes, for the screen-time
    intervals (stream.confidence.interval): presence counts per class and the mistakes' design effect over
    `runs` (index lists into `truth`, one per labelled set, in time order); the card's other
    metrics are left at their defaults."""
    wrong = [set(t) != set(p) for t, p in zip(truth, predicted, strict=True)]
    return CardMetrics(
        heldout_counts=presence_counts(truth, predicted, classes, background),
        heldout_design_effect=round(design_effect([[wrong[i] for i in run] for run in runs]), 3),
    )
