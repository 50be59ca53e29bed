"""Collect a camera's own hard frames for labelling: the samples the model was least sure of.

Per local hour the collector holds the least certain samples (margin, `stream.model.margin`) in
memory, never two of one shot (`stream.frames.shots`: nor one of a shot already saved that day), and
writes them when the hour ends (or the camera stops): `DIR/NAME/*.jpg` and `frames.csv`
(`Image_ID,timestamp_s,...`; `timestamp_s` in Unix seconds so frames from several runs keep
their order), the layout `screentime label DIR/NAME` and `train --frames DIR/NAME` read.
`labels.csv` is left to the labeller, its only writer. Caps: frames per hour, per day, and the
folder's total size; a full folder stops collecting, it never deletes a frame.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import assert_never
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from stream.errors import OutputError
from stream.frames.shots import same_shot, signature
from stream.model.margin import uncertainty
from stream.outputs import events as ev
from stream.outputs.atomic import atomic_write_bytes, atomic_write_text
from stream.outputs.events import Event, OutputBase
from stream.outputs.retry import Retry
from stream.records import Prediction

log = logging.getLogger(__name__)

FRAMES_CSV = "frames.csv"  # the name `extract` writes and `label`/`train` read (training.extract)
HEADER = ["Image_ID", "timestamp_s", "local_time", "guess", "confidence", "margin", "model_sha256"]
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Caps:
    per_hour: int
    per_day: int
    max_bytes: int
    max_margin: float  # only samples at most this sure are candidates


@dataclass(frozen=True, eq=False)  # compared by identity: one pending frame is one object
class Candidate:
    unix_s: float
    margin: float
    label: str
    confidence: float
    signature: np.ndarray
    model_sha256: str = ""  # the model that made the guess
    jpeg: bytes = b""  # encoded once it is kept (a raw picture per pending frame would cost megabytes)


def margin_of(probs: dict[str, float], classes: tuple[str, ...], multi_label: bool) -> float:
    """The model's margin on one sample (0: a coin toss; 1: sure)."""
    row = np.array([[probs.get(c, 0.0) for c in classes]], dtype=np.float64)
    return float(1.0 - uncertainty(row, multi_label)[0])


def consider(pending: list[Candidate], candidate: Candidate, saved: list[np.ndarray], cap: int) -> list[Candidate]:
    """The hour's pending frames with `candidate` offered: at most `cap`, least certain kept, one
    per shot (a candidate of a shot already pending replaces it only when less certain)."""
    if cap <= 0 or any(same_shot(candidate.signature, s) for s in saved):
        return pending
    rivals = [p for p in pending if same_shot(candidate.signature, p.signature)]
    if rivals:
        if all(candidate.margin < r.margin for r in rivals):
            return [p for p in pending if p not in rivals] + [candidate]
        return pending
    if len(pending) < cap:
        return [*pending, candidate]
    worst = max(pending, key=lambda p: p.margin)
    if candidate.margin < worst.margin:
        return [p for p in pending if p is not worst] + [candidate]
    return pending


def folder_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file()) if directory.is_dir() else 0


