"""Daily files with an injected clock: cut at midnight, each a complete report, carried on after a kill."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from stream.counting.accounting import Accountant
from stream.counting.report import Report
from stream.errors import OutputError
from stream.fleet.dayfiles import DayFilesSink, _Timeline, day_paths
from stream.fleet.days import Clock
from stream.model.card import ModelCard
from stream.outputs.events import Checkpoint, Ended, Sampled, SourceBack, SourceLost, SourceTag, Started
from stream.outputs.plot import load_sections, plot_report
from stream.outputs.retry import OutputHealth, Retry, backoff_s
from stream.records import Frame, Gap, Lost, Prediction, VideoInfo

CARD = ModelCard(classes=("neither", "jerry", "tom"), input_width=32, input_height=32)
PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 12, 3, 23, 58, tzinfo=PARIS).timestamp()  # source time 0; midnight at t = 120 s
INFO = VideoInfo(64, 48, 25.0, None, live=True)


class Wall:
    """The injected wall clock: the camera's time plus T0, moved by the test."""

    def __init__(self) -> None:
        self.t_s = 0.0

    def __call__(self) -> float:
        return T0 + self.t_s


def run_report(acc: Accountant, ended: str, samples_read: int) -> Report:
    return Report.from_accountant(
        acc,
        CARD,
        source="door",
        model="m.onnx",
        ended=ended,
        timeline=None,
        every_s=1.0,
        device="cpu",
        started_at="",
        updated_at="",
        frames_read=samples_read,
        model_sha256="abc",
    )


TAG = SourceTag(0, "door", "rtsp://door", True)
STATS = SimpleNamespace(frames_read=0, dropped=0, reconnects=0, inferences_saved=0, device="cpu")


def end(sink: DayFilesSink, report: Report | None) -> None:
    sink.handle(Ended(TAG, report, STATS))


def drive(sink: DayFilesSink, acc: Accountant, wall: Wall, records: list[tuple], offset_s: float = 0.0) -> None:
    """Hand the sink what a pipeline would, and the run's accountant the same records."""
    frame = Frame(np.zeros((48, 64, 3), np.uint8), 0.0, 0)
    stats = SimpleNamespace(frames_read=0, dropped=0, reconnects=0, inferences_saved=0, device="cpu")
    for kind, t_s, *rest in records:
        wall.t_s = t_s + offset_s
        if kind == "sample":
            present = tuple(rest[0])
            acc.sample(t_s, present)
            stats.frames_read += 1
            sink.handle(Sampled(TAG, Prediction(t_s, present[0], 0.9, {}, present), frame, stats))
        elif kind == "lost":
            acc.lost(t_s)
            sink.handle(SourceLost(TAG, Lost(t_s)))
        elif kind == "gap":
            acc.gap(t_s, rest[0])
            sink.handle(SourceBack(TAG, Gap(t_s, rest[0])))
        elif kind == "checkpoint":
            sink.handle(Checkpoint(TAG, run_report(acc, "running", stats.frames_read)))


def test_two_days_each_complete_adding_up_to_the_run(tmp_path):
    wall, acc = Wall(), Accountant(CARD.classes)
    sink = DayFilesSink(tmp_path, PARIS, source="door", model="m.onnx", every_s=1.0, clock=Clock(0.0, T0), wall=wall)
    sink.handle(Started(TAG, INFO, CARD, STATS))
    records = [("sample", float(t), ["tom" if t < 90 else "jerry"]) for t in range(0, 200, 10)]
    records.insert(5, ("checkpoint", 45.0))
    records += [("lost", 195.0), ("gap", 195.0, 230.0), ("sample", 231.0, ["tom"])]
    drive(sink, acc, wall, records)
    acc.finish(240.0)
    run = run_report(acc, "interrupted", 21)
    end(sink, run)
    first, second = (json.loads(day_paths(tmp_path, date(2026, 12, d))[0].read_text()) for d in (3, 4))
    assert (first["day"], second["day"], first["timezone"]) == ("2026-12-03", "2026-12-04", "Europe/Paris")
    assert (first["ended"], second["ended"]) == ("midnight", "interrupted")
    for key in ("tom", "jerry", "neither"):
        assert first["screen_time_s"][key] + second["screen_time_s"][key] == pytest.approx(run.screen_time_s[key])
    assert first["duration_s"] + second["duration_s"] == pytest.approx(run.duration_s)
    assert first["samples"] + second["samples"] == run.samples == 21
    assert first["screen_time_s"] == {"neither": 0.0, "jerry": 30.0, "tom": 90.0}  # jerry from 90 s to midnight
    assert second["outages"] == [{"start_s": 195.0, "end_s": 230.0}] and first["outages"] == []
    assert first["frames_read"] + second["frames_read"] == 21
    # hours: the local day's 24, the last of the first day holding its two minutes
    assert len(first["hours"]) == 24 and first["hours"][-1]["hour"] == "23:00+01:00"
    assert first["hours"][-1]["screen_time_s"] == {"tom": 90.0, "jerry": 30.0}
    assert all(not h["screen_time_s"] for h in first["hours"][:-1])
    assert sum(h["duration_s"] for h in second["hours"]) == pytest.approx(second["duration_s"])
    assert second["hours"][0]["screen_time_s"] == pytest.approx({"jerry": 75.0, "tom": 10.0})
    # each day's timeline holds that day's samples
    rows = [list(csv.DictReader(day_paths(tmp_path, date(2026, 12, d))[1].open())) for d in (3, 4)]
    assert [len(r) for r in rows] == [12, 9] and all(float(r["t_s"]) >= 120 for r in rows[1])
    # a day file is a report: plot draws it
    assert load_sections(day_paths(tmp_path, date(2026, 12, 4))[0])[0]["day"] == "2026-12-04"


