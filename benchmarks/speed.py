"""Speed against the seed's pipeline and against the floor, on one video, one table.

Rows (each in its own process, so peak memory is its own):
  seed      the tutorial's pipeline: every sampled frame dumped to JPEG, read back, resized,
            Keras VGG16 predict (+ its dense head)
  fp32      screentime watch --every 1 with the fp32 ONNX model (defaults: near-duplicate reuse on)
  int8      screentime watch --every 1 with the static INT8 model (the same defaults)
  int8-all  the same with near-duplicate reuse off: every sample inferred (what the floor measures)
  decode-cv decode-only with OpenCV: grab every frame, convert the sampled ones
  decode    decode-only as watch decodes: non-reference frames before each sample dropped
  infer     inference-only: the INT8 model on the sampled frames already in memory
The floor for file analysis is max(decode, infer): the stages overlap in separate threads.

A second table, on a longer synthetic 1280x720 25 fps clip with a keyframe every 2 s, sampled
every 10 s: INT8 watch without keyframe seeking against watch seeking keyframes (same samples).

Usage: python benchmarks/speed.py --frames DIR --model MODEL.onnx --backbone-weights VGG16.weights.h5
       (MODEL.int8.onnx must lie beside MODEL.onnx: `screentime export --int8`)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from stream.frames.preprocess import SKIP_SIMILAR_DEFAULT

ROOT = Path(__file__).resolve().parents[1]
SPARSE_EVERY_S = 10.0


def build_video(frames_dir: Path, out: Path, fps: int) -> float:
    """A video of the frames, each held one second (they were sampled once a second)."""
    from training.synthetic import write_video

    paths = sorted(frames_dir.glob("*.jpg"), key=lambda p: int("".join(c for c in p.stem if c.isdigit()) or 0))
    first = cv2.imread(str(paths[0]))
    size = (first.shape[1] - first.shape[1] % 2, first.shape[0] - first.shape[0] % 2)
    cache: dict[int, np.ndarray] = {}

    def frame_at(t: float) -> np.ndarray:
        index = min(int(t), len(paths) - 1)
        if index not in cache:
            cache.clear()
            cache[index] = cv2.resize(cv2.imread(str(paths[index])), size)
        return cache[index]

    write_video(out, [i / fps for i in range(len(paths) * fps)], frame_at, size, rate=fps)
    return float(len(paths))


def row_seed(video: Path, args) -> dict:
    """The tutorial, faithfully: frame index modulo the reported FPS, JPEG round trip, scikit-image
    resize to 224x224, inputs scaled to [-1, 1], Keras VGG16 predict, features / their max, head."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from skimage.transform import resize  # the tutorial's resize (pip install -e ".[bench]")

    from stream.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
    base.load_weights(args.backbone_weights)
    inputs = keras.Input((7 * 7 * 512,))
    x = inputs
    for units in (1024, 512, 256):
        x = keras.layers.Dense(units, activation="sigmoid")(x)
    head = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cap = cv2.VideoCapture(str(video))
        rate = cap.get(cv2.CAP_PROP_FPS)
        names = []
        while True:
            frame_id = cap.get(cv2.CAP_PROP_POS_FRAMES)
            ok, frame = cap.read()
            if not ok:
                break
            if frame_id % int(rate) == 0:
                name = f"{tmp}/frame{len(names)}.jpg"
                cv2.imwrite(name, frame)
                names.append(name)
        rgb = [cv2.imread(n)[..., ::-1] for n in names]  # the tutorial reads with plt.imread: RGB
        images = np.stack([resize(im, preserve_range=True, output_shape=(224, 224)).astype(int) for im in rgb])
        features = base.predict(images / 127.5 - 1.0, verbose=0)
        features = features.reshape(len(names), -1)
        head.predict(features / features.max(), verbose=0)
    return {"wall_s": time.perf_counter() - started, "inferences": len(names)}


