"""`screentime evaluate --errors DIR`: what the model gets wrong, to be seen at a glance.

Writes every frame's verdict (`predictions.csv`), contact sheets of the wrong frames, most
confident mistakes first (`errors.jpg`, then `errors-2.jpg`, ... PER_SHEET frames each, so none is
left out), and a self-contained page (`index.html`: confusion matrix, per-class precision and
recall, the wrong frames grouped by true -> predicted with thumbnails copied into `thumbs/`, so
the page survives the frames directory moving). numpy, OpenCV and the standard library only: the
stream side must never need TensorFlow.

It runs past 300 lines because the page, the contact sheets and the CSV are one report of one
evaluation, written together.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from stream.errors import BadInputError, OutputError
from stream.model.card import ModelCard
from stream.outputs.atomic import atomic_write_bytes, atomic_write_text, check_writable, fsync_dir
from stream.outputs.clock import length

THUMB_WIDTH = 240  # px; height keeps the frame's aspect
PER_ROW = 6
PER_SHEET = 60  # wrong frames per contact sheet; the rest go to errors-2.jpg, errors-3.jpg, ...
CAPTION_HEIGHT = 60  # the dark band under each thumbnail: three lines of text
GAP = 4  # px between cells and around the sheet
JPEG_QUALITY = 85
SHEET_NAME = re.compile(r"errors(-\d+)?\.jpg")
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class FramePrediction:
    """One labelled frame's verdict. `confidence`: single-label, the probability of the predicted
    class; multi-label, the mean over classes of max(p, 1 - p), how sure the model is of the
    whole set of present/absent decisions."""

    name: str  # Image_ID, relative to the frames directory
    path: Path
    time_s: float
    true: tuple[str, ...]
    predicted: tuple[str, ...]
    confidence: float
    probs: dict[str, float]

    @property
    def correct(self) -> bool:
        return set(self.true) == set(self.predicted)


class Evaluation(Protocol):
    """What the error report reads of an evaluation (`training.evaluate.Evaluation` is one);
    a protocol, so this module need not import `evaluate`, which imports it."""

    @property
    def metrics(self) -> dict: ...

    @property
    def predictions(self) -> tuple[FramePrediction, ...]: ...


@dataclass(frozen=True)
class ErrorsResult:
    directory: Path
    predictions_csv: Path
    index_html: Path
    sheets: tuple[Path, ...]  # empty when there is no mistake
    frames: int
    wrong: int


def frame_predictions(
    paths: Sequence[Path],
    times_s: Sequence[float],
    true: Sequence[tuple[int, ...]],
    pred: Sequence[tuple[int, ...]],
    probs: np.ndarray,
    card: ModelCard,
    root: Path,
) -> tuple[FramePrediction, ...]:
    """`evaluate`'s per-frame arrays as records, in its (time) order."""
    classes = card.classes
    out = []
    for path, t, truth, guess, row in zip(paths, times_s, true, pred, probs, strict=True):
        row = np.asarray(row, dtype=np.float64)
        confidence = float(np.maximum(row, 1 - row).mean()) if card.multi_label else float(row[guess[0]])
        out.append(
            FramePrediction(
                name=_relative(path, root),
                path=path,
                time_s=float(t),
                true=tuple(classes[i] for i in truth),
                predicted=tuple(classes[i] for i in guess),
                confidence=confidence,
                probs={c: float(p) for c, p in zip(classes, row, strict=True)},
            )
        )
    return tuple(out)


def prepare_outdir(outdir: str | Path) -> Path:
    """Create OUTDIR and prove it writable before the model runs (BadInputError, one line)."""
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        check_writable(outdir / "index.html")
    except OSError as exc:
        raise BadInputError(f"--errors {outdir}: cannot write ({exc.strerror or exc})") from None
    return outdir