def test_plot_draws_a_day_file(tmp_path):
    pytest.importorskip("matplotlib")
    wall, acc = Wall(), Accountant(CARD.classes)
    sink = DayFilesSink(tmp_path, PARIS, source="door", model="m.onnx", every_s=1.0, clock=Clock(0.0, T0), wall=wall)
    sink.handle(Started(TAG, INFO, CARD, STATS))
    drive(sink, acc, wall, [("sample", 0.0, ["tom"]), ("sample", 150.0, ["jerry"])])
    acc.finish(160.0)
    end(sink, run_report(acc, "interrupted", 2))
    [png] = plot_report(day_paths(tmp_path, date(2026, 12, 4))[0])
    assert png.stat().st_size > 1000


def test_killed_and_restarted_the_same_day_carries_today_on(tmp_path):
    wall = Wall()
    first = DayFilesSink(tmp_path, PARIS, source="door", model="m.onnx", every_s=1.0, clock=Clock(0.0, T0), wall=wall)
    first.handle(Started(TAG, INFO, CARD, STATS))
    acc = Accountant(CARD.classes)
    drive(first, acc, wall, [("sample", 130.0 + t, ["tom"]) for t in range(0, 60, 5)] + [("checkpoint", 186.0)])
    # kill -9: no close. Up again 100 s later, on a new camera clock that starts at 0.
    wall.t_s = 286.0
    again = DayFilesSink(tmp_path, PARIS, source="door", model="m.onnx", every_s=1.0, wall=wall)
    again.handle(Started(TAG, INFO, CARD, STATS))
    # stream.counting.resume's rule: the new clock starts after the last accounted second (185) plus the
    # wall time since the file was written (186 -> 286)
    assert again.runs == 1 and again.offset_s == pytest.approx(285.0)
    acc2 = Accountant(CARD.classes)
    drive(again, acc2, wall, [("sample", float(t), ["jerry"]) for t in range(0, 30, 5)], offset_s=286.0)
    acc2.finish(30.0)
    end(again, run_report(acc2, "interrupted", 6))
    today = json.loads(day_paths(tmp_path, date(2026, 12, 4))[0].read_text())
    assert today["resumed"] == 1 and today["samples"] == 12 + 6
    assert today["screen_time_s"]["tom"] == pytest.approx(55.0)  # up to the last checkpointed sample
    assert today["screen_time_s"]["jerry"] == pytest.approx(30.0)
    assert today["outages"] == [{"start_s": 185.0, "end_s": 285.0}]  # the time it was down
    assert today["duration_s"] == pytest.approx(55.0 + 30.0)
    rows = list(csv.DictReader(day_paths(tmp_path, date(2026, 12, 4))[1].open()))
    assert len(rows) == 18 and float(rows[-1]["t_s"]) == pytest.approx(285.0 + 25.0)


def test_a_day_file_of_other_classes_is_set_aside_not_mixed_in(tmp_path):
    path, timeline = day_paths(tmp_path, date(2026, 12, 4))
    other = {"classes": ["neither", "spike"], "screen_time_s": {"spike": 50.0}, "samples": 3, "segments": []}
    path.write_text(json.dumps({**other, "end_s": 5.0, "start_s": 0.0, "updated_at": "2026-12-03T23:00:00+00:00"}))
    timeline.write_text("t_s,class,confidence\n")
    wall = Wall()
    wall.t_s = 300.0
    sink = DayFilesSink(tmp_path, PARIS, source="door", model="m.onnx", every_s=1.0, wall=wall)
    sink.handle(Started(TAG, INFO, CARD, STATS))
    assert sink.runs == 0 and sink.offset_s == 0.0
    assert {p.name for p in tmp_path.iterdir()} == {"2026-12-04.before-000300.json", "2026-12-04.before-000300.csv"}


