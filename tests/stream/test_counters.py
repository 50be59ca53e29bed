import pytest

from stream.counters import ScreenTimeCounter, account
from stream.records import Segment

CLASSES = ("neither", "jerry", "tom")


def test_each_sample_stands_until_the_next_and_totals_add_up():
    counter = account([0, 1, 2, 3.5, 4], [("tom",), ("tom",), ("jerry",), ("neither",), ("tom",)], 5.0, CLASSES)
    assert counter.totals_s == pytest.approx({"tom": 3.0, "jerry": 1.5, "neither": 0.5})
    assert sum(counter.totals_s.values()) == pytest.approx(5.0)
    assert counter.segments == [
        Segment("tom", 0, 2),
        Segment("jerry", 2, 3.5),
        Segment("neither", 3.5, 4),
        Segment("tom", 4, 5.0),
    ]


def test_multi_label_sample_counts_for_every_character():
    counter = account([0, 2], [("jerry", "tom"), ("tom",)], 3.0, CLASSES)
    assert counter.totals_s == pytest.approx({"neither": 0.0, "jerry": 2.0, "tom": 3.0})
    assert Segment("tom", 0, 3.0) in counter.segments
    assert Segment("jerry", 0, 2) in counter.segments


def test_outage_is_not_counted():
    counter = ScreenTimeCounter(CLASSES)
    counter.add(0.0, ["tom"])
    counter.add(1.0, ["tom"])
    counter.pause(1.5)  # source down from 1.5 s
    counter.add(10.0, ["tom"])
    counter.finish(11.0)
    assert counter.totals_s["tom"] == pytest.approx(2.5)
    assert counter.segments == [Segment("tom", 0, 1.5), Segment("tom", 10.0, 11.0)]


def test_running_totals_include_the_open_sample_without_committing_it():
    counter = ScreenTimeCounter(CLASSES)
    counter.add(0.0, ["jerry"])
    assert counter.running_totals(2.5)["jerry"] == pytest.approx(2.5)
    assert counter.totals_s["jerry"] == 0.0


def test_samples_must_not_go_back_in_time():
    counter = ScreenTimeCounter(CLASSES)
    counter.add(2.0, ["tom"])
    with pytest.raises(ValueError):
        counter.add(1.0, ["tom"])


def test_repeated_timestamp_adds_no_time():
    counter = account([0, 1, 1, 2], [("tom",), ("jerry",), ("jerry",), ("tom",)], 3.0, CLASSES)
    assert counter.totals_s == pytest.approx({"neither": 0.0, "tom": 2.0, "jerry": 1.0})


def test_outage_before_frames_from_either_side():
    counter = ScreenTimeCounter(CLASSES)
    counter.add(0.0, ["jerry"])
    counter.pause(2.0)
    counter.add(1.0, ["tom"])  # a frame from before the drop, handed over late: stands until 2.0
    counter.add(20.0, ["tom"])
    counter.finish(21.0)
    assert counter.totals_s == pytest.approx({"neither": 0.0, "jerry": 1.0, "tom": 2.0})
    assert counter.segments == [Segment("jerry", 0, 1.0), Segment("tom", 1.0, 2.0), Segment("tom", 20.0, 21.0)]


def test_running_totals_stop_growing_during_an_outage():
    counter = ScreenTimeCounter(CLASSES)
    counter.add(0.0, ["tom"])
    counter.pause(3.0)
    assert counter.running_totals(10.0)["tom"] == pytest.approx(3.0)


def test_causal_smoothing_removes_one_sample_flicker_and_keeps_runs():
    import numpy as np

    from stream.smoothing import smooth_probs

    tom, jerry = [0.0, 0.1, 0.9], [0.0, 0.9, 0.1]
    probs = np.array([tom, tom, tom, jerry, tom, tom, jerry, jerry, jerry, jerry])
    labels = smooth_probs(probs, 3).argmax(1).tolist()
    assert labels == [2, 2, 2, 2, 2, 2, 2, 1, 1, 1]  # the lone jerry is gone, the real run starts one sample late
    assert smooth_probs(probs, 1) is probs
