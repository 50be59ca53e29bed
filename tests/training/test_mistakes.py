"""`evaluate --errors`: known mistakes of the tiny colour model (no TensorFlow), written and read back."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.cli import main
from stream.model.card import ModelCard
from tests.helpers import COLORS, color_frame, make_color_model
from training.evaluate import Evaluation, evaluate
from training.mistakes import (
    CAPTION_HEIGHT,
    GAP,
    PER_ROW,
    PER_SHEET,
    THUMB_WIDTH,
    FramePrediction,
    frame_predictions,
    write_errors,
)

# Colours the colour model is unsure of (found by scanning it): jerry at 0.678, neither at 0.889.
JERRY_UNSURE = (62, 63, 174)
NEITHER_UNSURE = (63, 63, 175)

# (shown, claimed label): three mistakes, the most confident (pure red called tom) last in time.
CASE = [
    (COLORS[0], 0),
    (JERRY_UNSURE, 2),  # predicted jerry 0.678
    (COLORS[1], 1),
    (NEITHER_UNSURE, 1),  # predicted neither 0.889
    (COLORS[2], 2),
    (COLORS[1], 2),  # predicted jerry ~1.0
]


def write_case(directory: Path, case=CASE) -> Path:
    rows = ["Image_ID,Class"]
    for i, (colour, label) in enumerate(case):
        image = np.empty((48, 64, 3), np.uint8)
        image[:] = colour
        cv2.imwrite(str(directory / f"frame{i}.png"), image)
        rows.append(f"frame{i}.png,{label}")
    (directory / "labels.csv").write_text("\n".join(rows) + "\n")
    return directory / "labels.csv"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def cell_centre(sheet: np.ndarray, index: int, thumb_h: int) -> np.ndarray:
    x = GAP + (index % PER_ROW) * (THUMB_WIDTH + GAP) + THUMB_WIDTH // 2
    y = GAP + (index // PER_ROW) * (thumb_h + CAPTION_HEIGHT + GAP) + thumb_h // 2
    return sheet[y, x].astype(int)


@pytest.fixture
def case_eval(tmp_path, color_model):
    frames = tmp_path / "frames"
    frames.mkdir()
    return evaluate(color_model, frames, write_case(frames))


def test_records_and_csv(case_eval, tmp_path):
    assert [f.name for f in case_eval.predictions] == [f"frame{i}.png" for i in range(6)]
    result = write_errors(case_eval, tmp_path / "out")
    assert (result.frames, result.wrong) == (6, 3)
    rows = read_csv(result.predictions_csv)
    header = ["Image_ID", "time_s", "true", "predicted", "confidence", "correct", "p_neither", "p_jerry", "p_tom"]
    assert list(rows[0]) == header
    assert [(r["Image_ID"], r["true"], r["predicted"], r["correct"]) for r in rows] == [
        ("frame0.png", "neither", "neither", "1"),
        ("frame1.png", "tom", "jerry", "0"),
        ("frame2.png", "jerry", "jerry", "1"),
        ("frame3.png", "jerry", "neither", "0"),
        ("frame4.png", "tom", "tom", "1"),
        ("frame5.png", "tom", "jerry", "0"),
    ]
    assert [float(r["time_s"]) for r in rows] == [0, 1, 2, 3, 4, 5]  # the seed's frameN = second N
    assert float(rows[1]["confidence"]) == pytest.approx(0.678, abs=0.01)
    assert float(rows[3]["confidence"]) == pytest.approx(0.889, abs=0.01)
    for r in rows:  # single-label: confidence is the predicted class's probability
        assert float(r["confidence"]) == pytest.approx(float(r[f"p_{r['predicted']}"]), abs=1e-4)
    assert case_eval.to_dict().keys() == {"accuracy", "samples", "per_class", "confusion", "screen_time_s", "crop"}


def test_contact_sheet_most_confident_first(case_eval, tmp_path):
    result = write_errors(case_eval, tmp_path / "out")
    assert result.sheets == (tmp_path / "out" / "errors.jpg",)
    sheet = cv2.imread(str(result.sheets[0]))
    assert sheet is not None
    thumb_h = 48 * THUMB_WIDTH // 64  # 64x48 frames -> 240x180
    assert sheet.shape == (GAP + thumb_h + CAPTION_HEIGHT + GAP, GAP + 3 * (THUMB_WIDTH + GAP), 3)
    # First the pure red frame called tom (~1.0), though last in time; then the two unsure blends.
    assert np.abs(cell_centre(sheet, 0, thumb_h) - COLORS[1]).max() < 12
    for i in (1, 2):
        assert np.abs(cell_centre(sheet, i, thumb_h) - NEITHER_UNSURE).max() < 12
    # The page: the largest confusion first (tom -> jerry, twice), most confident first within it.
    html = result.index_html.read_text()
    assert html.index("frame5.png") < html.index("frame1.png") < html.index("frame3.png")
    thumbs = sorted((tmp_path / "out" / "thumbs").glob("*.jpg"))
    assert len(thumbs) == 3 and all(cv2.imread(str(t)).shape == (thumb_h, THUMB_WIDTH, 3) for t in thumbs)
    for src in re.findall(r'<img src="([^"]+)"', html):
        assert (tmp_path / "out" / src).is_file()


def test_html_confusion_and_per_class(case_eval, tmp_path):
    html = write_errors(case_eval, tmp_path / "out").index_html.read_text()
    assert case_eval.metrics["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 2, 1]]
    table = html.split("<h2>Confusion", 1)[1].split("</table>", 1)[0]
    rows = {
        name: [int(n) for n in re.findall(r"<td[^>]*>(\d+)</td>", cells)]
        for name, cells in re.findall(r"<tr><th>([^<]*)</th>(.*?)</tr>", table)
    }
    assert rows.pop("true \\ predicted") == []  # the header row
    assert rows == {"neither": [1, 0, 0], "jerry": [1, 1, 0], "tom": [0, 2, 1]}
    assert "3 wrong of 6 frames (accuracy 50.0%)" in html
    assert "<tr><td>jerry</td><td>0.333</td><td>0.500</td><td>2</td></tr>" in html  # precision 1/3, recall 1/2
    assert "true tom → predicted jerry" in html and "(2)" in html


def test_html_escapes_class_names(tmp_path):
    model = make_color_model(tmp_path / "odd.onnx", classes=("neither", "<jerry>", "tom"))
    frames = tmp_path / "frames"
    frames.mkdir()
    html = write_errors(evaluate(model, frames, write_case(frames)), tmp_path / "out").index_html.read_text()
    assert "&lt;jerry&gt;" in html and "<jerry>" not in html
    assert "p_<jerry>" in (tmp_path / "out" / "predictions.csv").read_text().splitlines()[0]


def test_no_mistakes_no_sheet_and_stale_sheets_removed(tmp_path, color_model):
    out = tmp_path / "out"
    out.mkdir()
    (out / "errors.jpg").write_bytes(b"old")  # an earlier run's sheet must not outlive its mistakes
    (out / "errors-2.jpg").write_bytes(b"old")
    frames = tmp_path / "frames"
    frames.mkdir()
    labels = frames / "labels.csv"
    rows = ["Image_ID,Class"]
    for i, label in enumerate([0, 1, 2, 1]):
        cv2.imwrite(str(frames / f"frame{i}.png"), color_frame(label, noise=10, seed=i))
        rows.append(f"frame{i}.png,{label}")
    labels.write_text("\n".join(rows) + "\n")
    result = write_errors(evaluate(color_model, frames, labels), out)
    assert (result.frames, result.wrong, result.sheets) == (4, 0, ())
    assert not list(out.glob("errors*.jpg")) and not (out / "thumbs").exists()
    assert all(r["correct"] == "1" for r in read_csv(result.predictions_csv))
    assert "No mistakes" in result.index_html.read_text()


def test_grid_rows_and_overflow_sheets(tmp_path):
    """More than PER_SHEET mistakes: full sheets of PER_ROW columns, the rest on errors-2.jpg."""
    frames = tmp_path / "frames"
    frames.mkdir()
    records = []
    for i in range(PER_SHEET + 7):
        path = frames / f"f{i}.png"
        cv2.imwrite(str(path), np.full((64, 32, 3), 3 * i, np.uint8))  # portrait (240x480 thumbnails); grey 3i
        p = 0.5 + i / (2 * (PER_SHEET + 7))  # the later, the more confident
        probs = {"neither": 0.0, "jerry": p, "tom": 1 - p}
        records.append(FramePrediction(path.name, path, float(i), ("tom",), ("jerry",), p, probs))
    per_class = {c: {"precision": 0.0, "recall": 0.0, "support": 0} for c in ("neither", "jerry", "tom")}
    evaluation = Evaluation({"accuracy": 0.0, "per_class": per_class}, {}, predictions=tuple(records))
    result = write_errors(evaluation, tmp_path / "out")
    assert [p.name for p in result.sheets] == ["errors.jpg", "errors-2.jpg"]
    first, second = (cv2.imread(str(p)) for p in result.sheets)
    cell_h = 480 + CAPTION_HEIGHT
    rows = PER_SHEET // PER_ROW
    assert first.shape == (GAP + rows * (cell_h + GAP), GAP + PER_ROW * (THUMB_WIDTH + GAP), 3)
    assert second.shape == (GAP + 2 * (cell_h + GAP), GAP + PER_ROW * (THUMB_WIDTH + GAP), 3)  # 7: rows of 6 and 1
    # Most confident first: the last frame opens the first sheet; the 7 least confident fill the second.
    assert cell_centre(first, 0, 480) == pytest.approx([3 * (PER_SHEET + 6)] * 3, abs=4)
    assert cell_centre(first, 1, 480) == pytest.approx([3 * (PER_SHEET + 5)] * 3, abs=4)
    assert cell_centre(second, 0, 480) == pytest.approx([3 * 6] * 3, abs=4)
    assert cell_centre(second, 6, 480) == pytest.approx([0] * 3, abs=4)
    assert len(list((tmp_path / "out" / "thumbs").glob("*.jpg"))) == PER_SHEET + 7
    # Fewer mistakes next time: errors-2.jpg and the surplus thumbnails go.
    evaluation = Evaluation(evaluation.metrics, {}, predictions=tuple(records[:2]))
    assert [p.name for p in write_errors(evaluation, tmp_path / "out").sheets] == ["errors.jpg"]
    assert not (tmp_path / "out" / "errors-2.jpg").exists()
    assert len(list((tmp_path / "out" / "thumbs").glob("*.jpg"))) == 2


def test_multi_label_confidence():
    card = ModelCard(classes=("neither", "jerry", "tom"), input_width=8, input_height=8, multi_label=True)
    probs = np.array([[0.1, 0.9, 0.6]])
    (record,) = frame_predictions([Path("f.png")], [0.0], [(1,)], [(1, 2)], probs, card, Path("."))
    assert record.confidence == pytest.approx((0.9 + 0.9 + 0.6) / 3)  # mean of max(p, 1 - p)
    assert (record.true, record.predicted, record.correct) == (("jerry",), ("jerry", "tom"), False)


def test_cli_errors(tmp_path, color_model, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    labels = write_case(frames)
    out = tmp_path / "errors"
    code = main(
        ["-q", "evaluate", str(color_model), "--frames", str(frames), "--labels", str(labels), "--errors", str(out)]
    )
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"3 wrong of 6 frames: {out / 'index.html'} (contact sheet {out / 'errors.jpg'})"
    assert (out / "predictions.csv").is_file()


def test_cli_unwritable_errors_dir(tmp_path, color_model, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    labels = write_case(frames)
    (tmp_path / "file").write_text("not a directory")
    bad = tmp_path / "file" / "errors"  # cannot be created, even by root
    code = main(
        ["-q", "evaluate", str(color_model), "--frames", str(frames), "--labels", str(labels), "--errors", str(bad)]
    )
    assert code != 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("screentime: error: --errors") and str(bad) in lines[0]
