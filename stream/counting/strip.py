"""The recent past of a run, in fixed cells: who was on screen in each of the last few minutes.

The dashboard draws it as one line per character. Memory is bounded by the number of cells, not
by the run's length or its sample rate: a sample only adds to the count of its cell, and the
oldest cell falls off when a new one starts. The pipeline writes and the dashboard's refresh
thread reads, so both go through one lock and the reader gets a frozen snapshot.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

CELL_S = 5.0  # seconds of source time per cell
CELLS = 48  # cells kept: 4 minutes at CELL_S


@dataclass(frozen=True)
class Cell:
    """`samples` counted from `start_s` to `start_s + cell_s`, and how many of them showed each class."""

    index: int  # start_s // cell_s: consecutive cells differ by one, a missing index is a cell without samples
    samples: int
    present: Mapping[str, int]

    def share(self, label: str) -> float:
        return self.present.get(label, 0) / self.samples if self.samples else 0.0


class Strip:
    """Samples bucketed into the last `cells` cells of `cell_s` seconds (thread-safe)."""

    def __init__(self, cell_s: float = CELL_S, cells: int = CELLS) -> None:
        if cell_s <= 0 or cells <= 0:
            raise ValueError("cell_s and cells must be > 0")
        self.cell_s = cell_s
        self.cells = cells
        self._cells: deque[tuple[int, int, dict[str, int]]] = deque(maxlen=cells)
        self._lock = threading.Lock()

    def add(self, t_s: float, present: Iterable[str]) -> None:
        """Count one sample at `t_s` for every class in `present`. Times only go forward; an older
        sample (not expected) is counted in the latest cell rather than reordering history."""
        index = math.floor(t_s / self.cell_s)
        with self._lock:
            if not self._cells or index > self._cells[-1][0]:
                self._cells.append((index, 0, {}))
            last_index, samples, counts = self._cells[-1]
            for label in present:
                counts[label] = counts.get(label, 0) + 1
            self._cells[-1] = (last_index, samples + 1, counts)

    def __getstate__(self) -> dict:
        """A copy of the cells without the lock: a cluster's camera sends its numbers to the front door."""
        with self._lock:
            return {"cell_s": self.cell_s, "cells": self.cells, "rows": [(i, n, dict(c)) for i, n, c in self._cells]}

    def __setstate__(self, state: dict) -> None:
        self.cell_s, self.cells = state["cell_s"], state["cells"]
        self._cells = deque(((i, n, dict(c)) for i, n, c in state["rows"]), maxlen=self.cells)
        self._lock = threading.Lock()

    def snapshot(self) -> tuple[Cell, ...]:
        """The cells that have samples, oldest first, frozen; cells between them had none."""
        with self._lock:
            return tuple(Cell(i, n, MappingProxyType(dict(c))) for i, n, c in self._cells)

    def window(self) -> list[Cell | None]:
        """The last `cells` cells ending with the latest one, oldest first; None where no sample fell."""
        cells = self.snapshot()
        if not cells:
            return []
        last = cells[-1].index
        by_index = {c.index: c for c in cells}
        return [by_index.get(i) for i in range(last - self.cells + 1, last + 1)]
