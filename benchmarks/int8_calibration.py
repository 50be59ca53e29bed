"""INT8 against fp32 on other shorts: which calibration keeps the verdicts?

`screentime export --int8` calibrates static INT8 (QDQ, per-channel, backbone only) with MinMax
ranges over 64 frames of the training set. Does that hold on a show the frames never came from?
One frozen default-recipe model (heads trained on train/ only, global head, the block-4 maps of
benchmarks/loso.py's cache) is exported to ONNX and quantised with each calibration below; every
file scores every shift/ segment (never trained on): verdict agreement with fp32 and accuracy.

Usage: python benchmarks/int8_calibration.py --data DATA --backbone-weights VGG16.weights.h5 [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod
from rich.console import Console
from rich.table import Table

from benchmarks.loso import CLASSES, Model, load
from benchmarks.shift_data import shift_sets
from export.onnx_export import card_for, convert, write_card
from export.onnx_files import sample_frames
from export.quantize import quantize_backbone
from stream.model.card import PROBS_OUTPUT
from training.images import load_images, set_crop
from training.labels import read_labels
from training.model import assemble, load_backbone


def probs(path: Path, frames: np.ndarray) -> np.ndarray:
    """One thread, so two runs of benchmarks can share the machine's cores fairly."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run([PROBS_OUTPUT], {name: frames[i : i + 8]})[0] for i in range(0, len(frames), 8)])


def frames_of(directory: Path, labels: Path, size: tuple[int, int]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    data = read_labels(labels, directory, len(CLASSES))
    return load_images(data.paths, size, set_crop(directory, data.paths)), list(data.labels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="DATA with train/ and shift/")
    parser.add_argument("--backbone-weights", required=True)
    parser.add_argument("--input-size", default="320x180")
    parser.add_argument("--out", type=Path, default=None, help="keep the ONNX files here (default: a temporary dir)")
    args = parser.parse_args()
    started = time.perf_counter()
    size: tuple[int, int] = tuple(int(v) for v in args.input_size.split("x"))  # type: ignore[assignment]
    bb = load_backbone(size, args.backbone_weights)
    model = Model(bb, [load("train", args.data / "train", args.data / "train" / "mapping.csv", bb, "block5")], "none",
                  "global", seed=0)  # fmt: skip
    shift = shift_sets(args.data / "shift")
    segs = {name: frames_of(d, labels, size) for name, d, labels in shift}

    def calibration(n: int) -> np.ndarray:  # the frames `export --int8 --calibration train/` takes
        return sample_frames(args.data / "train", size, limit=n)

    calibrations = [
        ("MinMax, 64 train/ frames (shipped)", CalibrationMethod.MinMax, {}, calibration(64)),
        ("MinMax, 256 train/ frames", CalibrationMethod.MinMax, {}, calibration(256)),
        ("Percentile 99.99, 64 train/ frames", CalibrationMethod.Percentile, {"CalibPercentile": 99.99},
         calibration(64)),
        ("Entropy, 64 train/ frames", CalibrationMethod.Entropy, {}, calibration(64)),
        ("MinMax, 32 train/ + 8 of each segment", CalibrationMethod.MinMax, {},
         np.concatenate([calibration(32)] + [sample_frames(d, size, limit=8) for _, d, _ in shift])),
    ]  # fmt: skip
    table = Table(title="INT8 against fp32 on the shift/ segments (held out): agreement | INT8 accuracy (fp32's)")
    table.add_column("calibration")
    for name, (frames, _) in segs.items():
        table.add_column(f"{name} ({len(frames)})", justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        fp32 = out / "fp32.onnx"
        keras_model = assemble(bb, model.heads)
        convert(keras_model, fp32)
        write_card(fp32, card_for(keras_model, {"classes": list(CLASSES), "background": 0}))
        reference = {name: probs(fp32, frames) for name, (frames, _) in segs.items()}
        for i, (label, method, extra, frames) in enumerate(calibrations):
            int8 = out / f"int8-{i}.onnx"
            quantize_backbone(fp32, int8, frames, method, extra)
            cells = []
            for name, (seg, labels) in segs.items():
                verdict, ref = probs(int8, seg).argmax(1), reference[name].argmax(1)
                right = np.mean([v in lab for v, lab in zip(verdict, labels, strict=True)])
                right_fp32 = np.mean([v in lab for v, lab in zip(ref, labels, strict=True)])
                cells.append(f"{np.mean(verdict == ref):.1%} | {right:.3f} ({right_fp32:.3f})")
            table.add_row(label, *cells)
            Console().print(f"{label}: {' '.join(cells)}")
    console = Console(width=150)
    console.print(table)
    console.print(f"{time.perf_counter() - started:.0f} s; command: python {' '.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