class Collector:
    """One camera's collection (see the module's docstring). `offer` per sample, `flush` at the end."""

    def __init__(
        self,
        directory: Path,
        caps: Caps,
        zone: ZoneInfo,
        classes: tuple[str, ...],
        multi_label: bool = False,
        model_sha256: str = "",
    ) -> None:
        self.directory = Path(directory)
        self.caps = caps
        self.zone = zone
        self.classes, self.multi_label, self.model_sha256 = classes, multi_label, model_sha256
        self.pending: list[Candidate] = []
        self.saved_today: list[np.ndarray] = []  # shot signatures of the day's saved frames
        self._hour: tuple | None = None
        self._day: date | None = None
        self._rows = self._read_rows()
        self._bytes = folder_bytes(self.directory)
        self._full_logged = False
        self.retry = Retry(f"collect {self.directory}")  # a full disk skips an hour's frames, not the camera's

    def offer(
        self, unix_s: float, image: np.ndarray | None, prediction: Prediction, model_sha256: str | None = None
    ) -> None:
        """A sample and its picture; `model_sha256`: the model that made it (default: the collector's)."""
        local = datetime.fromtimestamp(unix_s, self.zone)
        hour = (local.date(), local.hour, local.utcoffset())
        if hour != self._hour:
            self.flush()
            self._hour = hour
            if local.date() != self._day:
                self._day = local.date()
                self.saved_today = self._signatures_of(local.date().isoformat())
        margin = margin_of(prediction.probs, self.classes, self.multi_label)
        if margin > self.caps.max_margin or image is None:
            return
        room = min(self.caps.per_hour, self.caps.per_day - len(self.saved_today))
        made_by = self.model_sha256 if model_sha256 is None else model_sha256
        candidate = Candidate(unix_s, margin, prediction.label, prediction.confidence, signature(image), made_by)
        pending = consider(self.pending, candidate, self.saved_today, room)
        if pending is not self.pending:
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                self.pending = [replace(candidate, jpeg=jpeg.tobytes()) if p is candidate else p for p in pending]

    def flush(self, final: bool = False) -> list[Path]:
        """Write the pending frames (least certain first) within the disk cap. A write that fails
        (disk full ...) drops the hour's frames not yet written and is tried again at the next hour;
        `final`: the camera stops, and a failure is an OutputError (exit 4)."""
        try:
            return self._write_pending()
        except OSError as exc:
            self.retry.failed(exc.strerror or str(exc))
            if final:
                raise OutputError(f"collect {self.directory}: {exc.strerror or exc}") from None
            return []
        finally:
            self.pending = []

    def _write_pending(self) -> list[Path]:
        written = []
        for c in sorted(self.pending, key=lambda c: c.margin):
            jpeg = c.jpeg
            if self._bytes + len(jpeg) > self.caps.max_bytes:
                if not self._full_logged:
                    log.warning("%s: collect folder full (%d bytes); no more frames saved", self.directory, self._bytes)
                    self._full_logged = True
                break
            local = datetime.fromtimestamp(c.unix_s, self.zone)
            name = f"{local.strftime('%Y%m%d-%H%M%S')}-{int(c.unix_s * 1000) % 1000:03d}.jpg"
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.directory / name, jpeg, durable=False)
            self._bytes += len(jpeg)
            self.saved_today.append(c.signature)
            self._rows.append(
                [
                    name,
                    f"{c.unix_s:.3f}",
                    local.isoformat(timespec="seconds"),
                    c.label,
                    f"{c.confidence:.4f}",
                    f"{c.margin:.4f}",
                    c.model_sha256,
                ]
            )
            written.append(self.directory / name)
        if written:
            self._write_rows()
        self.retry.succeeded()
        return written

    def _read_rows(self) -> list[list[str]]:
        path = self.directory / FRAMES_CSV
        if not path.exists():
            return []
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        return [r for r in rows[1:] if r] if rows and rows[0][:2] == HEADER[:2] else []

    def _write_rows(self) -> None:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(self._rows)
        atomic_write_text(self.directory / FRAMES_CSV, out.getvalue())

    def _signatures_of(self, day: str) -> list[np.ndarray]:
        """The day's saved frames' shots (a restarted service never saves a second of one)."""
        found = []
        for row in self._rows:
            if len(row) > 2 and row[2].startswith(day):
                image = cv2.imread(str(self.directory / row[0]))
                if image is not None:
                    found.append(signature(image))
        return found


class CollectSink(OutputBase):
    """A camera pipeline's collector: each sample offered with its picture and wall time."""

    def __init__(
        self, collector: Collector, wall: Callable[[], float] = time.time, model_of: Callable[[], str] | None = None
    ) -> None:
        self.collector = collector
        self.wall = wall
        self.model_of = model_of  # the model that made the latest result (a service swaps models)

    def handle(self, event: Event) -> None:
        match event:
            case ev.Started(card=card):
                self.collector.classes, self.collector.multi_label = card.classes, card.multi_label
            case ev.Sampled(prediction=prediction, frame=frame):
                age = max(0.0, time.monotonic() - frame.captured_at) if frame.captured_at else 0.0
                made_by = self.model_of() if self.model_of is not None else None
                self.collector.offer(self.wall() - age, frame.image, prediction, made_by)
            case ev.Ended():
                self.collector.flush(final=True)
            case ev.Pictured() | ev.SourceLost() | ev.SourceBack() | ev.ClockJumped() | ev.Checkpoint() | ev.Tick():
                pass
            case _:
                assert_never(event)
