# ruff: noqa: E402  (TensorFlow is imported quietly before the modules that need it)
"""Honest accuracy: k-fold cross-validation over contiguous time blocks, recipe against recipe.

Neighbouring frames are near-duplicates, so a random split flatters (the seed tutorial reports
0.889 on one, 0.640 on another episode). Here each fold tests on two contiguous time blocks with a
gap of frames between them and the training data; every frame is tested exactly once. Backbone
features are cached, so re-running the comparison costs only the heads.

Prints frame accuracy, per-class precision/recall and per-character screen-time error (predicted
minus true seconds, one second per frame, over all test folds), the seed's recipe first.

Usage: python benchmarks/accuracy.py --frames DIR [--labels CSV] --backbone-weights VGG16.weights.h5

Transfer rows on other shorts (`--shift`): trained on the training episode, scored on each
segment of `shift/` (letterboxed and pillarboxed), with the bars cropped (`--crop auto`, the
default) and without (`--crop none`), mean and range over seeds; and the crop detector's area
against a reference on those frames (every row/column whose brightest pixel over all the
segment's frames is above 40).

Usage: python benchmarks/accuracy.py --shift ../shared/data/tom-and-jerry --backbone-weights W.weights.h5 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from rich.console import Console
from rich.table import Table

from stream.quiet import import_tensorflow_quietly

import_tensorflow_quietly()

import keras

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream.counting.accounting import account
from stream.counting.smoothing import smooth_probs
from training.features import backbone_features, backbone_key, cache_dir
from training.images import load_images
from training.labels import read_labels
from training.metrics import summarize
from training.model import MEAN_BGR, build_head, feature_extractor, load_backbone
from training.split import time_block_split
from training.train import TrainConfig, class_weights, fit_heads

CLASSES = ("neither", "jerry", "tom")
S = (448, 252)  # the default input size


@dataclass(frozen=True)
class Method:
    name: str
    preprocess: str  # "seed": RGB scaled to [-1, 1] as the tutorial did; "caffe": what the weights expect
    size: tuple[int, int]  # (width, height) fed to VGG16
    head: Callable[[tuple[int, ...], int], keras.Model]
    flatten_scale: bool = False  # the seed's X / X.max() on flattened features
    flip: bool = False  # add horizontally flipped feature maps to training
    smoothing: int = 1  # causal moving average over this many samples at prediction time
    augment: tuple[str, ...] = ("flip",)  # "default" rows: the views `screentime train` adds
    ensemble: int = 5  # "default" rows: heads
    test_view: str = "full"  # "default" rows: the view of the test frames (transfer rows: "pillarbox", "crop43")


def seed_head(shape: tuple[int, ...], n: int) -> keras.Model:
    """The tutorial's improved head: flatten 25,088 features into 1024-512-256 sigmoid units."""
    inputs = keras.Input(shape)
    x = keras.layers.Flatten()(inputs)
    for units in (1024, 512, 256):
        x = keras.layers.Dense(units, activation="sigmoid")(x)
        x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Dense(n, activation="softmax")(x))


def product_head(shape: tuple[int, ...], n: int) -> keras.Model:
    """Global max pooling of the block 5 maps, then screentime's dense head."""
    inputs = keras.Input(shape)
    pooled = keras.layers.GlobalMaxPooling2D()(inputs)
    return keras.Model(inputs, build_head(shape[-1], n)(pooled))


