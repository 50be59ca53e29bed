"""Collect: the least certain samples, within caps per hour, per day and on disk, never two of one shot."""

from __future__ import annotations

import csv
from datetime import datetime
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from stream.errors import OutputError
from stream.fleet.collect import Caps, Collector, consider, margin_of
from stream.frames.shots import same_shot, signature
from stream.records import Prediction

CLASSES = ("neither", "jerry", "tom")
PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 12, 3, 22, 0, tzinfo=PARIS).timestamp()  # hours 22, 23, then 00 of the next day


def shot(n: int, jitter: int = 0) -> np.ndarray:
    """Picture of shot `n` (blocky noise, so JPEG keeps it); `jitter` a slightly different frame of it."""
    base = np.random.default_rng(n).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    image = cv2.resize(base, (160, 120), interpolation=cv2.INTER_NEAREST).astype(np.int16)
    if jitter:
        image += np.random.default_rng(1000 + jitter).integers(-3, 4, image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def guess(margin: float) -> Prediction:
    """A prediction whose top two classes are `margin` apart."""
    top = (1.0 + margin) / 2 - 0.001
    probs = {"tom": top, "jerry": top - margin, "neither": 1.0 - 2 * top + margin}
    return Prediction(0.0, "tom", top, probs, ("tom",))


def collector(tmp_path, per_hour=2, per_day=3, max_bytes=10**9, max_margin=0.5) -> Collector:
    return Collector(tmp_path / "door", Caps(per_hour, per_day, max_bytes, max_margin), PARIS, CLASSES)


def test_margin_is_the_gap_between_the_two_likeliest():
    assert margin_of(guess(0.2).probs, CLASSES, False) == pytest.approx(0.2)
    assert margin_of({"neither": 0.1, "jerry": 0.45, "tom": 0.9}, CLASSES, multi_label=True) == pytest.approx(0.1)


def test_consider_keeps_the_least_certain_one_per_shot_within_the_cap():
    def cand(n, margin, jitter=0):
        from stream.fleet.collect import Candidate

        return Candidate(0.0, margin, "tom", 0.5, signature(shot(n, jitter)))

    a, b, c = cand(1, 0.3), cand(2, 0.2), cand(3, 0.1)
    pending = consider(consider([], a, [], 2), b, [], 2)
    assert pending == [a, b]
    assert consider(pending, c, [], 2) == [b, c]  # the surest gives way
    assert consider(pending, cand(4, 0.4), [], 2) is pending  # surer than all: refused
    a2 = cand(1, 0.05, jitter=1)  # same shot as a, less certain: replaces it
    assert consider(pending, a2, [], 2) == [b, a2]
    assert consider(pending, cand(1, 0.31, jitter=2), [], 2) is pending  # same shot, surer: refused
    assert consider([], a, [a.signature], 2) == []  # a shot saved earlier that day
    assert consider([], a, [], 0) == []


def test_collector_respects_hour_day_and_shot_rules(tmp_path):
    col = collector(tmp_path)
    offered = {}  # unix second -> shot number
    t = T0
    for hour in range(3):  # 22:00, 23:00 on 3 Dec, 00:00 on 4 Dec
        for i in range(30):
            n = hour * 100 + i % 6  # six shots an hour, each seen five times
            t = T0 + hour * 3600 + i * 60 + 1
            offered[round(t)] = n
            col.offer(t, shot(n, jitter=i), guess(0.02 * (i % 7) + 0.01 * (n % 6)))
        col.offer(T0 + hour * 3600 + 3599, shot(999), guess(0.9))  # sure: never collected
    col.flush()
    with (tmp_path / "door" / "frames.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    hours = [datetime.fromtimestamp(float(r["timestamp_s"]), PARIS).strftime("%d %H") for r in rows]
    assert hours.count("03 22") == 2 and hours.count("03 23") == 1  # per hour 2, per day 3
    assert hours.count("04 00") == 2  # a new day: its own cap
    shots = [offered[round(float(r["timestamp_s"]))] for r in rows]
    assert len(set(shots)) == len(shots)  # never two of one shot
    assert all(float(r["margin"]) <= 0.5 for r in rows)
    pictures = [cv2.imread(str(tmp_path / "door" / r["Image_ID"])) for r in rows]
    signatures = [signature(p) for p in pictures]
    assert not any(same_shot(a, b) for i, a in enumerate(signatures) for b in signatures[i + 1 :])
    # the least certain of the hour: margin 0.0 + 0.01 * shot number at i % 7 == 0
    first_hour = sorted(float(r["margin"]) for r, h in zip(rows, hours, strict=True) if h == "03 22")
    assert first_hour == pytest.approx([0.0, 0.01], abs=1e-3)


def test_disk_cap_stops_collecting_and_keeps_what_is_there(tmp_path):
    col = collector(tmp_path, per_hour=50, per_day=50, max_bytes=25_000)
    for i in range(20):
        col.offer(T0 + i, shot(i), guess(0.1))
    written = col.flush()
    sizes = sum(p.stat().st_size for p in (tmp_path / "door").iterdir())
    assert 0 < len(written) < 20 and sizes <= 25_000 + 2_000  # frames.csv is small
    assert collector(tmp_path, per_hour=50, per_day=50, max_bytes=25_000).flush() == []


def test_a_restarted_collector_never_saves_a_shot_saved_that_day(tmp_path):
    first = collector(tmp_path)
    first.offer(T0, shot(1), guess(0.1))
    assert len(first.flush()) == 1
    again = collector(tmp_path)
    again.offer(T0 + 60, shot(1, jitter=5), guess(0.01))
    again.offer(T0 + 120, shot(2), guess(0.2))
    assert [p.name for p in again.flush()] == ["20261203-220200-000.jpg"]
    with (tmp_path / "door" / "frames.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 2  # the earlier run's row kept


def test_the_labeller_and_training_read_the_folder(tmp_path):
    col = collector(tmp_path)
    for i in range(3):
        col.offer(T0 + i, shot(i), guess(0.1))
    col.flush()
    from training.extract import read_timestamps
    from training.labels import LabelStore, read_labels

    folder = tmp_path / "door"
    times = read_timestamps(folder)
    store = LabelStore(folder, len(CLASSES))
    assert len(times) == 2 and store.order == sorted(times, key=times.get)
    (folder / "labels.csv").write_text("Image_ID,Class\n" + "".join(f"{n},2\n" for n in store.order))
    assert len(read_labels(folder / "labels.csv", folder, len(CLASSES)).paths) == 2


def test_a_full_disk_skips_an_hours_frames_and_the_next_hour_writes_again(tmp_path):
    blocker = tmp_path / "blocked"
    blocker.write_text("not a directory")  # mkdir under it fails with an OSError, as a full disk would
    c = Collector(blocker / "door", Caps(2, 10, 10**9, 0.5), PARIS, CLASSES)
    c.offer(T0, shot(1), guess(0.1))
    assert c.flush() == [] and not c.retry.health.ok and c.pending == []  # no raise: the camera goes on
    blocker.unlink()
    c.offer(T0 + 10, shot(2), guess(0.1))
    assert len(c.flush()) == 1 and c.retry.health.ok
    blocker.mkdir(exist_ok=True)
    (blocker / "door").rename(tmp_path / "moved")
    blocker.rmdir()
    blocker.write_text("full again at the stop")
    c.offer(T0 + 20, shot(3), guess(0.1))
    with pytest.raises(OutputError, match="collect"):
        c.flush(final=True)
