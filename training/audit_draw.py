"""`screentime audit`: draw frames of an analysed video for a person to label, then correct the
report's totals with them (the arithmetic is stream.confidence.audit's).

`audit REPORT.json --draw -n 20 -o DIR` decodes the drawn samples' frames from the video the report
names and writes them as `extract` does (frameK.jpg, frames.csv, an empty labels.csv) plus
`audit.csv`, the design: each frame's sample index, stratum and inclusion probability. The
labeller reads DIR as any other (`screentime label DIR`). `audit REPORT.json --frames DIR` reads
the labels and writes the audit into the report.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2

from stream.confidence.audit import LEVEL, Draw, audit, audit_record, draw, sample_weights
from stream.errors import BadInputError, LabelError
from stream.outputs.atomic import atomic_write_text
from stream.sources.file import FileSource
from training.extract import FRAMES_CSV, LABELS_CSV, _write_csv
from training.labels import agreed, label_rows

AUDIT_CSV = "audit.csv"
AUDIT_HEADER = ["Image_ID", "sample", "t_s", "weight_s", "stratum", "stratum_size", "probability", "predicted", "seed"]


@dataclass(frozen=True)
class Population:
    """A file report's samples: what the model said on each, and the seconds each stands for."""

    classes: tuple[str, ...]
    times_s: list[float]
    weights_s: list[float]
    predicted: list[tuple[str, ...]]
    source: str
    every_s: float


def read_report(path: str | Path) -> tuple[dict, Population]:
    """The report and its population; a one-line error for one that cannot be audited."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such report") from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: not a screentime report ({exc})") from None
    timeline = report.get("timeline")
    if not timeline:
        raise BadInputError(f"{path}: no timeline (an audit needs a file's report, written by watch --report)")
    if report.get("outages") or report.get("resumed"):
        raise BadInputError(f"{path}: a live or resumed run; an audit needs one file analysed in one run")
    times = [float(e["t_s"]) for e in timeline]
    # Multi-label timelines name every character on a sample as "jerry+tom".
    predicted = [tuple(str(e["class"]).split("+")) for e in timeline]
    population = Population(
        classes=tuple(report["classes"]),
        times_s=times,
        weights_s=sample_weights(times, float(report["end_s"])),
        predicted=predicted,
        source=str(report["source"]),
        every_s=float(report.get("every_s") or 1.0),
    )
    return report, population


def draw_frames(
    report_path: str | Path, n: int, out_dir: str | Path, seed: int = 0, video: str | Path | None = None
) -> Path:
    """Draw `n` samples of the report's video (stratified over time, seeded) and write their frames."""
    _, population = read_report(report_path)
    out = Path(out_dir)
    if (out / AUDIT_CSV).exists():
        raise BadInputError(f"{out}: already holds an audit draw; draw into a new directory")
    try:
        draws = draw(len(population.times_s), n, seed)
    except ValueError as exc:
        raise BadInputError(f"-n {n}: {exc}") from None
    video = Path(video or population.source)
    wanted = sorted(draws, key=lambda d: d.index)
    images = _decode_at(video, [population.times_s[d.index] for d in wanted])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"{out}: cannot create output directory ({exc.strerror})") from None
    rows, design = [], []
    for k, (d, image) in enumerate(zip(wanted, images, strict=True)):
        name = f"frame{k}.jpg"
        if not cv2.imwrite(str(out / name), image):
            raise BadInputError(f"{out / name}: cannot write")
        t_s = population.times_s[d.index]
        rows.append((name, f"{t_s:.3f}"))
        design.append(
            (
                name,
                d.index,
                f"{t_s:.3f}",
                f"{population.weights_s[d.index]:.6f}",
                d.stratum,
                d.stratum_size,
                f"{d.probability:.8f}",
                "+".join(population.predicted[d.index]),
                seed,
            )
        )
    _write_csv(out / FRAMES_CSV, ["Image_ID", "timestamp_s"], rows)
    _write_csv(out / LABELS_CSV, ["Image_ID", "Class"], [(name, "") for name, _ in rows])
    _write_csv(out / AUDIT_CSV, AUDIT_HEADER, design)
    return out


def _decode_at(video: Path, times_s: list[float]) -> list:
    """The pictures at these exact sample times (sorted), decoding only what is needed."""
    source = FileSource(video, sparse_every_s=1.0)
    source.open()
    images = []
    try:
        targets = iter(times_s)
        target = next(targets, None)
        if target is not None:
            source.skip_to(target)
        while target is not None and (t_s := source.grab()) is not None:
            if t_s < target - 5e-4:
                continue
            image = source.retrieve()
            if image is None:
                raise BadInputError(f"{video}: frame at {t_s:.3f} s could not be decoded")
            while target is not None and target <= t_s + 5e-4:  # several draws never share a frame, but be safe
                images.append(image)
                target = next(targets, None)
            if target is not None:
                source.skip_to(target)
    finally:
        source.close()
    if len(images) != len(times_s):
        raise BadInputError(f"{video}: ended before the drawn frames (is it the video the report analysed?)")
    return images


def read_draw(directory: Path, classes: tuple[str, ...]) -> tuple[list[Draw], list[tuple[str, ...]], int]:
    """The draw's design and each frame's labelled classes; every drawn frame must be labelled
    (leaving out the hard ones would bias the audit)."""
    design_path, labels_path = directory / AUDIT_CSV, directory / LABELS_CSV
    if not design_path.is_file():
        raise BadInputError(f"{directory}: no {AUDIT_CSV} (draw one with: screentime audit REPORT.json --draw)")
    with design_path.open(newline="") as fh:
        design = list(csv.DictReader(fh))
    labels: dict[str, tuple[int, ...]] = {}
    if labels_path.is_file():  # the one label reader and conflict policy: a conflicting frame is unlabelled
        rows = label_rows(labels_path, len(classes))
        labels = agreed([(name, ids) for _, name, _, ids in rows if ids])[0]
    missing = [row["Image_ID"] for row in design if not labels.get(row["Image_ID"])]
    if missing:
        raise LabelError(
            f"{directory}: {len(missing)} of {len(design)} drawn frames have no label ({', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}); label every one (screentime label {directory})"
        )
    draws = [Draw(int(r["sample"]), int(r["stratum"]), int(r["stratum_size"])) for r in design]
    truth = [tuple(classes[i] for i in labels[r["Image_ID"]]) for r in design]
    return draws, truth, int(design[0]["seed"]) if design else 0


def apply_audit(report_path: str | Path, frames_dir: str | Path, level: float = LEVEL) -> dict:
    """Audit the report with the labelled draw in `frames_dir`; the `audit` record is written
    into the report (atomically) and returned."""
    report, population = read_report(report_path)
    directory = Path(frames_dir)
    draws, truth, seed = read_draw(directory, population.classes)
    if any(d.index >= len(population.times_s) for d in draws):
        raise BadInputError(f"{directory}: drawn from another report (sample indices beyond this timeline)")
    background = report.get("background")
    # A frame showing characters counts for them; "neither" with a character on it is a mistake in the labels.
    truth = [tuple(c for c in seen if c != background) or seen for seen in truth]
    try:
        found = audit(population.classes, population.predicted, population.weights_s, draws, truth, level)
    except ValueError as exc:
        raise BadInputError(f"{directory}: {exc}") from None
    record = audit_record(found, len(draws), level, seed=seed, frames=str(directory))
    report["audit"] = record
    atomic_write_text(Path(report_path), json.dumps(report, indent=2) + "\n")
    return record