def row_watch(video: Path, model: Path, precision: str, skip_similar: float = SKIP_SIMILAR_DEFAULT) -> dict:
    """`watch --every 1` as the CLI runs it (near-duplicate reuse on by default)."""
    from stream import watch

    started = time.perf_counter()
    report = watch(str(video), model, every_s=1.0, device="cpu", precision=precision, skip_similar=skip_similar).run()
    return {
        "wall_s": time.perf_counter() - started,
        "inferences": report.samples - report.inferences_saved,
        "samples": report.samples,
        "totals_s": report.screen_time_s,
    }


def row_sparse(video: Path, model: Path, seek: bool) -> dict:
    """INT8 watch sampling every 10 s, with or without keyframe seeking."""
    import stream.sources.file
    from stream import watch

    if not seek:
        stream.sources.file.worth_seeking = lambda keyframes_s, every_s: False
    started = time.perf_counter()
    report = watch(str(video), model, every_s=SPARSE_EVERY_S, device="cpu", precision="int8").run()
    return {"wall_s": time.perf_counter() - started, "inferences": report.samples - report.inferences_saved}


def build_long_video(out: Path, seconds: float) -> float:
    from training.synthetic import make_clip

    make_clip(out, duration_s=seconds, fps=25, size=(1280, 720), gop=50)
    return seconds


def row_decode(video: Path, every_s: float = 1.0, opencv: bool = False) -> dict:
    """Decode-only: the frames `watch` decodes and converts (its source, dropping and seeking as it
    does), or with `opencv`, every frame grabbed by OpenCV and the sampled ones converted."""
    from stream.frames.sampler import Sampler
    from stream.sources.file import FileSource

    started = time.perf_counter()
    sampler, n = Sampler(every_s), 0
    if opencv:
        cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
        while cap.grab():
            if sampler.due(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000):
                cap.retrieve()
                n += 1
        return {"wall_s": time.perf_counter() - started, "inferences": 0, "frames": n}
    source = FileSource(video, sparse_every_s=every_s if every_s > 0 else None)
    source.open()
    while (t := source.grab()) is not None:
        if sampler.due(t):
            source.retrieve()
            n += 1
            source.skip_to(sampler.next_due_s)
    source.close()
    return {"wall_s": time.perf_counter() - started, "inferences": 0, "frames": n}


def row_infer(frames_dir: Path, model: Path) -> dict:
    from stream.model.engine import Engine, int8_sibling
    from training.images import load_images

    engine = Engine(int8_sibling(model), "cpu")
    paths = sorted(frames_dir.glob("*.jpg"))
    images = list(load_images(paths, engine.card.input_size))
    started = time.perf_counter()
    for i in range(0, len(images), 8):
        engine.predict(images[i : i + 8])
    return {"wall_s": time.perf_counter() - started, "inferences": len(images)}


def model_size(model: Path) -> str:
    from stream.model.engine import Engine

    width, height = Engine(model, "cpu").card.input_size
    return f"{width}x{height}"


