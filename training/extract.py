"""`screentime extract`: sample frames from a video by their own timestamps, for labelling."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
from rich.progress import Progress

from stream.defaults import CROP
from stream.errors import BadInputError, SourceError
from stream.frames.crop import AUTO, CROP_FRAMES, Crop, frame_area, to_crop, widest
from stream.frames.sampler import Sampler
from stream.outputs.atomic import atomic_write_text
from stream.sources.file import FileSource

FRAMES_CSV = "frames.csv"
LABELS_CSV = "labels.csv"
CROP_JSON = "crop.json"  # the black bars found over the video's frames (the frames are written whole)


@dataclass(frozen=True)
class ExtractResult:
    directory: Path
    frames: int
    duration_s: float


def extract(
    video: str | Path, out_dir: str | Path, every_s: float = 1.0, progress: bool = True, crop: str | Crop = CROP
) -> ExtractResult:
    """Write `frame{N}.jpg`, `frames.csv` (Image_ID,timestamp_s) and a `labels.csv` template."""
    out = Path(out_dir)
    sampler = Sampler(every_s)
    # Only the sampled pictures are decoded (the rest skipped as `watch` skips them), upright.
    source = FileSource(video, sparse_every_s=every_s if every_s > 0 else None)
    info = source.open()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"{out}: cannot create output directory ({exc.strerror})") from None
    rows: list[tuple[str, float]] = []
    areas: list[tuple[int, int, int, int]] = []  # each written frame's picture area (auto)
    last_t = 0.0
    image_size: tuple[int, ...] | None = None
    try:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("extracting", total=info.frame_count)
            while (t_s := source.grab()) is not None:
                last_t = t_s
                bar.advance(task)
                if not sampler.due(t_s):
                    continue
                image = source.retrieve()
                assert sampler.next_due_s is not None  # set by due()
                source.skip_to(sampler.next_due_s)
                if image is None:
                    continue
                if crop == AUTO and (area := frame_area(image)):
                    areas.append(area)
                name = f"frame{len(rows)}.jpg"
                if not cv2.imwrite(str(out / name), image):
                    raise BadInputError(f"{out / name}: cannot write")
                rows.append((name, t_s))
                image_size = image.shape[:2]
    finally:
        source.close()
    if not rows:
        raise SourceError(f"{video}: no decodable frames")
    # Frames are written whole (the labeller and a person see the picture as broadcast); the crop
    # found over all of them is recorded for `train`, `evaluate`, `suggest` and the labeller.
    found = widest(areas) if len(areas) >= CROP_FRAMES else None
    size = (image_size[1], image_size[0]) if image_size else None
    cut = crop if isinstance(crop, Crop) else (to_crop(found, size) if found and size else None)
    mode = "fixed" if isinstance(crop, Crop) else crop
    record = {"mode": mode, "area": cut.to_dict() if cut else None, "frame_size": size}
    atomic_write_text(out / CROP_JSON, json.dumps(record) + "\n")
    _write_csv(out / FRAMES_CSV, ["Image_ID", "timestamp_s"], [(n, f"{t:.3f}") for n, t in rows])
    labels = out / LABELS_CSV
    if not labels.exists():  # never clobber labelling work
        _write_csv(labels, ["Image_ID", "Class"], [(n, "") for n, _ in rows])
    return ExtractResult(out, len(rows), last_t)


def _write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_timestamps(directory: Path) -> dict[str, float]:
    """Frame timestamps from `frames.csv`, or {} when the directory has none (seed data)."""
    path = directory / FRAMES_CSV
    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        return {row["Image_ID"]: float(row["timestamp_s"]) for row in csv.DictReader(fh)}
