"""`screentime demo` end to end (random backbone weights: no download), as a new user runs it."""

import json

import pytest

from stream.cli import main

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCREENTIME_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--backbone-weights", "random", "--no-dashboard"]) == 0
    printed = capsys.readouterr().out
    assert "cross-validated accuracy" in printed and "90% interval" in printed
    report = json.loads((out / "report.json").read_text())
    assert set(report["screen_time_interval_s"]) == set(report["screen_time_s"])
    assert (out / "overlay.mp4").stat().st_size > 0