def run_row(name: str, args, video: Path) -> dict:
    """Run one row in a fresh process; its peak resident memory is that child's own maxrss."""
    cmd = [
        sys.executable,
        __file__,
        "--row",
        name,
        "--video",
        str(video),
        "--frames",
        str(args.frames),
        "--model",
        str(args.model),
        "--backbone-weights",
        str(args.backbone_weights),
        *(["--extra-model", str(args.extra_model)] if args.extra_model else []),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"row {name} failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--backbone-weights", type=Path, required=True)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--long-seconds", type=float, default=120.0, help="length of the synthetic clip")
    parser.add_argument(
        "--extra-model", type=Path, default=None, help="another model (say 224x224) for one more inference-only row"
    )
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:  # child process
        rows = {
            "seed": lambda: row_seed(args.video, args),
            "fp32": lambda: row_watch(args.video, args.model, "fp32"),
            "int8": lambda: row_watch(args.video, args.model, "int8"),
            "int8-all": lambda: row_watch(args.video, args.model, "int8", skip_similar=0.0),
            "decode": lambda: row_decode(args.video),
            "decode-cv": lambda: row_decode(args.video, opencv=True),
            "infer": lambda: row_infer(args.frames, args.model),
            "infer-extra": lambda: row_infer(args.frames, args.extra_model),
            "sparse": lambda: row_sparse(args.video, args.model, seek=False),
            "sparse-seek": lambda: row_sparse(args.video, args.model, seek=True),
            "sparse-decode": lambda: row_decode(args.video, SPARSE_EVERY_S, opencv=True),
        }
        print(json.dumps(rows[args.row]()))
        return 0

    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.mp4"
        seconds = build_video(args.frames, video, args.fps)
        names = ["seed", "fp32", "int8", "int8-all", "decode-cv", "decode", "infer"]
        names += ["infer-extra"] if args.extra_model else []
        results = {name: run_row(name, args, video) for name in names}
        long_video = Path(tmp) / "long.mp4"
        long_s = build_long_video(long_video, args.long_seconds)
        sparse = {name: run_row(name, args, long_video) for name in ("sparse-decode", "sparse", "sparse-seek")}
    seed_wall = results["seed"]["wall_s"]
    labels = {
        "seed": "seed tutorial pipeline (JPEG dump, Keras)",
        "fp32": "screentime watch --every 1, fp32",
        "int8": "screentime watch --every 1, INT8",
        "int8-all": "the same, near-duplicate reuse off",
        "decode-cv": "decode only, OpenCV, every frame",
        "decode": "decode only, as watch decodes (floor part 1)",
        "infer": "INT8 inference only (floor part 2)",
    }
    if args.extra_model:
        labels["infer-extra"] = f"INT8 inference only, {model_size(args.extra_model)} model"
    table = Table(
        title=f"{seconds:.0f} s video ({args.frames.name} frames held 1 s, H.264 {args.fps} fps), every 1 s, "
        f"{model_size(args.model)} model"
    )
    for col in ("run", "wall s", "video s / s", "inferences / s", "peak MB", "vs seed"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, r in results.items():
        rate = f"{r['inferences'] / r['wall_s']:.1f}" if r["inferences"] else "-"
        table.add_row(
            labels[name],
            f"{r['wall_s']:.1f}",
            f"{seconds / r['wall_s']:.1f}",
            rate,
            f"{r['peak_mb']:.0f}",
            f"{seed_wall / r['wall_s']:.1f}x",
        )
    floor = max(results["decode"]["wall_s"], results["infer"]["wall_s"])
    console = Console(width=130)
    console.print(table)
    lean, full = results["int8"], results["int8-all"]
    change = max(abs(lean["totals_s"][c] - full["totals_s"][c]) for c in full["totals_s"])
    console.print(
        f"INT8 file analysis / floor (max of decode-only and inference-only), every sample inferred: "
        f"{full['wall_s'] / floor:.2f}x (goal <= 1.25)\n"
        f"near-duplicate reuse (watch's default): {full['inferences'] - lean['inferences']} of "
        f"{full['samples']} inferences saved; largest change in a screen-time total: {change:.1f} s (goal <= 0.5)"
    )
    table = Table(
        title=f"{long_s:.0f} s synthetic 1280x720 25 fps clip, keyframe every 2 s, INT8, every {SPARSE_EVERY_S:g} s"
    )
    for col in ("run", "wall s", "video s / s", "samples", "peak MB"):
        table.add_column(col, justify="left" if col == "run" else "right")
    sparse_labels = {
        "sparse-decode": "decode only, OpenCV, every frame",
        "sparse": "screentime watch, no seeking (B-frames dropped)",
        "sparse-seek": "screentime watch, seeking keyframes",
    }
    for name, r in sparse.items():
        samples = r.get("frames", r["inferences"])
        wall, peak = f"{r['wall_s']:.1f}", f"{r['peak_mb']:.0f}"
        table.add_row(sparse_labels[name], wall, f"{long_s / r['wall_s']:.1f}", str(samples), peak)
    console.print(table)
    console.print(f"{platform.machine()}, {os.cpu_count()} CPUs; command: python {' '.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