def features(paths: list[Path], method: Method, weights: str) -> tuple[np.ndarray, list[np.ndarray], float]:
    """Backbone features for `paths` (and for their augmented views) under the method's
    preprocessing and size, and the backbone's images per second; cached."""
    if method.preprocess == "default":  # exactly what `screentime train` computes (and caches)
        backbone = load_backbone(method.size, weights)
        key = hashlib.sha256((backbone_key(backbone) + "".join(f"{p}\n" for p in paths)).encode()).hexdigest()
        rate_file = cache_dir() / f"bench-rate-{key[:24]}.txt"
        out = backbone_features(backbone, paths, progress=False)
        if not rate_file.exists():  # the backbone's own speed, timed on 16 frames (the cache would flatter it)
            images = load_images(paths[:16], method.size).astype(np.float32)
            extractor = feature_extractor(backbone)
            extractor.predict(images[:2], verbose=0)  # warm-up
            started = time.perf_counter()
            extractor.predict(images, batch_size=16, verbose=0)
            rate_file.write_text(str(len(images) / (time.perf_counter() - started)))
        views = [backbone_features(backbone, paths, progress=False, view=v) for v in method.augment]
        return out, views, float(rate_file.read_text())
    key = hashlib.sha256(f"{weights}:{method.preprocess}:{method.size}:{[str(p) for p in paths]}".encode()).hexdigest()
    path = cache_dir() / f"bench-{key[:20]}.npz"
    if path.exists():
        data = np.load(path)
        return data["features"], [], float(data["rate"])
    backbone = load_backbone(method.size, weights).model
    images = load_images(paths, method.size).astype(np.float32)
    if method.preprocess == "seed":
        images = images[..., ::-1] / 127.5 - 1.0  # BGR -> RGB, [-1, 1]: keras' "tf" mode
    else:
        images = images - np.asarray(MEAN_BGR, np.float32)
    started = time.perf_counter()
    out = backbone.predict(images, batch_size=16, verbose=0)
    rate = len(paths) / (time.perf_counter() - started)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=out, rate=rate)
    return out, [], rate


def fit_predict(
    method: Method,
    x: np.ndarray,
    views: list[np.ndarray],
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
) -> np.ndarray:
    """The earlier recipes: one head, early stopping on an inner time block of the training folds."""
    keras.utils.set_random_seed(seed)
    inner = time_block_split(len(train), folds=5, fold=0)
    fit_idx, val_idx = train[inner.train], train[inner.val]
    xf, yf = x[fit_idx], y[fit_idx]
    if method.flip:
        xf, yf = np.concatenate([xf, xf[:, :, ::-1]]), np.concatenate([yf, yf])
    model = method.head(x.shape[1:], len(CLASSES))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=12, restore_best_weights=True)
    model.fit(
        xf,
        yf,
        validation_data=(x[val_idx], y[val_idx]),
        epochs=80,
        batch_size=32,
        verbose=0,
        class_weight=class_weights(yf.tolist(), len(CLASSES)),
        callbacks=[stop],
    )
    return model.predict(x[test], verbose=0)


def fit_predict_default(
    method: Method,
    x: np.ndarray,
    views: list[np.ndarray],
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
) -> np.ndarray:
    """`screentime train`'s own code path: its ensemble of folds, augmentation and label smoothing."""
    config = TrainConfig(
        frames=Path("."),
        labels=Path("."),
        output=Path("x.keras"),
        classes=CLASSES,
        seed=seed,
        progress=False,
        augment=method.augment,
        ensemble=method.ensemble,
    )
    heads, _, _ = fit_heads(x[train], y[train], config, multi=False, augmented=[v[train] for v in views])
    x_test = x if method.test_view == "full" else _TEST_VIEWS[method.test_view]
    return np.mean([np.asarray(h(x_test[test], training=False)) for h in heads], axis=0)


_TEST_VIEWS: dict[str, np.ndarray] = {}  # features of every frame in a test view, filled by main()


_RAW: dict[tuple, list[np.ndarray]] = {}  # per-fold test probabilities of a recipe before smoothing


def evaluate(method: Method, x: np.ndarray, views: list[np.ndarray], y: np.ndarray, folds: int, seed: int) -> dict:
    if method.flatten_scale:
        x = x / x.max()
    splits = [time_block_split(len(y), folds=folds, fold=fold, gap=3) for fold in range(folds)]
    key = (replace(method, name="", smoothing=1), folds, seed)
    if key not in _RAW:  # a smoothing row reuses its recipe's predictions instead of training again
        fit = fit_predict_default if method.preprocess == "default" else fit_predict
        _RAW[key] = [
            fit(method, x, views, y, np.asarray(split.train), np.asarray(split.val), seed + fold)
            for fold, split in enumerate(splits)
        ]
    probs = np.zeros((len(y), len(CLASSES)), np.float32)
    for split, raw in zip(splits, _RAW[key], strict=True):
        test, p = np.asarray(split.val), raw.copy()
        if method.smoothing > 1:
            for block in np.split(test, np.where(np.diff(test) != 1)[0] + 1):  # smooth within each time block
                p[np.searchsorted(test, block)] = smooth_probs(p[np.searchsorted(test, block)], method.smoothing)
        probs[test] = p
    return scores(y, probs.argmax(1))


