"""Errors keep their kind: an output that cannot write is cut off quietly (exit 4); a bug in a
sink is logged with its traceback and raised at the end, after the other outputs are written."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import pytest

from stream.errors import OutputError
from stream.model.engine import Engine
from stream.outputs.events import Ended, Event, Output, OutputBase, Sampled
from stream.outputs.report_sink import ReportSink
from stream.run.run import Run
from stream.settings import SourceSettings
from stream.sources.open import open_source
from tests.helpers import write_color_video

SCENES = [(0, 0.0, 1.0), (1, 1.0, 2.0)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_color_video(tmp_path_factory.mktemp("v") / "clip.mp4", SCENES, [i / 10 for i in range(20)])


class FailingOutput(OutputBase):
    """An output (run-wide, or a source's own as the overlay video is) that raises on its first sample."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.updates = 0

    def handle(self, event: Event) -> None:
        if isinstance(event, Sampled):
            self.updates += 1
            raise self.error


class Counting(OutputBase):
    def __init__(self) -> None:
        self.updates = 0
        self.closed = False

    def handle(self, event: Event) -> None:
        if isinstance(event, Sampled):
            self.updates += 1
        elif isinstance(event, Ended):
            self.closed = event.report is not None


CANNOT_WRITE = [OSError(28, "No space left on device"), OutputError("report x: disk full")]


def run_with(clip, color_model, tmp_path, output: Output):
    run = Run(Engine(color_model, "cpu"), [output, ReportSink(tmp_path / "r.json")])
    run.add_source(open_source(str(clip)), SourceSettings(every_s=0.5, skip_similar=0.0))
    return run


@pytest.mark.parametrize("error", CANNOT_WRITE)
def test_an_output_that_cannot_write_is_cut_off_and_reported_at_the_end(clip, color_model, tmp_path, error, caplog):
    failing = FailingOutput(error)
    with pytest.raises(OutputError) as caught:
        list(run_with(clip, color_model, tmp_path, failing))
    assert failing.updates == 1 and caught.value.exit_code == 4
    assert json.loads((tmp_path / "r.json").read_text())["samples"] == 4  # the other output got every sample
    assert not any(r.exc_info for r in caplog.records)  # one line, no traceback


def test_a_bug_in_an_output_keeps_its_traceback_and_is_raised_at_the_end(clip, color_model, tmp_path, caplog):
    failing = FailingOutput(TypeError("unsupported operand"))
    with caplog.at_level(logging.ERROR), pytest.raises(TypeError, match="unsupported operand"):
        list(run_with(clip, color_model, tmp_path, failing))
    assert failing.updates == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["samples"] == 4 and report["ended"] == "end of stream"  # the others were finished first
    bugs = [r for r in caplog.records if r.exc_info and r.exc_info[0] is TypeError]
    assert len(bugs) == 1 and "FailingOutput" in bugs[0].getMessage()


@pytest.mark.parametrize("error", [*CANNOT_WRITE, TypeError("unsupported operand")])
def test_a_sources_own_output_that_fails_keeps_its_kind(clip, color_model, error, caplog):
    failing, other = FailingOutput(error), Counting()
    run = Run(Engine(color_model, "cpu"))
    run.add_source(open_source(str(clip)), SourceSettings(every_s=0.5, skip_similar=0.0), outputs=[failing, other])
    with caplog.at_level(logging.ERROR), pytest.raises(type(error) if isinstance(error, TypeError) else OutputError):
        list(run)
    assert failing.updates == 1 and other.updates == 4 and other.closed
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == (1 if isinstance(error, TypeError) else 0)


def test_the_cli_exits_non_zero_with_a_traceback_for_a_bug_in_an_output(clip, color_model, tmp_path):
    script = textwrap.dedent(
        """
        import sys
        import stream.api
        from stream.outputs.report_sink import TimelineSink

        class Buggy(TimelineSink):
            def handle(self, event):
                if type(event).__name__ == "Sampled":
                    raise TypeError("a bug, not a full disk")
                super().handle(event)

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
