"""Validation by time blocks: contiguous runs of frames, never a random pick.

Neighbouring frames are near-duplicates, so a random split puts the twin of every validation
frame in the training set and reports accuracy that does not hold on a new video.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    train: list[int]
    val: list[int]


def time_block_split(n: int, folds: int = 5, fold: int = 0, blocks_per_fold: int = 2, gap: int = 2) -> Split:
    """Cut `n` time-ordered frames into `folds * blocks_per_fold` contiguous blocks.

    Fold `fold` validates on blocks fold, fold + folds, ... (spread over the video, so one
    scene cannot be the whole validation set); `gap` frames either side of each validation
    block are left out of training so no near-duplicate straddles the border.
    """
    if folds < 2:
        raise ValueError("need at least 2 folds")
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in 0..{folds - 1}")
    n_blocks = folds * blocks_per_fold
    if n < n_blocks:
        raise ValueError(f"{n} frames are too few for {n_blocks} time blocks")
    bounds = [round(i * n / n_blocks) for i in range(n_blocks + 1)]
    val: list[int] = []
    excluded: set[int] = set()
    for b in range(fold, n_blocks, folds):
        lo, hi = bounds[b], bounds[b + 1]
        val.extend(range(lo, hi))
        excluded.update(range(max(0, lo - gap), min(n, hi + gap)))
    return Split(train=[i for i in range(n) if i not in excluded], val=val)


GAP_S = 2.0  # frames this close in time to a validation frame are near-duplicates of it


@dataclass(frozen=True)
class HeadSplit:
    """What one head of the ensemble sees: it fits on `train`, keeps the weights of its best epoch
    on `checkpoint`, and is scored on `held_out`, frames it neither trained on nor chose by."""

    train: np.ndarray
    checkpoint: np.ndarray
    held_out: np.ndarray


@dataclass(frozen=True)
class Folds:
    """The time-block fold of every labelled frame of one or more sets.

    Each set (one video's frames, in time order) is cut into blocks on its own, so fold k holds
    time blocks of every set: an old episode and a few dozen frames of a new one are both
    validated on. A set too small for `folds * blocks_per_fold` blocks gets one block per fold,
    and one with fewer frames than folds one frame per fold.
    """

    fold: np.ndarray  # (N,) fold id of each frame
    group: np.ndarray  # (N,) index of the set each frame comes from
    times_s: np.ndarray  # (N,) the frame's time in its own video
    n_folds: int

    @classmethod
    def of_sets(
        cls, times_by_set: Sequence[Sequence[float] | np.ndarray], folds: int = 5, blocks_per_fold: int = 2
    ) -> Folds:
        if folds < 2:
            raise ValueError("need at least 2 folds")
        fold_ids: list[np.ndarray] = []
        groups: list[np.ndarray] = []
        for g, times in enumerate(times_by_set):
            n = len(times)
            blocks = folds * blocks_per_fold if n >= folds * blocks_per_fold else min(folds, n)
            block = (np.arange(n) * blocks) // max(n, 1)
            fold_ids.append(block % folds)
            groups.append(np.full(n, g))
        times = [float(t) for ts in times_by_set for t in ts]
        return cls(
            np.concatenate(fold_ids or [np.empty(0)]).astype(int),
            np.concatenate(groups or [np.empty(0)]).astype(int),
            np.asarray(times, float),
            folds,
        )

    def head_split(self, k: int, gap_s: float = GAP_S) -> HeadSplit:
        """Head k is scored on fold k and picks its checkpoint on fold k + 1; neighbours (within
        `gap_s`, same set) of either are kept out of its training frames."""
        held, check = k % self.n_folds, (k + 1) % self.n_folds
        held_out = np.flatnonzero(self.fold == held)
        checkpoint = np.flatnonzero(self.fold == check)
        kept_out = np.zeros(len(self.fold), bool)
        kept_out[held_out] = kept_out[checkpoint] = True
        for idx in (held_out, checkpoint):
            near = (self.group[:, None] == self.group[idx][None, :]) & (
                np.abs(self.times_s[:, None] - self.times_s[idx][None, :]) <= gap_s
            )
            kept_out |= near.any(axis=1)
        return HeadSplit(np.flatnonzero(~kept_out), checkpoint, held_out)
