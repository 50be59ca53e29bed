"""`watch` at the API level takes sources in and out while it runs (the fleet monitor's seam):
each gets its report section, and the sources that stay lose no sample."""

from __future__ import annotations

import json

import pytest

from stream import watch
from stream.errors import BadInputError
from tests.helpers import write_color_video

SCENES = [(0, 0.0, 20.0), (1, 20.0, 40.0), (2, 40.0, 60.0)]  # neither, jerry, tom
TRUTH = {"neither": 20.0, "jerry": 20.0, "tom": 20.0}
FRAMES = 600  # more than a run's backlog of predictions: a source cannot be done before it is read


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v")
    times = [i / 10 for i in range(FRAMES)]
    return [write_color_video(folder / f"{name}.mp4", SCENES, times, size=(32, 32)) for name in ("a", "b", "c")]


def test_a_source_added_and_one_removed_while_watch_runs(clips, color_model, tmp_path):
    a, b, c = clips
    report = tmp_path / "report.json"
    run = watch([a, b], color_model, every_s=0.0, report=report, csv=tmp_path / "t.csv")
    removed = None
    for _ in run:
        if removed is None:  # the first prediction: both sources are running
            run.add_source(str(c))
            removed = run.remove_source("b.mp4")
    assert removed is not None and removed.ended == "interrupted" and removed.samples < FRAMES
    sections = {s["source"]: s for s in json.loads(report.read_text())["sources"]}
    assert list(sections) == [str(a), str(b), str(c)]
    for kept in (a, c):
        assert sections[str(kept)]["samples"] == FRAMES  # no sample lost to the others' coming and going
        assert sections[str(kept)]["screen_time_s"] == pytest.approx(TRUTH, abs=0.2)
    assert sections[str(b)]["ended"] == "interrupted" and sections[str(b)]["samples"] == removed.samples
    rows = (tmp_path / "t.csv").read_text().splitlines()[1:]
    assert [sum(row.startswith(f"{clip},") for row in rows) for clip in clips] == [FRAMES, removed.samples, FRAMES]
    assert [r.source for r in run.reports] == [str(a), str(b), str(c)]


def test_a_second_source_makes_a_single_report_a_report_of_sections(clips, color_model, tmp_path):
    a, b, _ = clips
    report = tmp_path / "report.json"
    run = watch(a, color_model, every_s=1.0, report=report)
    run.add_source(str(b))
    run.run()
    assert [s["source"] for s in json.loads(report.read_text())["sources"]] == [str(a), str(b)]


def test_refusals_name_what_is_wrong(clips, color_model, tmp_path):
    a, b, _ = clips
    run = watch(a, color_model, csv=tmp_path / "t.csv")  # its timeline has no source column
    with pytest.raises(BadInputError, match="no source column"):
        run.add_source(str(b))
    with pytest.raises(BadInputError, match=r"no source named 'x\.mp4' in this run \(names: a\.mp4\)"):
        run.remove_source("x.mp4")
