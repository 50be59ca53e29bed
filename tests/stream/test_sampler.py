import pytest

from stream.errors import BadInputError
from stream.frames.sampler import Sampler, interval_from, sample_mask


def picked(times, every):
    return [t for t, keep in zip(times, sample_mask(times, every), strict=True) if keep]


@pytest.mark.parametrize(
    ("fps", "every", "expected"),
    [
        (30, 1.0, [0.0, 1.0, 2.0]),
        (25, 0.5, [0.0, 0.52, 1.0, 1.52, 2.0, 2.52]),  # first frame at/after each half second
        (10, 0.0, [i / 10 for i in range(30)]),  # every frame
    ],
)
def test_constant_rate(fps, every, expected):
    times = [i / fps for i in range(3 * fps)]
    assert picked(times, every) == pytest.approx(expected, abs=1e-9)


def test_variable_frame_rate_samples_by_time_not_index():
    # 2 s at 30 fps, then 2 s at 5 fps: index-based sampling (every 30th frame) would take 2.0 and 8.0.
    times = [i / 30 for i in range(60)] + [2 + i / 5 for i in range(10)]
    assert picked(times, 1.0) == pytest.approx([0.0, 1.0, 2.0, 3.0])


def test_gap_skips_grid_points_without_catch_up_burst():
    times = [0.0, 0.5, 1.0, 5.2, 5.4, 6.1, 6.3]
    assert picked(times, 1.0) == [0.0, 1.0, 5.2, 6.1]  # grid stays at whole seconds


def test_grid_anchored_at_first_frame_and_repeated_timestamps_taken_once():
    times = [10.0, 10.0, 10.4, 11.0, 11.0, 12.1]
    assert picked(times, 1.0) == [10.0, 11.0, 12.1]


def test_keyframes_a_little_early_or_late_stand_in_for_their_grid_points():
    """A camera decoded at keyframes only: one picture a second, arriving just before or after
    each whole second. With `early_s` each is taken (the grid stays put); without it, every
    early one is missed and the sample waits a whole second for the next."""
    keyframes = [0.0, 0.99, 2.01, 2.98, 3.97, 5.02]
    sampler = Sampler(1.0)
    assert [t for t in keyframes if sampler.due(t, early_s=0.5)] == keyframes
    assert sampler.next_due_s == pytest.approx(6.0)
    assert picked(keyframes, 1.0) == [0.0, 2.01, 3.97, 5.02]  # 0.99 and 2.98 come too early


def test_interval_from_flags():
    assert interval_from(None, None) == 1.0
    assert interval_from(2.5, None) == 2.5
    assert interval_from(None, 4) == 0.25
    with pytest.raises(BadInputError):
        interval_from(1.0, 2.0)
    with pytest.raises(BadInputError):
        interval_from(None, 0)
    with pytest.raises(BadInputError):
        Sampler(-1)
