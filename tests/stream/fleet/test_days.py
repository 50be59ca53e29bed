"""The day cut at local midnight, with an injected clock: the days' totals add up to the run's."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.counting.accounting import Accountant
from stream.fleet.days import Clock, DayBook, hourly, hours, local_day, midnight
from stream.records import Segment

CLASSES = ("neither", "jerry", "tom")
PARIS = ZoneInfo("Europe/Paris")
# The run's clock: source time 0 is 23:58 local on 3 December 2026, so midnight falls at t = 120 s.
CLOCK = Clock(0.0, datetime(2026, 12, 3, 23, 58, tzinfo=PARIS).timestamp())


def feed(book: DayBook | Accountant, records: list[tuple]) -> list:
    days = []
    for kind, *args in records:
        got = getattr(book, kind)(*args)
        days += got or []
    return days


def test_midnight_and_hours_are_local_and_dst_safe():
    assert midnight(date(2026, 12, 4), PARIS) == datetime(2026, 12, 3, 23, 0, tzinfo=UTC).timestamp()
    assert len(hours(date(2026, 3, 29), PARIS)) == 23  # clocks go forward
    assert len(hours(date(2026, 10, 25), PARIS)) == 25  # ... and back: 02:00 twice, told apart by the offset
    labels = [h[0] for h in hours(date(2026, 10, 25), PARIS)]
    assert labels[2:4] == ["02:00+02:00", "02:00+01:00"]
    assert local_day(CLOCK.unix(119.9), PARIS) == date(2026, 12, 3)
    assert local_day(CLOCK.unix(120.0), PARIS) == date(2026, 12, 4)


def test_a_sample_standing_at_midnight_is_split_and_counted_once():
    book = DayBook(CLASSES, PARIS, CLOCK, 0.0)
    records = [("sample", 0.0, ["tom"]), ("sample", 100.0, ["jerry"]), ("sample", 150.0, ["tom"]), ("finish", 160.0)]
    days = feed(book, records)
    assert [d.day for d in days] == [date(2026, 12, 3), date(2026, 12, 4)]
    first, second = (d.accountant for d in days)
    assert first.totals_s == pytest.approx({"neither": 0, "tom": 100, "jerry": 20})
    assert second.totals_s == pytest.approx({"neither": 0, "tom": 10, "jerry": 30})
    assert (first.samples, second.samples) == (2, 1)
    assert second.segments()[0] == Segment("jerry", 120.0, 150.0)
    assert first.end_s == second.start_s == 120.0


def test_down_across_midnight_each_day_keeps_its_part_of_the_outage():
    book = DayBook(CLASSES, PARIS, CLOCK, 0.0)
    days = feed(book, [("sample", 0.0, ["tom"]), ("lost", 60.0), ("gap", 60.0, 200.0), ("sample", 210.0, ["tom"])])
    days += book.finish(220.0)
    first, second = (d.accountant for d in days)
    assert first.outages == [(60.0, 120.0)] and second.outages == [(120.0, 200.0)]
    assert first.duration_s == pytest.approx(60.0) and second.duration_s == pytest.approx(20.0)
    assert second.totals_s["tom"] == pytest.approx(20.0)  # the first sample after the return covers back to it


def test_several_days_down_make_empty_days_not_missing_ones():
    book = DayBook(CLASSES, PARIS, CLOCK, 0.0)
    days = feed(book, [("sample", 0.0, ["tom"]), ("lost", 10.0), ("gap", 10.0, 120.0 + 2 * 86400 + 5)])
    days += book.finish(120.0 + 2 * 86400 + 10)
    assert [d.day.day for d in days] == [3, 4, 5, 6]
    assert [d.accountant.duration_s for d in days] == pytest.approx([10.0, 0.0, 0.0, 0.0])


def test_hourly_totals_are_the_segments_cut_at_the_hours():
    spans = [("00:00", 0.0, 3600.0), ("01:00", 3600.0, 7200.0)]
    rows = hourly([Segment("tom", 3000, 4000), Segment("jerry", 4000, 5000)], [(5000, 5600)], 3000, 6000, spans)
    assert rows[0]["screen_time_s"] == {"tom": 600} and rows[0]["duration_s"] == 600
    assert rows[1]["screen_time_s"] == {"tom": 400, "jerry": 1000} and rows[1]["duration_s"] == 1800


@st.composite
def runs(draw):
    """A random camera's records from 23:58 on: samples, outages, an end, a midnight in between."""
    t, records = draw(st.floats(0.0, 50.0)), []
    for _ in range(draw(st.integers(1, 40))):
        t += draw(st.floats(0.01, 30.0))
        if draw(st.integers(0, 9)) == 0:  # lost, then back later (or lost again before any sample)
            back = t + draw(st.floats(0.0, 200.0))
            records += [("lost", t), ("gap", t, back)]
            t = back
            if draw(st.booleans()):
                continue
        labels = draw(st.lists(st.sampled_from(CLASSES), min_size=1, max_size=2, unique=True))
        records.append(("sample", t, labels))
    end = t + draw(st.floats(0.0, 30.0))
    return records, end


@settings(max_examples=300, deadline=None)
@given(run=runs())
def test_the_days_add_up_to_the_uncut_run(run):
    records, end = run
    whole = Accountant(CLASSES)
    feed(whole, records)
    whole.finish(end)
    book = DayBook(CLASSES, PARIS, CLOCK, records[0][1])
    days = feed(book, records) + book.finish(end)
    assert len({d.day for d in days}) == len(days)
    accs = [d.accountant for d in days]
    for label in CLASSES:
        assert sum(a.totals_s[label] for a in accs) == pytest.approx(whole.totals_s[label], abs=1e-6)
    assert sum(a.duration_s for a in accs) == pytest.approx(whole.duration_s, abs=1e-6)
    assert sum(a.samples for a in accs) == whole.samples
    for d in days:  # each day within its own bounds, and its segments are its totals
        a = d.accountant
        if a.start_s is not None:
            assert d.start_s - 1e-9 <= a.start_s and (a.end_s or 0) <= d.end_s + 1e-9
        for label in CLASSES:
            spans = sum(s.end_s - s.start_s for s in a.segments() if s.label == label)
            assert spans == pytest.approx(a.totals_s[label], abs=1e-6)
