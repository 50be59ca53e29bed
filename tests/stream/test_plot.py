"""`screentime plot`: the picture is read back pixel by pixel, not trusted from an exit code."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream import watch
from stream.outputs.plot import OUTAGE_COLOUR, class_colours, load_sections
from tests.helpers import write_color_video

SCENES = [(0, 0.0, 3.0), (1, 3.0, 7.0), (2, 7.0, 10.0)]  # neither, jerry, tom


def screentime(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], capture_output=True, text=True, timeout=120)


def mask(image: np.ndarray, colour: str, tolerance: int = 3) -> np.ndarray:
    """Areas of flat `colour` ('#rrggbb'): bars and shades, not text (an opening removes strokes a
    few pixels thick, whose anti-aliased edges can match a grey)."""
    bgr = np.array(list(bytes.fromhex(colour[1:]))[::-1], int)
    exact = np.all(np.abs(image.astype(int) - bgr) <= tolerance, axis=2).astype(np.uint8)
    return cv2.morphologyEx(exact, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)).astype(bool)


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(int), [0]))))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def lane(image: np.ndarray, colour: str) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """A class's lane: its rows, and the column runs of its bars along the lane's middle row."""
    m = mask(image, colour)
    (rows,) = runs(m.any(axis=1))  # one lane, one band of rows
    middle = (rows[0] + rows[1]) // 2
    return rows, runs(m[middle])


@pytest.fixture(scope="module")
def report_path(tmp_path_factory, color_model) -> Path:
    directory = tmp_path_factory.mktemp("plot")
    clip = write_color_video(directory / "clip.mp4", SCENES, [i / 10 for i in range(100)])
    path = directory / "report.json"
    watch(clip, color_model, every_s=0.5, report=path).run()
    return path


def test_lanes_and_bars_where_each_character_was_on_screen(report_path, tmp_path):
    png = tmp_path / "timeline.png"
    result = screentime("plot", str(report_path), "-o", str(png))
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(png))
    assert image is not None
    colours = class_colours(load_sections(report_path)[0])
    lanes = {name: lane(image, colours[name]) for name in ("jerry", "tom", "neither")}
    # One lane each, top to bottom: the characters in the model's order, then the background.
    (jerry_rows, jerry), (tom_rows, tom), (neither_rows, neither) = lanes["jerry"], lanes["tom"], lanes["neither"]
    assert jerry_rows[1] < tom_rows[0] and tom_rows[1] < neither_rows[0]
    # One bar per lane (each character was on screen once), together covering the whole 10 s axis.
    assert len(jerry) == len(tom) == len(neither) == 1
    x0, x1 = neither[0][0], tom[0][1]
    per_s = (x1 - x0) / 10.0
    assert per_s > 50
    assert jerry[0][0] == pytest.approx(x0 + 3 * per_s, abs=2) and jerry[0][1] == pytest.approx(x0 + 7 * per_s, abs=2)
    assert neither[0][1] == pytest.approx(x0 + 3 * per_s, abs=2)
    assert tom[0][0] == pytest.approx(x0 + 7 * per_s, abs=2)
    # Nothing of jerry's colour anywhere else in the picture (no legend swatch, no stray bar).
    assert not mask(image, colours["jerry"])[:, : jerry[0][0] - 1].any()
    assert not mask(image, colours["jerry"])[:, jerry[0][1] + 2 :].any()


def crafted(start_s: float = 1000.0) -> dict:
    """A live run's report (monotonic clock) with a camera outage from 4 s to 6 s."""

    def at(s: float) -> float:
        return start_s + s

    return {
        "source": "rtsp://cam:***@10.0.0.5/live",
        "classes": ["neither", "jerry", "tom"],
        "characters": ["jerry", "tom"],
        "background": "neither",
        "ended": "interrupted",
        "samples": 16,
        "start_s": at(0),
        "end_s": at(10),
        "duration_s": 8.0,
        "screen_time_s": {"neither": 0.0, "jerry": 4.0, "tom": 4.0},
        "segments": [
            {"class": "jerry", "start_s": at(0), "end_s": at(4)},
            {"class": "tom", "start_s": at(6), "end_s": at(10)},
        ],
        "outages": [{"start_s": at(4), "end_s": at(6)}],
    }