def scores(y: np.ndarray, pred: np.ndarray) -> dict:
    """`summarize`'s metrics plus each class's screen-time error (predicted minus true seconds,
    one second per frame)."""
    result = summarize(y.tolist(), pred.tolist(), CLASSES)
    times = list(range(len(y)))
    true_s = account(times, [(CLASSES[c],) for c in y], len(y), CLASSES).totals_s
    pred_s = account(times, [(CLASSES[c],) for c in pred], len(y), CLASSES).totals_s
    result["screen_time_error_s"] = {c: pred_s[c] - true_s[c] for c in CLASSES}
    return result


def cell(values: list[float], fmt: str) -> str:
    """Mean of the seeds' values, with their range when there are several."""
    text = format(float(np.mean(values)), fmt)
    return text if len(values) == 1 else f"{text} ({format(min(values), fmt)}..{format(max(values), fmt)})"


def precision_recall(runs: list[dict], c: str) -> str:
    p = np.mean([r["per_class"][c]["precision"] or 0 for r in runs])
    return f"{p:.2f}/{np.mean([r['per_class'][c]['recall'] or 0 for r in runs]):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=Path, default=None)
    parser.add_argument("--shift", type=Path, default=None, help="DATA with train/ and shift/: the transfer rows")
    parser.add_argument("--views", default="", help="--shift: extra training views beside flip (e.g. colour)")
    parser.add_argument("--labels", type=Path, default=None)
    parser.add_argument("--backbone-weights", required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--seeds", default="0", help="comma-separated training seeds; several: each cell is their mean (range)"
    )
    parser.add_argument("--only", default=None, help="comma-separated method names to run")
    args = parser.parse_args()
    if args.shift is not None:
        return shift_transfer(args)
    if args.frames is None:
        parser.error("--frames or --shift is required")
    data = read_labels(args.labels or args.frames / "mapping.csv", args.frames, len(CLASSES))
    y = np.asarray(data.single)
    methods = [
        Method(
            "seed recipe (RGB [-1,1], 224x224, flatten, 1024-512-256)",
            "seed",
            (224, 224),
            seed_head,
            flatten_scale=True,
        ),
        Method("+ caffe preprocessing (what the weights expect)", "caffe", (224, 224), seed_head, flatten_scale=True),
        Method("+ global max pooling, BN, dense 256 (224x224)", "caffe", (224, 224), product_head),
        Method("+ 448x252 input, flips", "caffe", (448, 252), product_head, flip=True),
        Method(
            "448x252, max-pool blocks 4+5, ensemble of 5 folds, label smoothing 0.1, weighted checkpoint",
            "default",
            (448, 252),
            product_head,
            augment=(),
        ),
        Method("screentime default: the same + flipped training frames", "default", (448, 252), product_head),
        Method("default with 10 heads (2 per fold)", "default", (448, 252), product_head, ensemble=10),
        Method("default + temporal smoothing over 3 samples", "default", (448, 252), product_head, smoothing=3),
        Method(
            "transfer: default + recoloured training frames", "default", S, product_head, augment=("flip", "colour")
        ),
        Method(
            "transfer: default + another print (contrast, gamma, fading, blur, JPEG)",
            "default",
            S,
            product_head,
            augment=("flip", "print"),
        ),
        Method("transfer: default, tested on pillarboxed frames", "default", S, product_head, test_view="pillarbox"),
        Method("transfer: default, tested with the bars cropped", "default", S, product_head, test_view="crop43"),
        Method(
            "transfer: default + pillarboxed training frames, tested pillarboxed",
            "default",
            S,
            product_head,
            augment=("flip", "pillarbox"),
            test_view="pillarbox",
        ),
        Method(
            "transfer: default + pillarboxed training frames, tested full",
            "default",
            S,
            product_head,
            augment=("flip", "pillarbox"),
        ),
        Method("default at 384x216 (0.73x the pixels)", "default", (384, 216), product_head),
        Method("default at 320x180 (0.51x the pixels)", "default", (320, 180), product_head),
    ]
    if args.only:
        keep = {s.strip() for s in args.only.split(",")}
        methods = [m for m in methods if m.name in keep or str(methods.index(m)) in keep]
    seeds = [int(s) for s in args.seeds.split(",")]
    console = Console(width=160)
    title = f"{args.folds}-fold time-block cross-validation on {len(y)} frames of {args.frames}"
    if len(seeds) > 1:
        title += f"; mean (range) over training seeds {args.seeds}"
    table = Table(title=title)
    for col in (
        "recipe",
        "accuracy",
        "P/R neither",
        "P/R jerry",
        "P/R tom",
        "err jerry s",
        "err tom s",
        "worst err s",
        "backbone img/s",
    ):
        table.add_column(col, justify="left" if col == "recipe" else "right")
    for method in methods:
        x, views, rate = features(data.paths, method, args.backbone_weights)
        if method.test_view != "full" and method.test_view not in _TEST_VIEWS:
            backbone = load_backbone(method.size, args.backbone_weights)
            _TEST_VIEWS[method.test_view] = backbone_features(
                backbone, data.paths, progress=False, view=method.test_view
            )
        runs = [evaluate(method, x, views, y, args.folds, seed) for seed in seeds]

        errs = [r["screen_time_error_s"] for r in runs]
        table.add_row(
            method.name,
            cell([r["accuracy"] for r in runs], ".3f"),
            *(precision_recall(runs, c) for c in CLASSES),
            cell([e["jerry"] for e in errs], "+.0f"),
            cell([e["tom"] for e in errs], "+.0f"),
            cell([max(abs(e["jerry"]), abs(e["tom"])) for e in errs], ".0f"),
            f"{rate:.1f}",
        )
        console.print(f"done: {method.name}: {np.mean([r['accuracy'] for r in runs]):.3f}")
    console.print(table)
    console.print(
        f"true screen time: {dict(zip(CLASSES, np.bincount(y, minlength=3).tolist(), strict=True))} s; "
        f"command: python {' '.join(sys.argv)}"
    )
    return 0


