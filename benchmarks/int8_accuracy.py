# ruff: noqa: E402  (TensorFlow is imported quietly before the modules that need it)
"""INT8 against fp32 on the time-blocked evaluation: does quantisation cost accuracy on new footage?

For each of k contiguous time-block folds (the split of benchmarks/accuracy.py), `screentime
train`'s default recipe is fitted on the other folds, the deployable model is exported to ONNX
(fp32) and quantised to static INT8 calibrated on that fold's training frames only (as `screentime
export --int8 --calibration` does), and both files are run with onnxruntime on the held-out frames.
Every frame is scored once by models that never saw it; the table pools the folds.

Usage: python benchmarks/int8_accuracy.py --frames DIR [--labels CSV] --backbone-weights VGG16.weights.h5
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from rich.console import Console
from rich.table import Table

from stream.quiet import import_tensorflow_quietly

import_tensorflow_quietly()
logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices, one per fold

from accuracy import CLASSES, precision_recall, scores  # benchmarks/accuracy.py: the same metrics

from export.onnx_export import card_for, convert, write_card
from export.quantize import quantize_int8
from stream.model.engine import Engine
from training.features import backbone_features
from training.images import load_images
from training.labels import read_labels
from training.model import assemble, load_backbone
from training.split import time_block_split
from training.train import TrainConfig, fit_heads


def fold_models(
    backbone, x: np.ndarray, views: list[np.ndarray], y: np.ndarray, train: np.ndarray, paths: list[Path], out: Path
) -> tuple[Path, Path, float]:
    """Default-recipe heads on `train`, exported fp32 + INT8 (calibrated on the training frames)."""
    config = TrainConfig(frames=Path("."), labels=Path("."), output=Path("x.keras"), classes=CLASSES, progress=False)
    heads, _, _ = fit_heads(x[train], y[train], config, multi=False, augmented=[v[train] for v in views])
    model = assemble(backbone, heads)
    fp32, int8 = out / "model.onnx", out / "model.int8.onnx"
    convert(model, fp32)
    card = card_for(model, {"classes": list(CLASSES), "background": 0})
    write_card(fp32, card)
    calibration = out / "calibration"
    calibration.mkdir()
    for i in train:
        (calibration / paths[i].name).symlink_to(paths[i].resolve())
    agreement = quantize_int8(fp32, int8, calibration, card)
    return fp32, int8, agreement


def predict(model: Path, paths: list[Path]) -> np.ndarray:
    engine = Engine(model, "cpu")
    images = load_images(paths, engine.card.input_size)
    return np.concatenate([engine.predict(list(images[i : i + 8])) for i in range(0, len(images), 8)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--labels", type=Path, default=None)
    parser.add_argument("--backbone-weights", required=True)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    data = read_labels(args.labels or args.frames / "mapping.csv", args.frames, len(CLASSES))
    y = np.asarray(data.single)
    config = TrainConfig(frames=Path("."), labels=Path("."), output=Path("x.keras"), classes=CLASSES)
    backbone = load_backbone(config.input_size, args.backbone_weights)
    x = backbone_features(backbone, data.paths, progress=False)
    views = [backbone_features(backbone, data.paths, progress=False, view=v) for v in config.augment]
    probs = {"fp32": np.zeros((len(y), len(CLASSES))), "int8": np.zeros((len(y), len(CLASSES)))}
    agreements = []
    console = Console(width=130)
    for fold in range(args.folds):
        split = time_block_split(len(y), folds=args.folds, fold=fold, gap=3)
        train, test = np.asarray(split.train), np.asarray(split.val)
        with tempfile.TemporaryDirectory() as tmp:
            fp32, int8, agreement = fold_models(backbone, x, views, y, train, data.paths, Path(tmp))
            test_paths = [data.paths[i] for i in test]
            probs["fp32"][test], probs["int8"][test] = predict(fp32, test_paths), predict(int8, test_paths)
        agreements.append(agreement)
        console.print(f"fold {fold}: {len(test)} test frames, INT8 agrees with fp32 on {agreement:.1%} of calibration")

    table = Table(title=f"{args.folds}-fold time-block evaluation on {len(y)} frames of {args.frames}, default recipe")
    for col in ("model", "accuracy", "P/R neither", "P/R jerry", "P/R tom", "err jerry s", "err tom s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    results = {}
    for name, p in probs.items():
        r = results[name] = scores(y, p.argmax(1))
        table.add_row(
            name,
            f"{r['accuracy']:.3f}",
            *(precision_recall([r], c) for c in CLASSES),
            f"{r['screen_time_error_s']['jerry']:+.0f}",
            f"{r['screen_time_error_s']['tom']:+.0f}",
        )
    console.print(table)
    same = float(np.mean(probs["fp32"].argmax(1) == probs["int8"].argmax(1)))
    gap = 100 * (results["int8"]["accuracy"] - results["fp32"]["accuracy"]) + 0.0  # no "-0.0"
    console.print(
        f"INT8 - fp32 accuracy: {gap:+.1f} points (goal: within 1); same class on {same:.1%} of held-out frames; "
        f"calibration agreement per fold {', '.join(f'{a:.0%}' for a in agreements)}; "
        f"{time.perf_counter() - started:.0f} s"
    )
    console.print(f"command: python {' '.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
