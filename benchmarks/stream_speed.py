"""Analysis speed of `watch` on a file against the time to merely decode it, in one run.

Builds a video from a folder of frames (each frame held for one second, as the seed's
one-frame-per-second training frames were), then times on the same file:
  decode-only (all frames)        the floor if every frame had to become an image
  decode-only (as watch decodes)  grab every frame, convert only the sampled ones
  watch --every 1 with each model given (fp32, int8 ...)

Usage: python benchmarks/stream_speed.py --frames DIR --model A.onnx [--model B.onnx] [--fps 10]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import onnxruntime as ort
from rich.console import Console
from rich.table import Table

from stream import watch
from stream.sampler import Sampler
from training.synthetic import write_video


def build_video(frames_dir: Path, out: Path, fps: int, limit: int | None) -> tuple[Path, float]:
    paths = sorted(frames_dir.glob("*.jpg"), key=lambda p: int("".join(c for c in p.stem if c.isdigit()) or 0))
    paths = paths[:limit] if limit else paths
    first = cv2.imread(str(paths[0]))
    size = (first.shape[1] - first.shape[1] % 2, first.shape[0] - first.shape[0] % 2)
    cache: dict[int, object] = {}

    def frame_at(t: float):
        index = min(int(t), len(paths) - 1)
        if index not in cache:
            cache.clear()
            cache[index] = cv2.resize(cv2.imread(str(paths[index])), size)
        return cache[index]

    times = [i / fps for i in range(len(paths) * fps)]
    write_video(out, times, frame_at, size, rate=fps)
    return out, float(len(paths))


def decode_only(video: Path, every_s: float | None) -> tuple[float, int]:
    """Wall time to decode the file; with `every_s`, convert only sampled frames (as watch does)."""
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    sampler = Sampler(every_s) if every_s is not None else None
    started, converted = time.perf_counter(), 0
    while cap.grab():
        t_s = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
        if sampler is None or sampler.due(t_s):
            cap.retrieve()
            converted += 1
    return time.perf_counter() - started, converted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--model", type=Path, action="append", required=True)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N frames")
    parser.add_argument("--every", type=float, default=1.0)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        video, seconds = build_video(args.frames, Path(tmp) / "bench.mp4", args.fps, args.limit)
        info = cv2.VideoCapture(str(video))
        width, height = int(info.get(cv2.CAP_PROP_FRAME_WIDTH)), int(info.get(cv2.CAP_PROP_FRAME_HEIGHT))
        rows = []
        wall, n = decode_only(video, None)
        rows.append(("decode only, every frame converted", wall, n, None))
        wall, n = decode_only(video, args.every)
        rows.append((f"decode only, grab all + convert every {args.every:g} s", wall, n, None))
        for model in args.model:
            started = time.perf_counter()
            report = watch(str(video), model, every_s=args.every, device="cpu").run()
            wall = time.perf_counter() - started
            rows.append((f"watch --every {args.every:g}  {model.name}", wall, report.samples, report))
    table = Table(title=f"{seconds:.0f} s video, {width}x{height} H.264 at {args.fps} fps, from {args.frames}")
    for col in ("run", "wall s", "video s / wall s", "frames converted / inferences", "inferences / s"):
        table.add_column(col, justify="right" if col != "run" else "left")
    for name, wall, n, report in rows:
        rate = f"{n / wall:.1f}" if report is not None else ""
        table.add_row(name, f"{wall:.1f}", f"{seconds / wall:.1f}", str(n), rate)
    console.print(table)
    console.print(
        f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs, "
        f"onnxruntime {ort.__version__} CPU; command: {' '.join(sys.argv)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
