"""Classification metrics as plain numpy, shared by `train` and `evaluate`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