def write_errors(evaluation: Evaluation, outdir: str | Path) -> ErrorsResult:
    """Write predictions.csv, the contact sheets, thumbs/ and index.html into `outdir`.

    Sheets and thumbnails left by an earlier run that this one did not write are removed, so the
    directory never shows mistakes the model no longer makes. Raises OutputError (one line).
    """
    outdir = Path(outdir)
    frames = sorted(evaluation.predictions, key=lambda f: f.time_s)
    wrong = sorted((f for f in frames if not f.correct), key=lambda f: (-f.confidence, f.time_s))
    classes = list(evaluation.metrics["per_class"])
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        thumbs = {f.name: _thumbnail(f.path) for f in wrong}
        thumb_names = _write_thumbs(outdir / "thumbs", wrong, thumbs)
        sheets = []
        for n, start in enumerate(range(0, len(wrong), PER_SHEET), start=1):
            chunk = wrong[start : start + PER_SHEET]
            path = outdir / ("errors.jpg" if n == 1 else f"errors-{n}.jpg")
            _write_jpeg(path, contact_sheet(chunk, [thumbs[f.name] for f in chunk]))
            sheets.append(path)
        for old in outdir.glob("errors*.jpg"):
            if SHEET_NAME.fullmatch(old.name) and old not in sheets:
                old.unlink()
        fsync_dir(outdir)
        csv_path, html_path = outdir / "predictions.csv", outdir / "index.html"
        atomic_write_text(csv_path, predictions_csv(frames, classes))
        atomic_write_text(html_path, page(evaluation, frames, wrong, classes, thumb_names, sheets))
    except OSError as exc:
        raise OutputError(f"--errors {outdir}: {exc.strerror or exc}") from None
    return ErrorsResult(outdir, csv_path, html_path, tuple(sheets), len(frames), len(wrong))


