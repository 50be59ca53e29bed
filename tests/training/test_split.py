import pytest

from training.split import time_block_split


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
