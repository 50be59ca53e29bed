"""What a batch will do: its flags, the videos it finds, where each report goes, and which are done.

Pure file-system work on the machine that starts the batch, before Ray is touched, so a typo
in a path or a missing model is one line and exit 2 without starting a cluster.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.defaults import BATCH_SIZE, CROP, EVERY_S
from stream.errors import BadInputError
from stream.frames.crop import Crop

# What a directory is searched for; a file named on the command line is taken whatever its name.
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv", ".3gp"}
)
SUMMARY_NAME = "summary"  # DIR/summary.csv (and .parquet)
GPU_BATCH_SIZE = 32  # sampled pictures per inference call on a GPU: enough to keep it busy
# On CPU, `watch`'s 8: larger batches run no faster there and a VGG16's activations grow with
# them (an engine's memory: about 2.4 GB at 32, against 1.2 GB at 8).
CPU_BATCH_SIZE = BATCH_SIZE


@dataclass(frozen=True)
class BatchConfig:
    """The flags of `screentime batch`, validated once at the edge."""

    inputs: tuple[str, ...]
    model: Path
    out: Path
    every_s: float = EVERY_S
    address: str | None = None  # a running Ray cluster; None: start a local one
    workers: int | None = None  # inference engines; None: one per GPU share, else one per two CPUs
    gpus_per_worker: float = 0.0
    engine_threads: int | None = None  # onnxruntime threads of a CPU engine; None: the cluster's CPUs / workers
    batch_size: int | None = None  # None: GPU_BATCH_SIZE on GPUs, CPU_BATCH_SIZE on CPU
    local_cpus: int | None = None  # CPUs of a local Ray (None: all); ignored when joining a cluster
    progress: bool = False
    crop: str = CROP  # "auto", "none" or "W:H:X:Y" (stream.frames.crop): black bars cut before the model

    @property
    def inference_batch(self) -> int:
        return self.batch_size or (GPU_BATCH_SIZE if self.gpus_per_worker > 0 else CPU_BATCH_SIZE)

    @classmethod
    def from_args(cls, args: argparse.Namespace, progress: bool = False) -> BatchConfig:
        """The CLI's flags; `RAY_ADDRESS` is read here, at the edge, as `ray.init` would."""
        return cls(
            inputs=tuple(args.inputs),
            model=args.model,
            out=args.out,
            every_s=args.every,
            address=args.address or os.environ.get("RAY_ADDRESS") or None,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            progress=progress,
            crop=getattr(args.crop, "spec", args.crop) if hasattr(args, "crop") else CROP,
        )

    def validate(self) -> None:
        if not self.inputs:
            raise BadInputError("give at least one video or directory")
        if not math.isfinite(self.every_s) or self.every_s < 0:
            raise BadInputError(f"--every must be >= 0 seconds, got {self.every_s}")
        if self.workers is not None and self.workers < 1:
            raise BadInputError("--workers must be >= 1")
        if not math.isfinite(self.gpus_per_worker) or self.gpus_per_worker < 0:
            raise BadInputError("--gpus-per-worker must be >= 0")
        if (self.batch_size is not None and self.batch_size < 1) or (
            self.engine_threads is not None and self.engine_threads < 1
        ):
            raise BadInputError("batch size and engine threads must be >= 1")
        if not self.model.is_file():
            raise BadInputError(f"{self.model}: no such model file")
        if self.out.exists() and not self.out.is_dir():
            raise BadInputError(f"{self.out}: exists and is not a directory")


@dataclass(frozen=True)
class Video:
    """One video of the batch: the path as found (what the report names), the absolute path the
    workers open (their working directory is not ours), and its report's file name."""

    index: int
    source: str
    path: str
    report_name: str


def find_videos(inputs: tuple[str, ...] | list[str]) -> list[str]:
    """Files as given, directories searched recursively for video suffixes; in order, each once."""
    found: list[str] = []
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            found += sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        elif path.exists():
            found.append(spec)
        else:
            raise BadInputError(f"{spec}: no such file or directory")
    seen: set[str] = set()
    unique = []
    for video in found:
        real = os.path.realpath(video)
        if real not in seen:
            seen.add(real)
            unique.append(video)
    if not unique:
        suffixes = " ".join(sorted(VIDEO_SUFFIXES))
        raise BadInputError(f"no videos found in {', '.join(inputs)} (directories are searched for {suffixes})")
    return unique


def plan_videos(sources: list[str]) -> list[Video]:
    """Reports are `<stem>.json`; stems that collide (`a/ep1.mp4`, `b/ep1.mkv`) all get a short
    hash of their absolute path, so each keeps its name from one run to the next."""
    stems: dict[str, int] = {}
    for source in sources:
        key = Path(source).stem.casefold()
        stems[key] = stems.get(key, 0) + 1
    videos = []
    for index, source in enumerate(sources):
        absolute = os.path.abspath(source)
        stem = Path(source).stem
        if stems[stem.casefold()] > 1 or stem.casefold() == SUMMARY_NAME:
            stem = f"{stem}-{hashlib.sha1(absolute.encode()).hexdigest()[:8]}"
        videos.append(Video(index, source, absolute, f"{stem}.json"))
    return videos


def finished_report(report: Path, model_sha256: str, every_s: float, crop: str = CROP) -> dict[str, Any] | None:
    """The report, if it is a finished one of the same model file and interval: nothing to redo.
    Anything else (missing, unreadable, another model, another interval, unfinished): None, and
    the video is analysed again."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    done = (
        isinstance(data, dict)
        and data.get("ended") == "end of stream"
        and data.get("model_sha256") == model_sha256
        and isinstance(data.get("every_s"), int | float)
        and math.isclose(float(data["every_s"]), every_s, abs_tol=1e-9)
        and _same_crop(data.get("crop"), crop)
    )
    return data if done else None


def _same_crop(recorded: Any, crop: str) -> bool:
    """Whether a report's `crop` was made as `crop` asks (reports from before crops: as none)."""
    if not isinstance(recorded, dict):
        return crop == "none"
    if crop in ("auto", "none"):
        return recorded.get("mode") == crop
    area = recorded.get("area")
    return recorded.get("mode") == "fixed" and isinstance(area, dict) and Crop(**area).spec == crop
