"""`--resume` on files: the offset is applied once, where the tally makes the clock, so a
resumed run's last sample keeps its time and two runs add up to one uninterrupted run."""

from __future__ import annotations

import json

import pytest

from stream import watch
from tests.helpers import write_color_video

SCENES = [(0, 0.0, 3.0), (1, 3.0, 7.0), (2, 7.0, 10.0)]  # neither, jerry, tom
TRUTH = {"neither": 3.0, "jerry": 4.0, "tom": 3.0}


def shifted(scenes, by_s):
    return [(label, a - by_s, b - by_s) for label, a, b in scenes]


@pytest.mark.parametrize("every", [1.0, 0.5])
def test_a_resumed_file_run_totals_equal_one_uninterrupted_run(tmp_path, color_model, every):
    times = [i / 10 for i in range(50)]
    whole = write_color_video(tmp_path / "whole.mp4", SCENES, [i / 10 for i in range(100)])
    first = write_color_video(tmp_path / "first.mp4", SCENES, times)  # 0-5 s of the episode
    second = write_color_video(tmp_path / "second.mp4", shifted(SCENES, 5.0), times)  # 5-10 s, from 0
    uninterrupted = watch(whole, color_model, every_s=every).run()
    report = tmp_path / "report.json"
    watch(first, color_model, every_s=every, report=report).run()
    resumed = watch(second, color_model, every_s=every, report=report, resume=True).run()
    assert uninterrupted.screen_time_s == pytest.approx(TRUTH, abs=0.01)
    assert resumed.screen_time_s == pytest.approx(uninterrupted.screen_time_s, abs=0.01)
    assert resumed.samples == uninterrupted.samples and resumed.resumed == 1
    # The time between the two runs is an outage, not anyone's screen time; every second is accounted.
    saved = json.loads(report.read_text())
    outage_s = sum(o["end_s"] - o["start_s"] for o in saved["outages"])
    assert outage_s > 0 and saved["duration_s"] == pytest.approx(sum(TRUTH.values()), abs=0.01)
    assert saved["end_s"] - saved["start_s"] == pytest.approx(saved["duration_s"] + outage_s, abs=0.01)
