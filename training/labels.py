"""The seed's label CSV (`Image_ID,Class`), read strictly but forgivingly of its known quirks.

A frame listed twice with the same class is kept once; listed twice with conflicting classes it
is dropped with a warning naming it (the seed's `frame94.jpg`). Rows with an empty class are
unlabelled (the template `extract` writes) and skipped. Everything else that is wrong is an
error that names the row: a missing frame, a class outside the class list, a missing header.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stream.errors import BadInputError, LabelError
from stream.outputs.atomic import atomic_write_text
from training.extract import FRAMES_CSV, LABELS_CSV, read_timestamps
from training.shots import same_shot, signature

log = logging.getLogger(__name__)

REQUIRED = ("Image_ID", "Class")


@dataclass(frozen=True)
class LabelledFrames:
    """Labelled frames in time order; `labels[i]` holds the class ids shown in `paths[i]`."""

    paths: list[Path]
    labels: list[tuple[int, ...]]
    times_s: list[float]
    dropped: list[str]
    unlabelled: int

    @classmethod
    def concat(cls, sets: list[LabelledFrames]) -> LabelledFrames:
        """Several sets as one list (each still in its own time order); with more than one set,
        dropped frames are named with their directory, since names repeat across sets."""
        if len(sets) == 1:
            return sets[0]
        return cls(
            paths=[p for s in sets for p in s.paths],
            labels=[lab for s in sets for lab in s.labels],
            times_s=[t for s in sets for t in s.times_s],
            dropped=[str(s.directory / name) for s in sets for name in s.dropped],
            unlabelled=sum(s.unlabelled for s in sets),
        )

    @property
    def directory(self) -> Path:
        return self.paths[0].parent

    @property
    def single(self) -> list[int]:
        """One class per frame, as single-label training needs."""
        return [lab[0] for lab in self.labels]


def parse_class(value: str, where: str, n_classes: int) -> tuple[int, ...]:
    """'2' -> (2,), '1;2' -> (1, 2), '' -> (); anything else is an error naming `where`."""
    value = value.strip()
    if not value:
        return ()
    ids: list[int] = []
    for part in value.split(";"):
        try:
            ids.append(int(float(part)) if float(part).is_integer() else int(part))
        except ValueError:
            raise LabelError(f"{where}: class {value!r} is not an integer class id") from None
    for i in ids:
        if not 0 <= i < n_classes:
            raise LabelError(f"{where}: class {i} is outside the {n_classes} classes given (0..{n_classes - 1})")
    return tuple(sorted(set(ids)))


def label_rows(csv_path: Path, n_classes: int) -> list[tuple[int, str, str, tuple[int, ...]]]:
    """Every non-blank row of a label CSV: (line, frame name, class cell, class ids)."""
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise LabelError(f"{csv_path}: empty label file")
        header = [h.strip() for h in header]
        if not all(col in header for col in REQUIRED):
            raise LabelError(f"{csv_path}: first line must be the header 'Image_ID,Class', got {','.join(header)!r}")
        id_col, class_col = header.index("Image_ID"), header.index("Class")
        rows = []
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(id_col, class_col):
                raise LabelError(f"{csv_path}:{line}: expected Image_ID,Class, got {','.join(row)!r}")
            cell = row[class_col]
            rows.append((line, row[id_col].strip(), cell, parse_class(cell, f"{csv_path}:{line}", n_classes)))
        return rows


def agreed(labelled: list[tuple[str, tuple[int, ...]]]) -> tuple[dict[str, tuple[int, ...]], list[str]]:
    """The one policy for a frame listed more than once: the same classes count once; conflicting
    classes count as unlabelled (the frames are returned, sorted, to be named in a warning)."""
    seen: dict[str, tuple[int, ...]] = {}
    conflicts: set[str] = set()
    for name, classes in labelled:
        if seen.setdefault(name, classes) != classes:
            conflicts.add(name)
    for name in conflicts:
        del seen[name]
    return seen, sorted(conflicts)


def read_labels(csv_path: str | Path, frames_dir: str | Path, n_classes: int) -> LabelledFrames:
    csv_path, frames_dir = Path(csv_path), Path(frames_dir)
    if not csv_path.is_file():
        raise LabelError(f"{csv_path}: no such label file")
    if not frames_dir.is_dir():
        raise LabelError(f"{frames_dir}: no such frames directory")
    labelled: list[tuple[str, tuple[int, ...]]] = []
    unlabelled = 0
    for line, name, _, classes in label_rows(csv_path, n_classes):
        if not classes:
            unlabelled += 1
            continue
        if not (frames_dir / name).is_file():
            raise LabelError(f"{csv_path}:{line}: frame {name} does not exist in {frames_dir}")
        labelled.append((name, classes))
    seen, conflicts = agreed(labelled)
    for name in conflicts:
        log.warning("%s: %s is labelled with conflicting classes; dropped", csv_path, name)
    if not seen:
        raise LabelError(f"{csv_path}: no labelled frames")
    times = read_timestamps(frames_dir)
    order = sorted(seen, key=lambda n: (times.get(n, float("inf")), _frame_number(n), n))
    return LabelledFrames(
        paths=[frames_dir / n for n in order],
        labels=[seen[n] for n in order],
        times_s=[times.get(n, float(_frame_number(n))) for n in order],
        dropped=conflicts,
        unlabelled=unlabelled,
    )


def _frame_number(name: str) -> float:
    """`frame12.jpg` -> 12: the seed names frames by their second, so this is time order."""
    match = re.search(r"(\d+)(?=\D*$)", name)
    return float(match.group(1)) if match else float("inf")


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
RUN_MAX = 500  # frames a shot may run to (`LabelStore.run_from`)


def _cell(classes: tuple[int, ...]) -> str:
    return ";".join(str(c) for c in classes)


class LabelStore:
    """The frames of one directory in time order and their labels; the only writer of labels.csv."""

    def __init__(self, directory: Path, n_classes: int) -> None:
        self.directory = directory
        self.n_classes = n_classes
        self.csv_path = directory / LABELS_CSV
        try:
            self.times = read_timestamps(directory)
        except (KeyError, ValueError) as exc:
            raise BadInputError(f"{directory / FRAMES_CSV}: expected columns Image_ID,timestamp_s ({exc})") from None
        rows = label_rows(self.csv_path, n_classes) if self.csv_path.exists() else []
        listed = set(self.times) | {name for _, name, _, _ in rows} | {p.name for p in directory.glob("*.jpg")}
        # The allow-list: plain file names of images in this directory, nothing else is ever served.
        self.paths = {n: directory / n for n in listed if _is_frame_name(n) and (directory / n).is_file()}
        if not self.paths:
            raise BadInputError(f"{directory}: no frames to label (run `screentime extract VIDEO -o {directory}`)")
        self.order = sorted(self.paths, key=lambda n: (self.times.get(n, float("inf")), _frame_number(n), n))
        self.index = {n: i for i, n in enumerate(self.order)}
        # Rows naming frames not here: kept, not ours to drop.
        self.extra = [(name, cell) for _, name, cell, _ in rows if name not in self.paths]
        seen, conflicts = agreed([(name, classes) for _, name, _, classes in rows if name in self.paths and classes])
        for name in conflicts:
            log.warning("%s: %s is labelled with conflicting classes; shown unlabelled to decide", self.csv_path, name)
        if self.extra:
            log.warning("%s: %d rows name frames not in %s; kept", self.csv_path, len(self.extra), directory)
        self.labels = {n: seen.get(n, ()) for n in self.order}
        self._lock = threading.Lock()
        self._signatures: dict[str, np.ndarray | None] = {}

    @property
    def labelled(self) -> int:
        return sum(1 for c in self.labels.values() if c)

    def validate(self, changes: Any) -> dict[str, tuple[int, ...]]:
        """Changes as `{frame: [class ids]}`, all or nothing; ValueError names the first bad entry."""
        if not isinstance(changes, dict) or not changes:
            raise ValueError("expected {'labels': {frame: [class ids]}} with at least one frame")
        parsed = {}
        for name, ids in changes.items():
            if name not in self.paths:
                raise ValueError(f"unknown frame {str(name)[:80]!r}")
            if not isinstance(ids, list) or not all(type(i) is int and 0 <= i < self.n_classes for i in ids):
                raise ValueError(f"{name}: classes must be a list of class ids 0..{self.n_classes - 1}")
            parsed[name] = tuple(sorted(set(ids)))
        return parsed

    def update(self, changes: Any) -> dict[str, str]:
        """Apply validated changes and rewrite labels.csv before answering; memory follows the disk."""
        parsed = self.validate(changes)
        with self._lock:
            merged = {**self.labels, **parsed}
            atomic_write_text(self.csv_path, self._csv(merged))
            self.labels = merged
        return {n: _cell(c) for n, c in parsed.items()}

    def _csv(self, labels: dict[str, tuple[int, ...]]) -> str:
        """The seed format: header, one row per frame in time order, empty Class when unlabelled."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["Image_ID", "Class"])
        writer.writerows((n, _cell(labels[n])) for n in self.order)
        writer.writerows(self.extra)
        return buf.getvalue()

    def run_from(self, name: str) -> list[str]:
        """`name` and the frames after it that look the same: one shot, usually one label."""
        ref = self._signature(name)
        run = [name]
        for other in self.order[self.index[name] + 1 : self.index[name] + RUN_MAX]:
            sig = self._signature(other)
            if ref is None or sig is None or not same_shot(sig, ref):
                break
            run.append(other)
        return run

    def _signature(self, name: str) -> np.ndarray | None:
        if name not in self._signatures:
            grey = cv2.imread(str(self.paths[name]), cv2.IMREAD_REDUCED_GRAYSCALE_4)
            sig = None if grey is None else signature(grey)
            self._signatures[name] = sig
        return self._signatures[name]


def _is_frame_name(name: str) -> bool:
    """A plain image file name: no directory part, no dot-file, an image suffix."""
    plain = Path(name).name == name and "\\" not in name and not name.startswith(".")
    return plain and name.lower().endswith(IMAGE_SUFFIXES)
