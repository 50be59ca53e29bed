"""Segment events from lists of samples: flicker suppressed, new before end, updates throttled, and
every announced segment is one of the report's segments, with the same times."""

from __future__ import annotations

import random

import pytest

from stream.counting.accounting import Accountant
from stream.outputs.segments import Event, EventTracker, EventType

CLASSES = ("neither", "jerry", "tom")


def run(tracker: EventTracker, labels: list[str], every_s: float = 1.0, end_s: float | None = None) -> list[Event]:
    events: list[Event] = []
    for i, label in enumerate(labels):
        events += tracker.sample(i * every_s, [label], {label: 0.9})
    events += tracker.finish(end_s if end_s is not None else len(labels) * every_s)
    return events


def summary(events: list[Event]) -> list[tuple[str, str, float, float | None]]:
    return [(str(e.type), e.after.label, e.after.start_s, e.after.end_s) for e in events]


def test_one_sample_flicker_makes_no_event_with_the_default_of_one_interval():
    events = run(EventTracker(min_segment_s=1.0, update_s=100), ["jerry", "jerry", "tom", "jerry", "jerry", "jerry"])
    assert summary(events) == [
        ("new", "jerry", 0.0, None),
        ("end", "jerry", 0.0, 2.0),
        ("new", "jerry", 3.0, None),
        ("end", "jerry", 3.0, 6.0),
    ]


@pytest.mark.parametrize(("min_segment_s", "announced"), [(0.0, 3), (1.0, 2), (2.0, 1), (3.0, 0)])
def test_min_segment_decides_which_runs_are_announced(min_segment_s: float, announced: int):
    # runs of 1, 2, 3 and 4 samples; the last one ends at the end of the run
    labels = ["tom"] + ["jerry"] * 2 + ["tom"] * 3 + ["jerry"] * 4
    events = run(EventTracker(min_segment_s=min_segment_s, update_s=100), labels[:6])
    assert sum(e.type is EventType.NEW for e in events) == announced
    assert sum(e.type is EventType.END for e in events) == announced


def test_new_comes_once_the_segment_has_lasted_and_carries_its_true_start():
    tracker = EventTracker(min_segment_s=1.5, update_s=100)
    assert tracker.sample(0.0, ["jerry"], {"jerry": 0.8}) == []
    assert tracker.sample(1.0, ["jerry"], {"jerry": 0.6}) == []
    (new,) = tracker.sample(2.0, ["jerry"], {"jerry": 1.0})
    assert new.type is EventType.NEW and new.before == new.after
    assert new.after.start_s == 0.0 and new.after.end_s is None and new.after.samples == 3
    assert new.after.mean_confidence == pytest.approx(0.8) and new.after.confidence == 1.0


def test_updates_are_throttled_and_before_is_the_last_announcement():
    tracker = EventTracker(min_segment_s=0.0, update_s=2.0)
    events = run(tracker, ["jerry"] * 7, every_s=0.5)  # samples at 0, 0.5 ... 3.0
    types = [(str(e.type), e.after.last_s) for e in events]
    assert types == [("new", 0.0), ("update", 2.0), ("end", 3.0)]
    update = events[1]
    assert update.before == events[0].after and update.after.samples == 5
    assert events[-1].before == update.after and events[-1].after.end_s == 3.5


def test_tolerance_allows_sample_jitter():
    strict = EventTracker(min_segment_s=0.5)
    lenient = EventTracker(min_segment_s=0.5, tolerance_s=0.125)
    for tracker in (strict, lenient):
        tracker.sample(10.03, ["tom"], {})
    assert strict.sample(10.51, ["tom"], {}) == []  # 0.48 s: a frame short of one interval
    assert [e.type for e in lenient.sample(10.51, ["tom"], {})] == [EventType.NEW]


def test_a_lost_stream_ends_segments_and_the_next_start_at_the_return():
    tracker = EventTracker(min_segment_s=1.0, update_s=100)
    events = []
    for t in (0.0, 1.0, 2.0):
        events += tracker.sample(t, ["jerry"], {})
    events += tracker.lost(2.4)
    events += tracker.gap(2.4, 7.0)
    for t in (7.3, 8.3):
        events += tracker.sample(t, ["jerry"], {})
    events += tracker.finish(9.0)
    assert summary(events) == [
        ("new", "jerry", 0.0, None),
        ("end", "jerry", 0.0, 2.4),
        ("new", "jerry", 7.0, None),
        ("end", "jerry", 7.0, 9.0),
    ]


def test_multi_label_samples_track_each_class():
    tracker = EventTracker(min_segment_s=1.0, update_s=100)
    events = []
    for t, present in [(0, ["jerry"]), (1, ["jerry", "tom"]), (2, ["jerry", "tom"]), (3, ["tom"])]:
        events += tracker.sample(float(t), present, {})
    events += tracker.finish(4.0)
    assert summary(events) == [
        ("new", "jerry", 0.0, None),
        ("new", "tom", 1.0, None),
        ("end", "jerry", 0.0, 3.0),
        ("end", "tom", 1.0, 4.0),
    ]


@pytest.mark.parametrize("seed", range(20))
def test_announced_segments_are_the_reports_segments_that_lasted(seed: int):
    """Random samples, jitter and outages: every end event is a report segment with the same times,
    every report segment that lasted min_segment_s is announced, and each new comes before its end."""
    rng = random.Random(seed)
    every_s, min_segment_s = 0.5, 0.5
    tracker = EventTracker(min_segment_s=min_segment_s, update_s=2.0)
    accountant = Accountant(CLASSES)
    events: list[Event] = []
    t = 0.0
    label = "jerry"
    seen: dict[tuple[str, float], list[float]] = {}  # segment -> sample times, to know which lasted
    for _ in range(200):
        if rng.random() < 0.03:
            lost_at = t + rng.uniform(0, every_s)
            back = lost_at + rng.uniform(0.5, 5.0)
            accountant.lost(lost_at)
            events += tracker.lost(lost_at)
            accountant.gap(lost_at, back)
            events += tracker.gap(lost_at, back)
            t = back + rng.uniform(0, every_s)
        if rng.random() < 0.3:
            label = rng.choice(CLASSES)
        accountant.sample(t, [label])
        events += tracker.sample(t, [label], {label: 0.9})
        start = accountant.open[label]
        seen.setdefault((label, start), []).append(t)
        t += every_s + rng.uniform(-0.01, 0.01)
    accountant.finish(t)
    events += tracker.finish(t)
    segments = {(s.label, round(s.start_s, 9), round(s.end_s, 9)) for s in accountant.segments()}
    ends = [e for e in events if e.type is EventType.END]
    news = [e for e in events if e.type is EventType.NEW]
    for end in ends:
        assert (end.after.label, round(end.after.start_s, 9), round(end.after.end_s, 9)) in segments
    lasted = {key for key, times in seen.items() if times[-1] - key[1] >= min_segment_s}
    assert {(e.after.label, e.after.start_s) for e in ends} == lasted
    order = {(e.after.label, e.after.start_s): i for i, e in enumerate(events) if e.type is EventType.NEW}
    for i, event in enumerate(events):
        if event.type is EventType.END:
            assert order[(event.after.label, event.after.start_s)] < i
    assert len(news) == len(ends)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        EventTracker(min_segment_s=-1)
