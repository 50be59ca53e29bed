"""`screentime batch` against `watch` one video after the other, on this machine.

N copies (default 20) of one synthetic 3-minute 1280x720 25 fps H.264 clip (training.synthetic's
cartoon: characters moving over rooms that change by scene, with film grain; encoded once by
PyAV/libx264 at 3 Mbit/s, preset veryfast, x264's default keyframe interval, and cached;
`--grain 0`: no grain, the encoder's own rate), sampled once a second:

  watch      watch() in one process, one video after the other (no start-up per video: the
             kindest case for watch), reports written as `watch --report` writes them
  batch-W    run_batch on a local Ray with W inference workers (Ray's start included)

Columns: wall time, sampled seconds of video per second of wall time, speed-up over watch, CPU
seconds of the mode's whole process tree (Ray's own processes and workers included, as reaped;
unlike wall time it hardly depends on what else the machine runs), peak resident memory of the
driver and of each kind of Ray worker (VmHWM, shared object-store pages included: decode task
workers, engine actors), object-store spill, and whether every batch report equals watch's (totals to
the millisecond, same segments). Each mode runs in its own process. "cores used" is CPU s / wall
s and "load avg during" the mean 1-minute load average while the mode ran (it counts the mode's
own threads too): on a shared machine other work slows every mode, and they are the measure of it.

Usage: python benchmarks/batch.py [--videos 20] [--minutes 3] [--model MODEL.onnx] [--workers 1,2]
Without --model the tiny colour-classifier ONNX model of tests/helpers.py is used (inference
costs next to nothing: the benchmark then measures decoding and Ray); with a real VGG16 export
inference dominates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("SCREENTIME_BENCH_CACHE", "/tmp/screentime-bench"))
VOLATILE = {"started_at", "updated_at"}


def make_clip(path: Path, minutes: float, size: tuple[int, int], fps: float, grain: int) -> None:
    """The cartoon, with film grain (uniform noise of +-`grain` levels) so that x264 at 3 Mbit/s
    spends its bits as on broadcast footage: a flat synthetic clip compresses to 50 kbit/s and
    decodes 6x cheaper than real video (see RESULTS.md)."""
    import numpy as np

    from training.synthetic import draw_frame, plan_scenes, write_video

    duration = minutes * 60
    scenes = plan_scenes(duration, seed=7, min_s=3.0, max_s=12.0)
    times = [i / fps for i in range(round(duration * fps))]
    rng = np.random.default_rng(7)

    def frame_at(t: float):
        index = next(i for i, s in enumerate(scenes) if s.start_s <= t < s.end_s or s is scenes[-1])
        frame = draw_frame(scenes[index].label, t, size, scene_seed=7000 + index)
        if not grain:
            return frame
        return np.clip(frame + rng.integers(-grain, grain + 1, frame.shape), 0, 255).astype(np.uint8)

    options = {"preset": "veryfast", **({"b": "3000k"} if grain else {})}
    write_video(path, times, frame_at, size, rate=fps, options=options)


def archive(videos: int, minutes: float, grain: int) -> Path:
    """N copies of the clip (separate files, as an archive has), made once and kept."""
    kind = f"grain{grain}" if grain else "flat"
    folder = CACHE / f"archive-{videos}x{minutes:g}min-{kind}"
    clip = CACHE / f"clip-{minutes:g}min-720p25-{kind}.mp4"
    if not clip.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        make_clip(clip.with_suffix(".tmp.mp4"), minutes, (1280, 720), 25, grain)
        clip.with_suffix(".tmp.mp4").rename(clip)
        print(f"made {clip} in {time.monotonic() - started:.0f} s", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(videos):
        copy = folder / f"episode{i:03d}.mp4"
        if not copy.exists():
            shutil.copyfile(clip, copy)
    return folder


# -- one mode per process ---------------------------------------------------------------------


def run_watch(folder: Path, model: Path, out: Path, every_s: float) -> dict:
    from stream import watch

    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    seconds = 0.0
    for video in sorted(folder.glob("*.mp4")):
        report = watch(str(video), model, every_s=every_s, report=out / f"{video.stem}.json").run()
        seconds += report.duration_s
    wall = time.monotonic() - started
    return {
        "wall_s": wall,
        "seconds": seconds,
        "cpu_s": tree_cpu_s(),
        "driver_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_batch_mode(folder: Path, model: Path, out: Path, every_s: float, workers: int) -> dict:
    import ray

    from stream.batch.plan import BatchConfig
    from stream.batch.run import run_batch

    started = time.monotonic()
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    result = run_batch(BatchConfig(inputs=(str(folder),), model=model, out=out, every_s=every_s, workers=workers))
    wall = time.monotonic() - started
    workers_mb = worker_peaks()
    cpu_s = tree_cpu_s()
    from ray._private.internal_api import memory_summary

    spilled = re.search(r"Spilled (\d+) MiB", memory_summary(stats_only=True))
    ray.shutdown()
    seconds = sum(o.report["duration_s"] for o in result.outcomes if o.report)
    return {
        "wall_s": wall,
        "seconds": seconds,
        "driver_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "spilled_mb": int(spilled.group(1)) if spilled else 0,
        "cpu_s": cpu_s,
        "failed": len(result.failed),
        **workers_mb,
    }


def worker_peaks() -> dict:
    """Peak RSS (VmHWM) of this driver's Ray workers: engine actors and the rest (decode tasks)."""
    me = os.getpid()
    peaks = {"actor_mb": 0.0, "decode_mb": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if not cmdline.startswith("ray::") or not _descends_from(int(entry.name), me):
            continue
        hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
        kind = "actor_mb" if "InferenceWorker" in cmdline else "decode_mb"
        peaks[kind] = max(peaks[kind], int(hwm.group(1)) / 1024 if hwm else 0.0)
    return peaks


def tree_cpu_s() -> float:
    """CPU seconds of this process and every live descendant (Ray's processes and workers), with
    what their exited children used; read before Ray shuts down."""
    me, tick = os.getpid(), os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not _descends_from(int(entry.name), me):
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def same_reports(a: Path, b: Path) -> bool:
    """Every report in `b` equals its namesake in `a` (beyond the run's own wall-clock times)."""
    for report in sorted(a.glob("*.json")):
        if report.name.startswith("summary"):
            continue
        x, y = (json.loads(p.read_text()) for p in (report, b / report.name))
        if {k: v for k, v in x.items() if k not in VOLATILE} != {k: v for k, v in y.items() if k not in VOLATILE}:
            return False
    return True


# -- the table ----------------------------------------------------------------------------------


def _sample_load(loads: list[float], done: threading.Event) -> None:
    """The 1-minute load average every 5 s while a mode runs: what else the machine was doing."""
    while True:
        loads.append(os.getloadavg()[0])
        if done.wait(5.0):
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--every", type=float, default=1.0)
    parser.add_argument("--grain", type=int, default=12, help="film grain (levels) of the clip; 0: flat, 50 kbit/s")
    parser.add_argument("--model", type=Path, default=None, help="default: the tiny colour model")
    parser.add_argument("--workers", default="1,2", help="batch runs, by number of inference workers")
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)  # internal: one mode in this process
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        folder = archive(args.videos, args.minutes, args.grain)
        if args.mode == "watch":
            row = run_watch(folder, args.model, args.out, args.every)
        else:
            row = run_batch_mode(folder, args.model, args.out, args.every, int(args.mode.split("-")[1]))
        print("RESULT " + json.dumps(row))
        return

    from rich.console import Console
    from rich.table import Table

    work = CACHE / "runs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model = args.model
    if model is None:
        from tests.helpers import make_color_model

        model = make_color_model(work / "color.onnx")
    clip = archive(args.videos, args.minutes, args.grain)  # made before any timing
    modes = ["watch"] + [f"batch-{w}" for w in args.workers.split(",")]
    rows = {}
    for mode in modes:
        loads: list[float] = []
        sampling = threading.Event()
        sampler = threading.Thread(target=_sample_load, args=(loads, sampling), daemon=True)
        sampler.start()
        command = [sys.executable, __file__, "--mode", mode, "--out", str(work / mode), "--model", str(model)]
        command += ["--videos", str(args.videos), "--minutes", str(args.minutes), "--every", str(args.every)]
        command += ["--grain", str(args.grain)]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        sampling.set()
        sampler.join()
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{mode} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        rows[mode] = {**json.loads(line[7:]), "load": sum(loads) / len(loads)}
        print(mode, rows[mode], flush=True)

    base = rows["watch"]["wall_s"]
    rate = next(clip.glob("*.mp4")).stat().st_size * 8 / (args.minutes * 60) / 1e6
    title = f"{args.videos} x {args.minutes:g} min 1280x720 25 fps H.264 at {rate:.2f} Mbit/s"
    table = Table(title=f"{title}, one sample every {args.every:g} s")
    columns = ["mode", "wall s", "sampled s/s", "vs watch", "CPU s", "cores used", "driver MB", "decode worker MB"]
    columns += ["engine actor MB", "spilled MB", "reports = watch", "load avg during"]
    for column in columns:
        table.add_column(column, justify="right")
    for mode, row in rows.items():
        is_batch = mode != "watch"
        table.add_row(
            mode,
            f"{row['wall_s']:.1f}",
            f"{row['seconds'] / row['wall_s']:.0f}",
            f"{base / row['wall_s']:.2f}x",
            f"{row['cpu_s']:.0f}",
            f"{row['cpu_s'] / row['wall_s']:.2f}",
            f"{row['driver_mb']:.0f}",
            f"{row['decode_mb']:.0f}" if is_batch else "-",
            f"{row['actor_mb']:.0f}" if is_batch else "-",
            str(row["spilled_mb"]) if is_batch else "-",
            ("yes" if same_reports(work / "watch", work / mode) else "NO") if is_batch else "-",
            f"{row['load']:.2f}",
        )
    console = Console(width=180)
    console.print(table)
    console.print(
        f"model {model.name}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"python benchmarks/batch.py {' '.join(sys.argv[1:])}"
    )


if __name__ == "__main__":
    main()