def test_outage_is_shaded_between_the_bars(tmp_path):
    report = tmp_path / "live.json"
    report.write_text(json.dumps(crafted()))
    png = tmp_path / "live.png"
    assert screentime("plot", str(report), "-o", str(png)).returncode == 0
    image = cv2.imread(str(png))
    colours = class_colours(crafted())
    _, jerry = lane(image, colours["jerry"])
    _, tom = lane(image, colours["tom"])
    x0, x1 = jerry[0][0], tom[0][1]
    per_s = (x1 - x0) / 10.0
    shade = mask(image, OUTAGE_COLOUR)
    columns = runs(shade.any(axis=0))
    assert len(columns) == 1, columns
    (first, last) = columns[0]
    assert first == pytest.approx(x0 + 4 * per_s, abs=2) and last == pytest.approx(x0 + 6 * per_s, abs=2)
    # It spans the lanes, top to bottom of the block.
    (rows,) = runs(shade[:, (first + last) // 2])
    assert rows[1] - rows[0] > 3 * 0.45 * 100 * 0.7


def test_several_sources_one_block_each(tmp_path):
    second = crafted(start_s=0.0) | {"source": "b.mp4", "outages": []}
    report = tmp_path / "multi.json"
    report.write_text(json.dumps({"sources": [crafted(), second]}))
    png = tmp_path / "multi.png"
    assert screentime("plot", str(report), "-o", str(png)).returncode == 0
    image = cv2.imread(str(png))
    jerry_rows = runs(mask(image, class_colours(second)["jerry"]).any(axis=1))
    assert len(jerry_rows) == 2  # one jerry lane per source, one above the other


def test_html_is_self_contained_with_totals_and_segments(report_path, tmp_path):
    page = tmp_path / "run.html"
    result = screentime("plot", str(report_path), "--html", str(page))
    assert result.returncode == 0, result.stderr
    text = page.read_text()
    assert not re.search(r"https?://", text)  # nothing fetched: opens offline, mails as one file
    assert "<script" not in text and "<link" not in text
    (encoded,) = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(encoded), np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape[1] > 500
    row = r"<tr><td>.*?</span>(\w+)[^<]*</td><td>([\d.]+)</td><td>([\d.]+%)</td><td>(\d+)</td></tr>"
    totals = re.findall(row, text)
    assert totals == [("jerry", "4.0", "40.0%", "1"), ("tom", "3.0", "30.0%", "1"), ("neither", "3.0", "30.0%", "1")]
    assert "Segments (3)" in text and "<td>jerry</td><td>3</td><td>7</td><td>4.0</td>" in text
    assert not (tmp_path / "report.png").exists()  # --html alone writes only the page


def test_missing_matplotlib_is_one_line_with_the_install_command(report_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None; from stream.cli import main; "
        f"sys.exit(main(['plot', {str(report_path)!r}, '-o', '/tmp/never.png']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install -e ".[plot]"' in lines[0], result.stderr


def test_not_a_report_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    result = screentime("plot", str(bad))
    assert result.returncode == 2 and "not a screentime report" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_importing_stream_never_loads_matplotlib():
    code = "import sys, stream, stream.cli, stream.api, stream.outputs.plot; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_an_audited_report_shows_the_audit_beside_each_total(report_path, tmp_path):
    from stream.outputs.plot import audit_note, plot_report

    data = json.loads(report_path.read_text())
    assert audit_note(data, "jerry") == ""
    data["audit"] = {"n": 20, "estimate_s": {"jerry": 65.0}, "interval_s": {"jerry": [58.0, 72.0]}, "method": "m"}
    assert audit_note(data, "jerry") == "  audited 65.0 s (58.0 s-72.0 s)"
    assert audit_note(data, "tom") == ""
    audited = tmp_path / "audited.json"
    audited.write_text(json.dumps(data))
    assert plot_report(audited, tmp_path / "a.png")[0].stat().st_size > 0
