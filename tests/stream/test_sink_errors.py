"""Errors keep their kind: an output that cannot write is cut off quietly (exit 4); a bug in a
sink is logged with its traceback and raised at the end, after the other outputs are written."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import pytest

from stream.engine import Engine
from stream.errors import OutputError
from stream.pipeline import Pipeline
from stream.sampler import Sampler
from stream.sinks import BaseSink
from stream.sinks.report_sink import ReportSink
from stream.sources import open_source
from tests.helpers import write_color_video

SCENES = [(0, 0.0, 1.0), (1, 1.0, 2.0)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_color_video(tmp_path_factory.mktemp("v") / "clip.mp4", SCENES, [i / 10 for i in range(20)])


class Failing(BaseSink):
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.updates = 0

    def update(self, prediction, frame, stats) -> None:
        self.updates += 1
        raise self.error


def consume(pipeline):
    return [p for p in pipeline.run()]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), OutputError("report x: disk full")])
def test_an_output_that_cannot_write_is_cut_off_and_reported_at_the_end(clip, color_model, tmp_path, error, caplog):
    failing = Failing(error)
    pipeline = Pipeline(
        open_source(str(clip)), Engine(color_model, "cpu"), Sampler(0.5), [failing, ReportSink(tmp_path / "r.json")]
    )
    with pytest.raises(OutputError) as caught:
        consume(pipeline)
    assert failing.updates == 1 and caught.value.exit_code == 4
    assert json.loads((tmp_path / "r.json").read_text())["samples"] == 4  # the other output got every sample
    assert not any(r.exc_info for r in caplog.records)  # one line, no traceback


def test_a_bug_in_a_sink_keeps_its_traceback_and_is_raised_at_the_end(clip, color_model, tmp_path, caplog):
    failing = Failing(TypeError("unsupported operand"))
    pipeline = Pipeline(
        open_source(str(clip)), Engine(color_model, "cpu"), Sampler(0.5), [failing, ReportSink(tmp_path / "r.json")]
    )
    with caplog.at_level(logging.ERROR), pytest.raises(TypeError, match="unsupported operand"):
        consume(pipeline)
    assert failing.updates == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["samples"] == 4 and report["ended"] == "end of stream"  # the others were finished first
    bugs = [r for r in caplog.records if r.exc_info and r.exc_info[0] is TypeError]
    assert len(bugs) == 1 and "Failing" in bugs[0].getMessage()


def test_the_cli_exits_non_zero_with_a_traceback_for_a_bug_in_an_output(clip, color_model, tmp_path):
    script = textwrap.dedent(
        """
        import sys
        import stream.api
        from stream.sinks.report_sink import TimelineSink

        class Buggy(TimelineSink):
            def _on_record(self, source, prediction):
                raise TypeError("a bug, not a full disk")

        stream.api.TimelineSink = Buggy
        from stream.cli import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    outputs = ["--csv", str(tmp_path / "t.csv"), "--report", str(tmp_path / "r.json"), "--no-dashboard"]
    result = subprocess.run(
        [sys.executable, "-c", script, "watch", str(clip), "--model", str(color_model), "--every", "0.5", *outputs],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode not in (0, 2, 3, 4), result.stderr
    assert "Traceback" in result.stderr and "TypeError: a bug, not a full disk" in result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["samples"] == 4
