"""The run and the pipeline over scripted in-memory sources: no decoder, no server, no sleeps.

A run opens each output once, tags every record with its source, and takes sources in and out
while it runs; each source's outputs get its final report, the others lose nothing."""

from __future__ import annotations

import json
import threading

import pytest

from stream.errors import BadInputError, SourceError
from stream.model.engine import Engine
from stream.outputs.events import Ended, Event, OutputBase, Sampled, Started
from stream.outputs.report_sink import ReportSink
from stream.run.pipeline import Pipeline
from stream.run.run import Run
from stream.settings import SourceSettings
from tests.helpers import ScriptedSource, script

SCENES = [(0, 0.0, 1.0), (1, 1.0, 3.0), (2, 3.0, 4.0)]  # neither, jerry, tom
TRUTH = {"neither": 1.0, "jerry": 2.0, "tom": 1.0}


@pytest.fixture(scope="module")
def engine(color_model):
    return Engine(color_model, "cpu")


class Recording(OutputBase):
    """Writes down every event it gets, in order, as a call: ("added", name), ("update", name,
    t_s, label), ("removed", name, samples)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.lock = threading.Lock()

    def _log(self, *call) -> None:
        with self.lock:
            self.calls.append(call)

    def __enter__(self):
        self._log("enter")
        return self

    def __exit__(self, *exc) -> None:
        self._log("exit")

    def handle(self, event: Event) -> None:
        match event:
            case Started(tag=tag):
                self._log("added", tag.name)
            case Sampled(tag=tag, prediction=prediction):
                self._log("update", tag.name, prediction.t_s, prediction.label)
            case Ended(tag=tag, report=report):
                self._log("removed", tag.name, None if report is None else report.samples)
            case _:
                pass

    def of(self, kind: str, name: str | None = None) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind and (name is None or c[1] == name)]


def test_pipeline_counts_a_scripted_source_exactly(engine):
    pipeline = Pipeline(
        ScriptedSource("clip", script(SCENES, 10)), engine, SourceSettings(every_s=0.0, skip_similar=0.0)
    )
    predictions = list(pipeline.run())
    assert len(predictions) == 40 and pipeline.report.samples == 40
    assert pipeline.report.screen_time_s == pytest.approx(TRUTH)
    assert pipeline.report.ended == "end of stream" and pipeline.source.closed


def test_a_run_opens_each_output_once_and_tags_every_record(engine):
    recording = Recording()
    run = Run(engine, [recording])
    a = run.add_source(ScriptedSource("a.mp4", script(SCENES, 10)), SourceSettings(every_s=0.5, skip_similar=0.0))
    b = run.add_source(
        ScriptedSource("b.mp4", script([(2, 0.0, 2.0)], 10)), SourceSettings(every_s=0.5, skip_similar=0.0)
    )
    assert (a.name, b.name, a.key, b.key) == ("a.mp4", "b.mp4", 0, 1)
    tags = [tag.name for tag, _ in run]
    assert tags.count("a.mp4") == 8 and tags.count("b.mp4") == 4
    calls = recording.calls
    assert calls[0] == ("enter",) and calls[-1] == ("exit",) and calls.count(("enter",)) == calls.count(("exit",)) == 1
    for name in ("a.mp4", "b.mp4"):  # added once, before its first record; removed once, after its last
        mine = [c[0] for c in calls if len(c) > 1 and c[1] == name]
        assert mine[0] == "added" and mine[-1] == "removed" and mine.count("added") == mine.count("removed") == 1
    assert [c[3] for c in recording.of("update", "b.mp4")] == ["tom"] * 4
    assert [c[2] for c in recording.of("update", "a.mp4")] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert recording.of("removed") in (
        [("removed", "a.mp4", 8), ("removed", "b.mp4", 4)],
        [("removed", "b.mp4", 4), ("removed", "a.mp4", 8)],
    )
    assert [r.source for r in run.reports] == ["a.mp4", "b.mp4"]
    assert run.reports[0].screen_time_s == pytest.approx(TRUTH)


def test_sources_added_and_removed_while_running_each_get_their_section(engine, tmp_path):
    path = tmp_path / "report.json"
    recording = Recording()
    gate = threading.Event()
    run = Run(engine, [ReportSink(path, several=True), recording])
    run.add_source(ScriptedSource("a.mp4", script(SCENES, 10)), SourceSettings(every_s=0.0, skip_similar=0.0))
    held = run.add_source(
        ScriptedSource("b.mp4", script(SCENES, 10), gate=gate, hold_at=5), SourceSettings(every_s=0.0, skip_similar=0.0)
    )
    added = None
    seen: dict[str, int] = {}
    for tag, _ in run:
        seen[tag.name] = seen.get(tag.name, 0) + 1
        if added is None:  # the run is running: a camera joins
            added = run.add_source(
                ScriptedSource("c.mp4", script([(1, 0.0, 2.0)], 10)),
                SourceSettings(every_s=0.0, skip_similar=0.0),
                name="cam c",
            )
        if tag == held and seen["b.mp4"] == 5:  # b holds before its 6th picture: take it out
            run.remove_source(held, timeout_s=0)
            gate.set()
    assert run.report(held) is not None and run.report(held).ended == "interrupted"
    assert 5 <= run.report(held).samples <= 6  # at most the picture in flight when it was removed
    sections = json.loads(path.read_text())["sources"]
    assert [s["source"] for s in sections] == ["a.mp4", "b.mp4", "c.mp4"]
    a, b, c = sections
    assert a["samples"] == 40 and a["screen_time_s"] == pytest.approx(TRUTH)  # lost nothing
    assert c["samples"] == 20 and c["screen_time_s"]["jerry"] == pytest.approx(2.0)
    assert b["ended"] == "interrupted" and b["samples"] == run.report(held).samples
    assert seen == {"a.mp4": 40, "b.mp4": b["samples"], "cam c": 20}
    assert recording.of("added", "cam c") and recording.of("removed", "cam c") == [("removed", "cam c", 20)]
    with pytest.raises(BadInputError, match="has ended"):
        run.add_source(ScriptedSource("d.mp4", []), SourceSettings(every_s=0.0, skip_similar=0.0))


def test_a_source_that_never_starts_leaves_the_run_and_fails_it_at_the_end(engine):
    recording = Recording()
    run = Run(engine, [recording])
    run.add_source(ScriptedSource("a.mp4", script(SCENES, 10)), SourceSettings(every_s=1.0, skip_similar=0.0))
    run.add_source(ScriptedSource("empty.mp4", []), SourceSettings(every_s=1.0, skip_similar=0.0))
    with pytest.raises(SourceError, match=r"1 of 2 sources failed: empty\.mp4: no decodable frames"):
        list(run)
    assert recording.of("removed", "empty.mp4") == [("removed", "empty.mp4", 0)]  # its report: nothing counted
    assert recording.of("removed", "a.mp4") == [("removed", "a.mp4", 4)]
    assert recording.calls.count(("exit",)) == 1


def test_names_are_unique_in_a_run(engine):
    run = Run(engine)
    first = run.add_source(ScriptedSource("/x/clip.mp4", []), SourceSettings(every_s=1.0, skip_similar=0.0))
    second = run.add_source(ScriptedSource("/y/clip.mp4", []), SourceSettings(every_s=1.0, skip_similar=0.0))
    assert (first.name, second.name) == ("clip.mp4", "clip.mp4-2")
    with pytest.raises(BadInputError, match="already in the run"):
        run.add_source(ScriptedSource("z.mp4", []), SourceSettings(every_s=1.0, skip_similar=0.0), name="clip.mp4")


def test_a_run_kept_open_takes_sources_after_all_have_ended_until_stopped(engine):
    recording = Recording()
    run = Run(engine, [recording], keep_open=True)
    first = run.add_source(ScriptedSource("a.mp4", script(SCENES, 10)), SourceSettings(every_s=1.0, skip_similar=0.0))
    later = None
    seen = {first: 0}
    for tag, _ in run:
        seen[tag] += 1
        if tag == first and seen[first] == 4:
            assert run.remove_source(first).ended == "end of stream"  # ended by itself: nothing was running
            later = run.add_source(
                ScriptedSource("b.mp4", script(SCENES, 10)), SourceSettings(every_s=1.0, skip_similar=0.0)
            )
            seen[later] = 0
        elif tag == later and seen[later] == 4:
            run.stop()
    assert [r.samples for r in run.reports] == [4, 4]
    assert recording.calls.count(("exit",)) == 1
