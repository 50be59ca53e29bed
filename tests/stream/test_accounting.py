"""The accountant's rules, by example and as properties over random streams, samples and outages."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.counting.accounting import Accountant, account
from stream.frames.sampler import Sampler
from stream.records import Segment

CLASSES = ("neither", "jerry", "tom")


def test_each_sample_stands_until_the_next_and_totals_add_up():
    acc = account([0, 1, 2, 3.5, 4], [("tom",), ("tom",), ("jerry",), ("neither",), ("tom",)], 5.0, CLASSES)
    assert acc.totals_s == pytest.approx({"tom": 3.0, "jerry": 1.5, "neither": 0.5})
    assert acc.duration_s == pytest.approx(5.0) == pytest.approx(sum(acc.totals_s.values()))
    assert acc.segments() == [
        Segment("tom", 0, 2),
        Segment("jerry", 2, 3.5),
        Segment("neither", 3.5, 4),
        Segment("tom", 4, 5.0),
    ]


def test_multi_label_sample_counts_for_every_character():
    acc = account([0, 2], [("jerry", "tom"), ("tom",)], 3.0, CLASSES)
    assert acc.totals_s == pytest.approx({"neither": 0.0, "jerry": 2.0, "tom": 3.0})
    assert Segment("tom", 0, 3.0) in acc.segments()
    assert Segment("jerry", 0, 2) in acc.segments()


def test_outage_is_cut_and_the_return_is_covered_by_the_next_sample():
    acc = Accountant(CLASSES)
    acc.sample(0.0, ["tom"])
    acc.sample(1.0, ["tom"])
    acc.lost(1.5)  # down from 1.5 s
    acc.gap(1.5, 9.5)  # back at 9.5 s; the frame there was dropped, the next sample is at 10 s
    acc.sample(10.0, ["jerry"])
    acc.finish(11.0)
    assert acc.totals_s == pytest.approx({"neither": 0.0, "tom": 1.5, "jerry": 1.5})
    assert acc.outages == [(1.5, 9.5)]
    assert acc.duration_s == pytest.approx(11.0 - 8.0)
    assert acc.segments() == [Segment("tom", 0, 1.5), Segment("jerry", 9.5, 11.0)]


def test_issue_example_every_10_s_with_an_outage_from_12_to_14_s():
    """`--every 10`, outage 12-14 s, stream to 30 s: the grid re-anchors at 14 s, nothing goes missing."""
    sampler, acc = Sampler(10.0), Accountant(CLASSES)
    for t in [x / 2 for x in range(60)]:  # a frame every 0.5 s
        if 12.0 <= t < 14.0:
            if not acc.down:
                acc.lost(12.0)
            continue
        if acc.down:
            acc.gap(12.0, t)
            sampler.restart()
        if sampler.due(t):
            acc.sample(t, ["tom"])
    acc.finish(30.0)
    assert acc.duration_s == pytest.approx(28.0)
    assert acc.totals_s["tom"] == pytest.approx(28.0)


def test_end_while_down_closes_the_outage_at_the_end():
    acc = Accountant(CLASSES)
    acc.sample(0.0, ["tom"])
    acc.lost(2.0)
    acc.finish(7.0)
    assert acc.outages == [(2.0, 7.0)] and acc.duration_s == pytest.approx(2.0) and acc.totals_s["tom"] == 2.0


def test_end_after_a_return_but_before_any_sample_ends_at_the_return():
    acc = Accountant(CLASSES)
    acc.sample(0.0, ["tom"])
    acc.lost(2.0)
    acc.gap(2.0, 5.0)
    acc.finish(6.0)
    assert acc.end_s == 5.0 and acc.duration_s == pytest.approx(2.0) == acc.totals_s["tom"]


def test_lost_again_before_any_sample_is_one_outage():
    acc = Accountant(CLASSES)
    acc.sample(0.5, ["tom"])
    acc.lost(1.5)
    acc.gap(1.5, 2.0)  # back, but the frame at 2.0 s was dropped ...
    acc.lost(2.25)  # ... and lost again before any sample
    acc.finish(3.0)
    assert acc.outages == [(1.5, 3.0)]
    assert acc.duration_s == pytest.approx(1.0) == acc.totals_s["tom"]


def test_outage_before_the_first_sample_is_not_analysed_time():
    acc = Accountant(CLASSES)
    acc.lost(0.0)
    acc.gap(0.0, 4.0)
    acc.sample(4.0, ["jerry"])
    acc.finish(6.0)
    assert acc.outages == [] and acc.duration_s == pytest.approx(2.0) == acc.totals_s["jerry"]


def test_running_totals_include_the_standing_sample_and_stop_during_an_outage():
    acc = Accountant(CLASSES)
    acc.sample(0.0, ["jerry"])
    assert acc.running_totals(2.5)["jerry"] == pytest.approx(2.5)
    assert acc.totals_s["jerry"] == 0.0
    acc.lost(3.0)
    assert acc.running_totals(10.0)["jerry"] == pytest.approx(3.0)


def test_samples_must_not_go_back_in_time():
    acc = Accountant(CLASSES)
    acc.sample(2.0, ["tom"])
    with pytest.raises(ValueError):
        acc.sample(1.0, ["tom"])


def test_repeated_timestamp_adds_no_time():
    acc = account([0, 1, 1, 2], [("tom",), ("jerry",), ("jerry",), ("tom",)], 3.0, CLASSES)
    assert acc.totals_s == pytest.approx({"neither": 0.0, "tom": 2.0, "jerry": 1.0})


# -- properties: the reader's record stream, simulated with the real sampler ------------------

frame_steps = st.lists(st.floats(0.01, 0.5), min_size=1, max_size=300)
outage_spans = st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.05, 20.0)), max_size=4)


def simulate(every_s, steps, outages, drops, labels, stop_at):
    """Feed an accountant the records a reader and a NEWEST buffer would produce."""
    sampler, acc = Sampler(every_s), Accountant(CLASSES)
    times, t = [], 0.0
    for step in steps:
        times.append(t)
        t += step
    end_of_stream = t
    # Outages placed at fractions of the stream: frames inside them never arrive.
    spans = sorted((f * end_of_stream, f * end_of_stream + length) for f, length in outages)
    down_since = None
    samples = []
    for i, ft in enumerate(times):
        if stop_at is not None and ft >= stop_at:
            break
        inside = next((s for s in spans if s[0] <= ft < s[1]), None)
        if inside is not None:
            if down_since is None:
                down_since = inside[0]
                acc.lost(down_since)
            continue
        if down_since is not None:
            acc.gap(down_since, ft)
            down_since = None
            sampler.restart()
        if sampler.due(ft) and not drops[i % len(drops)]:
            acc.sample(ft, [labels[i % len(labels)]])
            samples.append(ft)
    end = stop_at if stop_at is not None else end_of_stream
    acc.finish(end)
    return acc, samples


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    every_s=st.sampled_from([0.0, 0.04, 0.2, 0.5, 1.0, 2.5, 10.0]),
    steps=frame_steps,
    outages=outage_spans,
    drops=st.lists(st.booleans(), min_size=1, max_size=7),
    labels=st.lists(st.sampled_from(CLASSES), min_size=1, max_size=5),
    stop_frac=st.one_of(st.none(), st.floats(0.0, 1.2)),
)
def test_totals_always_add_up_to_the_duration(every_s, steps, outages, drops, labels, stop_frac):
    stop_at = None if stop_frac is None else stop_frac * sum(steps)
    acc, samples = simulate(every_s, steps, outages, drops, labels, stop_at)
    assert sum(acc.totals_s.values()) == pytest.approx(acc.duration_s, abs=1e-6)
    assert acc.samples == len(samples)
    if not samples:
        assert acc.duration_s == 0.0
        return
    # The duration is the first sample to the end, minus outages inside it, and never negative.
    inside = sum(b - a for a, b in acc.outages)
    assert acc.duration_s == pytest.approx(acc.end_s - acc.start_s - inside, abs=1e-6)
    assert all(a <= b for a, b in acc.outages)
    for a, b in acc.outages:  # no sample falls inside an outage
        assert not [t for t in samples if a < t < b]
    # Segments tile the analysed time: per class they sum to its total and never overlap.
    for label in CLASSES:
        spans = [(s.start_s, s.end_s) for s in acc.segments() if s.label == label]
        assert sum(b - a for a, b in spans) == pytest.approx(acc.totals_s[label], abs=1e-6)
        assert all(b1 <= a2 + 1e-9 for (_, b1), (a2, _) in itertools.pairwise(spans))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(steps=frame_steps, every_s=st.sampled_from([0.2, 1.0, 10.0]), outages=outage_spans)
def test_first_frame_after_an_outage_is_sampled(steps, every_s, outages):
    """The grid re-anchors at the return, so an outage never leaves a stretch waiting for the old grid."""
    acc, samples = simulate(every_s, steps, outages, [False], ["tom"], None)
    for _, back in acc.outages:
        if back < acc.end_s:
            assert back in samples
