"""The dashboard's recent-history strip: cells of fixed length, bounded memory, frozen snapshots."""

from __future__ import annotations

import pytest

from stream.counting.strip import Strip


def test_samples_fall_into_cells_and_gaps_stay_empty():
    strip = Strip(cell_s=2.0, cells=5)
    for t, present in [(0.0, ["jerry"]), (1.0, ["tom"]), (2.5, ["jerry"]), (7.9, ["jerry", "tom"])]:
        strip.add(t, present)
    window = strip.window()
    assert len(window) == 5  # cells 0..3, ending with the latest (index 3: 6 s to 8 s)
    assert [c.index if c else None for c in window] == [None, 0, 1, None, 3]
    first = window[1]
    assert first.samples == 2 and first.share("jerry") == 0.5 and first.share("tom") == 0.5
    assert window[4].share("jerry") == window[4].share("tom") == 1.0
    with pytest.raises(TypeError):
        first.present["jerry"] = 9  # a snapshot cannot change under the reader


def test_memory_is_bounded_by_cells_not_by_run_length():
    strip = Strip(cell_s=1.0, cells=10)
    for i in range(10_000):
        strip.add(i * 0.25, ["jerry"])
    cells = strip.snapshot()
    assert len(cells) == 10 and cells[-1].index == 2499 and cells[0].index == 2490
    assert all(c.samples == 4 for c in cells)


def test_an_older_sample_counts_in_the_latest_cell():
    strip = Strip(cell_s=1.0, cells=3)
    strip.add(5.0, ["a"])
    strip.add(3.0, ["b"])
    (cell,) = strip.snapshot()
    assert cell.index == 5 and cell.samples == 2