def predictions_csv(frames: Sequence[FramePrediction], classes: Sequence[str]) -> str:
    """Every frame, time order: Image_ID,time_s,true,predicted,confidence,correct,p_<class>... (sets as a;b)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Image_ID", "time_s", "true", "predicted", "confidence", "correct", *(f"p_{c}" for c in classes)])
    for f in frames:
        writer.writerow(
            [
                f.name,
                f"{f.time_s:g}",
                ";".join(f.true),
                ";".join(f.predicted),
                f"{f.confidence:.4f}",
                int(f.correct),
                *(f"{f.probs[c]:.4f}" for c in classes),
            ]
        )
    return buffer.getvalue()


def contact_sheet(wrong: Sequence[FramePrediction], thumbs: Sequence[np.ndarray]) -> np.ndarray:
    """A grid, PER_ROW wide, of thumbnails each over a caption band; in the order given."""
    cols, rows = min(PER_ROW, len(wrong)), -(-len(wrong) // PER_ROW)
    cell_h = max(t.shape[0] for t in thumbs) + CAPTION_HEIGHT
    sheet = np.full((GAP + rows * (cell_h + GAP), GAP + cols * (THUMB_WIDTH + GAP), 3), 16, np.uint8)
    for i, (frame, thumb) in enumerate(zip(wrong, thumbs, strict=True)):
        x, y = GAP + (i % PER_ROW) * (THUMB_WIDTH + GAP), GAP + (i // PER_ROW) * (cell_h + GAP)
        sheet[y : y + thumb.shape[0], x : x + THUMB_WIDTH] = thumb
        band_y = y + cell_h - CAPTION_HEIGHT
        sheet[band_y : y + cell_h, x : x + THUMB_WIDTH] = (40, 40, 40)
        lines = [
            (f"{frame.name}  {length(frame.time_s)}", (210, 210, 210)),
            (f"true: {';'.join(frame.true)}", (140, 230, 140)),
            (f"pred: {';'.join(frame.predicted)} {frame.confidence:.2f}", (110, 110, 255)),
        ]
        for j, (text, colour) in enumerate(lines):
            cv2.putText(sheet, _fit(text), (x + 5, band_y + 17 + 19 * j), FONT, 0.45, colour, 1, cv2.LINE_AA)
    return sheet


def page(
    evaluation: Evaluation,
    frames: Sequence[FramePrediction],
    wrong: Sequence[FramePrediction],
    classes: Sequence[str],
    thumb_names: dict[str, str],
    sheets: Sequence[Path],
) -> str:
    """The self-contained report: inline style, no script, images by relative path only."""
    accuracy = evaluation.metrics.get("accuracy")
    summary = f"{len(wrong)} wrong of {len(frames)} frames" + (
        f" (accuracy {accuracy:.1%})" if accuracy is not None else ""
    )
    links = ['<a href="predictions.csv">predictions.csv</a> (every frame)']
    links += [f'<a href="{escape(p.name)}">{escape(p.name)}</a>' for p in sheets]
    per_class = "".join(
        f"<tr><td>{escape(name)}</td><td>{_ratio(v['precision'])}</td><td>{_ratio(v['recall'])}</td>"
        f"<td>{v['support']}</td></tr>"
        for name, v in evaluation.metrics["per_class"].items()
    )
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[FramePrediction]] = defaultdict(list)
    for f in wrong:  # most confident first, within each group too
        groups[(f.true, f.predicted)].append(f)
    blocks = []
    for (truth, guess), members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        figures = "".join(
            f'<figure><img src="thumbs/{escape(thumb_names[f.name])}" alt="{escape(f.name)}" loading="lazy">'
            f"<figcaption>{escape(f.name)} · {escape(length(f.time_s))}<br>"
            f"pred {escape(';'.join(f.predicted))} {f.confidence:.2f}</figcaption></figure>"
            for f in members
        )
        title = f"true {escape(';'.join(truth))} → predicted {escape(';'.join(guess))}"
        blocks.append(f'<h3>{title} <span class="n">({len(members)})</span></h3>\n<div class="grid">{figures}</div>')
    mistakes = "\n".join(blocks) if blocks else "<p>No mistakes: every frame was classified as labelled.</p>"
    return (
        f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>mistakes</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>What the model gets wrong</h1>\n"
        f'<p class="summary">{escape(summary)}</p>\n<p>{" · ".join(links)}</p>\n'
        f"<h2>Confusion (rows: true, columns: predicted)</h2>\n{_confusion_table(frames, classes)}\n"
        f"<h2>Per class</h2>\n<table><tr><th>class</th><th>precision</th><th>recall</th><th>support</th></tr>"
        f"{per_class}</table>\n<h2>Wrong frames, most confident first</h2>\n{mistakes}\n</body>\n</html>\n"
    )


STYLE = """
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { padding: 3px 10px; border: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.hit { background: #e6f4e6; } td.miss { background: #fbe3e3; font-weight: bold; }
.summary { font-size: 18px; } .n { color: #888; font-weight: normal; }
.grid { display: flex; flex-wrap: wrap; gap: 6px; }
figure { margin: 0; width: 240px; } figure img { width: 240px; display: block; }
figcaption { font-size: 12px; background: #282828; color: #eee; padding: 3px 5px; }
"""


def _confusion_table(frames: Sequence[FramePrediction], classes: Sequence[str]) -> str:
    """Rows true, columns predicted; multi-label sets (`jerry;tom`) get rows and columns of their own."""
    counts = Counter((";".join(f.true), ";".join(f.predicted)) for f in frames)
    order = {c: i for i, c in enumerate(classes)}
    seen = {k for pair in counts for k in pair}
    labels = list(classes) + sorted(
        seen - set(classes), key=lambda k: (k.count(";"), [order.get(c, len(order)) for c in k.split(";")])
    )
    head = "<tr><th>true \\ predicted</th>" + "".join(f"<th>{escape(k)}</th>" for k in labels) + "</tr>"
    rows = []
    for t in labels:
        cells = []
        for p in labels:
            n = counts.get((t, p), 0)
            kind = ' class="hit"' if t == p and n else ' class="miss"' if n else ""
            cells.append(f"<td{kind}>{n}</td>")
        rows.append(f"<tr><th>{escape(t)}</th>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _thumbnail(path: Path) -> np.ndarray:
    """THUMB_WIDTH wide, aspect kept; a grey placeholder if the frame can no longer be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return np.full((THUMB_WIDTH * 9 // 16, THUMB_WIDTH, 3), 96, np.uint8)
    height = max(1, round(image.shape[0] * THUMB_WIDTH / image.shape[1]))
    return cv2.resize(image, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)


def _write_thumbs(directory: Path, wrong: Sequence[FramePrediction], thumbs: dict[str, np.ndarray]) -> dict[str, str]:
    """thumbs/NNNNN-name.jpg per wrong frame (numbered: names may repeat once sanitised); stale ones removed."""
    names = {f.name: f"{i:05d}-{re.sub(r'[^A-Za-z0-9._-]', '_', Path(f.name).stem)}.jpg" for i, f in enumerate(wrong)}
    if names:
        directory.mkdir(exist_ok=True)
    for name, file in names.items():
        _write_jpeg(directory / file, thumbs[name], durable=False)
    if directory.is_dir():
        for old in directory.glob("*.jpg"):
            if old.name not in names.values():
                old.unlink()
        fsync_dir(directory)
    return names


def _write_jpeg(path: Path, image: np.ndarray, durable: bool = True) -> None:
    """Temp file beside `path`, then rename: a reader never sees half a picture."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OutputError(f"{path}: OpenCV could not encode the picture")
    atomic_write_bytes(path, data.tobytes(), durable)


def _fit(text: str, width: int = THUMB_WIDTH - 10) -> str:
    """Hershey fonts draw ASCII only; shorten with '...' until the line fits the thumbnail."""
    text = text.encode("ascii", "replace").decode("ascii")
    while len(text) > 4 and cv2.getTextSize(text, FONT, 0.45, 1)[0][0] > width:
        text = text[:-4] + "..."
    return text


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name
