import numpy as np
import pytest

from training.split import Folds, time_block_split


@pytest.mark.parametrize("n", [50, 298, 1001])
def test_folds_cover_every_frame_once_in_contiguous_blocks(n):
    seen = []
    for fold in range(5):
        split = time_block_split(n, folds=5, fold=fold, gap=2)
        assert not set(split.train) & set(split.val)
        seen += split.val
        runs = sum(1 for a, b in zip(split.val, split.val[1:], strict=False) if b != a + 1) + 1
        assert runs == 2  # two contiguous blocks, far apart in time
    assert sorted(seen) == list(range(n))


def test_gap_keeps_neighbours_of_validation_out_of_training():
    split = time_block_split(100, folds=5, fold=1, gap=3)
    for v in split.val:
        for d in range(1, 4):
            assert v - d in split.val or v - d not in split.train
            assert v + d in split.val or v + d not in split.train


def test_rejects_too_few_frames_and_bad_fold():
    with pytest.raises(ValueError):
        time_block_split(5, folds=5)
    with pytest.raises(ValueError):
        time_block_split(100, folds=5, fold=5)


def test_folds_of_several_sets_cut_each_set_by_its_own_time():
    old, new, tiny = np.arange(100.0), np.arange(0.0, 60.0, 5.0), [0.0, 7.0, 30.0]
    folds = Folds.of_sets([old, new, tiny], folds=5)
    assert len(folds.fold) == 115 and folds.group.tolist() == [0] * 100 + [1] * 12 + [2] * 3
    for k in range(5):
        members = set(folds.group[folds.fold == k].tolist())
        assert {0, 1} <= members  # every fold validates on both videos
    assert folds.fold[112:].tolist() == [0, 1, 2]  # fewer frames than folds: one frame per fold
    # The old set: two contiguous blocks per fold, as `time_block_split`.
    assert [int((folds.fold[:100] == k).sum()) for k in range(5)] == [20] * 5


def test_head_split_never_trains_or_chooses_on_what_it_scores():
    times = [np.arange(100.0), np.arange(0.0, 60.0, 5.0)]
    folds = Folds.of_sets(times, folds=5)
    scored = []
    for k in range(5):
        s = folds.head_split(k, gap_s=2.0)
        assert not set(s.train) & set(s.held_out) and not set(s.train) & set(s.checkpoint)
        assert not set(s.held_out) & set(s.checkpoint)
        assert set(folds.fold[s.held_out]) == {k} and set(folds.fold[s.checkpoint]) == {(k + 1) % 5}
        # No training frame within 2 s of a held-out or checkpoint frame of its own set ...
        for i in s.train:
            near = [j for j in (*s.held_out, *s.checkpoint) if folds.group[j] == folds.group[i]]
            assert all(abs(folds.times_s[i] - folds.times_s[j]) > 2.0 for j in near)
        # ... but the same time in another video is no neighbour: the sparse set loses nothing to the gap.
        sparse = set(np.flatnonzero(folds.group == 1)) - set(s.held_out) - set(s.checkpoint)
        assert sparse <= set(s.train)
        scored += s.held_out.tolist()
    assert sorted(scored) == list(range(112))
