"""The seed's label CSV (`Image_ID,Class`), read strictly but forgivingly of its known quirks.

A frame listed twice with the same class is kept once; listed twice with conflicting classes it
is dropped with a warning naming it (the seed's `frame94.jpg`). Rows with an empty class are
unlabelled (the template `extract` writes) and skipped. Everything else that is wrong is an
error that names the row: a missing frame, a class outside the class list, a missing header.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from stream.errors import LabelError
from training.extract import read_timestamps

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


def read_labels(csv_path: str | Path, frames_dir: str | Path, n_classes: int) -> LabelledFrames:
    csv_path, frames_dir = Path(csv_path), Path(frames_dir)
    if not csv_path.is_file():
        raise LabelError(f"{csv_path}: no such label file")
    if not frames_dir.is_dir():
        raise LabelError(f"{frames_dir}: no such frames directory")
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise LabelError(f"{csv_path}: empty label file")
        header = [h.strip() for h in header]
        if not all(col in header for col in REQUIRED):
            raise LabelError(f"{csv_path}: first line must be the header 'Image_ID,Class', got {','.join(header)!r}")
        id_col, class_col = header.index("Image_ID"), header.index("Class")
        seen: dict[str, tuple[int, ...]] = {}
        conflicts: set[str] = set()
        unlabelled = 0
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(id_col, class_col):
                raise LabelError(f"{csv_path}:{line}: expected Image_ID,Class, got {','.join(row)!r}")
            name = row[id_col].strip()
            classes = parse_class(row[class_col], f"{csv_path}:{line}", n_classes)
            if not classes:
                unlabelled += 1
                continue
            if not (frames_dir / name).is_file():
                raise LabelError(f"{csv_path}:{line}: frame {name} does not exist in {frames_dir}")
            if name in seen and seen[name] != classes:
                conflicts.add(name)
            seen.setdefault(name, classes)
    for name in sorted(conflicts):
        log.warning("%s: %s is labelled with conflicting classes; dropped", csv_path, name)
        del seen[name]
    if not seen:
        raise LabelError(f"{csv_path}: no labelled frames")
    times = read_timestamps(frames_dir)
    order = sorted(seen, key=lambda n: (times.get(n, float("inf")), _frame_number(n), n))
    return LabelledFrames(
        paths=[frames_dir / n for n in order],
        labels=[seen[n] for n in order],
        times_s=[times.get(n, float(_frame_number(n))) for n in order],
        dropped=sorted(conflicts),
        unlabelled=unlabelled,
    )


def _frame_number(name: str) -> float:
    """`frame12.jpg` -> 12: the seed names frames by their second, so this is time order."""
    match = re.search(r"(\d+)(?=\D*$)", name)
    return float(match.group(1)) if match else float("inf")
