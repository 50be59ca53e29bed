"""The media clock on lists of numbers: continuous across jumps, faithful everywhere else."""

from __future__ import annotations

import pytest

from stream.sources.mediaclock import MediaClock


def run(clock: MediaClock, raw: list[float]) -> list[float]:
    return [clock(t) for t in raw]


def test_steady_timestamps_pass_unchanged_from_a_late_first_frame():
    assert run(MediaClock(0.04), [1.4, 1.44, 1.48]) == pytest.approx([1.4, 1.44, 1.48])


def test_a_backward_jump_goes_on_one_frame_later():
    clock = MediaClock(0.5)
    assert run(clock, [0.0, 0.5, 1.0, 0.0, 0.5]) == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert [(d.t_s, d.jump_s) for d in clock.discontinuities] == [(pytest.approx(1.5), pytest.approx(-1.5))]


def test_a_forward_jump_counts_only_where_the_container_allows_jumps():
    raw = [0.0, 0.5, 1.0, 91.0, 91.5]
    assert run(MediaClock(0.5, forward_jumps=True), raw) == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert run(MediaClock(0.5), raw) == pytest.approx(raw)  # an MP4 picture shown for 90 s is 90 s


def test_repeated_timestamps_keep_their_time_and_small_steps_are_no_jump():
    clock = MediaClock(0.5, forward_jumps=True)
    assert run(clock, [0.0, 0.0, 0.5, 2.5]) == pytest.approx([0.0, 0.0, 0.5, 2.5])
    assert clock.discontinuities == []


def test_without_a_nominal_rate_the_last_step_is_the_frame():
    clock = MediaClock(None, forward_jumps=True)
    assert run(clock, [0.0, 0.1, 0.2, 10.0]) == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_a_live_step_the_wall_clock_saw_too_is_no_jump():
    clock = MediaClock(0.04, forward_jumps=True)
    # a camera that drops to one frame a second when nothing moves: media and wall agree
    assert [clock(t, e) for t, e in [(0.0, None), (0.04, 0.04), (1.04, 1.0), (2.04, 1.0)]] == pytest.approx(
        [0.0, 0.04, 1.04, 2.04]
    )
    assert clock.discontinuities == []
    assert clock(92.04, 0.04) == pytest.approx(2.08)  # an encoder restart: 90 s of media in 40 ms
    assert len(clock.discontinuities) == 1