def test_a_blocked_directory_loses_nothing_and_is_written_when_it_comes_back(tmp_path):
    """Disk full, permissions, the folder gone: the accounting goes on in memory, the reports and
    timeline rows wait, and once writes work again every day is whole, each row written once."""
    blocker = tmp_path / "cams"
    blocker.write_text("not a directory")  # mkdir under it fails with an OSError, as a full disk would
    wall, acc = Wall(), Accountant(CARD.classes)
    directory = blocker / "door"
    sink = DayFilesSink(directory, PARIS, source="door", model="m.onnx", every_s=1.0, clock=Clock(0.0, T0), wall=wall)
    sink.handle(Started(TAG, INFO, CARD, STATS))
    assert not sink.health.ok and sink.health.failures == 1 and sink.health.since == pytest.approx(T0)
    records = [("sample", float(t), ["tom" if t < 90 else "jerry"]) for t in range(0, 200, 10)]
    records.insert(5, ("checkpoint", 45.0))
    records.append(("checkpoint", 195.0))
    drive(sink, acc, wall, records)  # across midnight, with the folder blocked all along
    assert not sink.health.ok and sink.health.error and sink.health.to_dict()["state"] == "retrying"
    blocker.unlink()  # space is back
    acc.finish(200.0)
    run = run_report(acc, "interrupted", 20)
    end(sink, run)  # the last try does not wait for the backoff
    assert sink.health.ok and sink.health.errors >= 1
    first, second = (json.loads(day_paths(directory, date(2026, 12, d))[0].read_text()) for d in (3, 4))
    assert (first["ended"], second["ended"]) == ("midnight", "interrupted")
    for key in ("tom", "jerry", "neither"):
        assert first["screen_time_s"][key] + second["screen_time_s"][key] == pytest.approx(run.screen_time_s[key])
    rows = [list(csv.DictReader(day_paths(directory, date(2026, 12, d))[1].open())) for d in (3, 4)]
    assert [len(r) for r in rows] == [12, 8]  # every sample once, on its day


def test_a_write_that_never_recovers_is_an_output_error_at_the_end(tmp_path):
    blocker = tmp_path / "cams"
    blocker.write_text("not a directory")
    wall, acc = Wall(), Accountant(CARD.classes)
    sink = DayFilesSink(
        blocker / "door", PARIS, source="door", model="m.onnx", every_s=1.0, clock=Clock(0.0, T0), wall=wall
    )
    sink.handle(Started(TAG, INFO, CARD, STATS))
    drive(sink, acc, wall, [("sample", 0.0, ["tom"]), ("sample", 5.0, ["tom"])])
    acc.finish(10.0)
    with pytest.raises(OutputError, match=r"day files .*door"):
        end(sink, run_report(acc, "interrupted", 2))


def test_retries_back_off_and_a_success_clears_the_state():
    now = [0.0]
    retry = Retry("out", wall=lambda: 1000.0 + now[0], clock=lambda: now[0])

    def fail() -> None:
        raise OSError(28, "No space left on device")

    assert [backoff_s(n) for n in range(7)] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert retry.due() and not retry.attempt(fail)
    assert retry.health == OutputHealth(False, "No space left on device", 1000.0, 1, 1)
    assert not retry.due()
    now[0] = 1.0
    assert retry.due() and not retry.attempt(fail)
    now[0] = 2.5
    assert not retry.due()  # the second failure waits 2 s
    now[0] = 3.0
    assert retry.attempt(lambda: None)
    assert retry.health == OutputHealth(errors=2) and retry.due()


def test_a_cut_off_row_is_dropped_and_each_row_written_once(tmp_path):
    path = tmp_path / "day.csv"
    path.write_text("t_s,class,confidence\n1.000,tom,0.9000\n2.000,to")  # a kill in the middle of a row
    timeline = _Timeline(path)
    timeline.append(Prediction(3.0, "jerry", 0.8, {}, ("jerry",)))
    timeline.flush()
    timeline.flush()  # nothing new: nothing written
    timeline.append(Prediction(4.0, "tom", 0.7, {}, ("tom",)))
    path.unlink()  # the file gone (a folder removed): the next write starts a new one, header first
    timeline.flush()
    assert path.read_text() == "t_s,class,confidence\n4.000,tom,0.7000\n"


def test_todays_numbers_are_a_snapshot_that_writes_do_not_reset(tmp_path):
    """What the API shows of today (`today`): the day's samples and totals, through every flush."""
    wall, acc = Wall(), Accountant(CARD.classes)
    sink = DayFilesSink(tmp_path, PARIS, source="door", model="m.onnx", every_s=1.0, clock=Clock(0.0, T0), wall=wall)
    sink.handle(Started(TAG, INFO, CARD, STATS))
    drive(sink, acc, wall, [("sample", 0.0, ["tom"]), ("sample", 5.0, ["tom"]), ("checkpoint", 6.0)])
    today = sink.today
    assert today is not None and today.samples == 2 and today.screen_time_s["tom"] == pytest.approx(5.0)
    assert today.to_dict()["day"] == "2026-12-03"