def shift_transfer(args: argparse.Namespace) -> int:
    """Trained on train/, scored on each shift/ segment, bars cropped or not (benchmarks.shift_data)."""
    import cv2

    from benchmarks.shift_data import backbone, load_set, predict, score, shift_sets, train_heads
    from stream.frames.crop import detect

    seeds = [int(s) for s in args.seeds.split(",")]
    extra = tuple(v for v in args.views.split(",") if v)
    bb = backbone(args.backbone_weights)
    data = args.shift
    train = load_set("train", data / "train", data / "train" / "mapping.csv", bb, "auto", ("flip", *extra))
    segments = shift_sets(data / "shift")
    targets = {
        (name, crop): load_set(name, frames, labels, bb, crop)
        for name, frames, labels in segments
        for crop in ("auto", "none")
    }
    console = Console(width=160)
    recipe = "+".join(("flip", *extra))
    table = Table(
        title=f"Transfer: trained on train/ ({recipe}), scored on other shorts; mean (range) over seeds {args.seeds}"
    )
    for col in ("segment (frames)", "crop", "accuracy", "worst screen-time error"):
        table.add_column(col, justify="left" if col.startswith("segment") else "right")
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {k: [] for k in targets}
    for seed in seeds:
        heads, _ = train_heads(train, seed, augment=("flip", *extra))
        for key, target in targets.items():
            runs[key].append(score(target, predict(heads, target.x)))
    for (name, crop), results in runs.items():
        target = targets[(name, crop)]
        table.add_row(
            f"{name} ({len(target.paths)})" if crop == "auto" else "",
            f"auto ({target.crop})" if crop == "auto" else "none",
            cell([a for a, _ in results], ".3f"),
            cell([w for _, w in results], ".1%"),
        )
    console.print(table)
    found = Table(title="Crop detector on the shift frames: found area vs reference (x0, y0, x1, y1)")
    for col in ("segment", "found", "reference", "largest edge difference px"):
        found.add_column(col)
    for name, frames, _ in segments:
        images = [cv2.imread(str(p)) for p in sorted(frames.glob("*.jpg"))]
        crop = detect(images[:: max(1, len(images) // 48)])  # as train/evaluate sample a set
        grey = np.stack([cv2.cvtColor(i, cv2.COLOR_BGR2GRAY) for i in images])
        cols, rows = np.flatnonzero(grey.max(axis=(0, 1)) > 40), np.flatnonzero(grey.max(axis=(0, 2)) > 40)
        ref = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        got = (crop.x, crop.y, crop.x + crop.width, crop.y + crop.height) if crop else (0, 0, *images[0].shape[1::-1])
        found.add_row(name, str(got), str(ref), str(max(abs(a - b) for a, b in zip(got, ref, strict=True))))
    console.print(found)
    console.print(f"command: python {' '.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
