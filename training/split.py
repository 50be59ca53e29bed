"""Validation by time blocks: contiguous runs of frames, never a random pick.

Neighbouring frames are near-duplicates, so a random split puts the twin of every validation
frame in the training set and reports accuracy that does not hold on a new video.
"""

from __future__ import annotations

from dataclasses import dataclass


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
