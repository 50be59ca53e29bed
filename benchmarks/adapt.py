# ruff: noqa: E402  (TensorFlow is imported quietly before the modules that need it)
"""New footage: how much a few labelled frames of it help, chosen uniformly, at random or by `suggest`.

The shared episode is cut by time into an "old" part and a "new" part (first half / second half,
and the reverse). A model is trained on old; then k frames of new are labelled (k = 10, 20, 40),
picked (a) uniformly in time, (b) at random, (c) by `suggest` (the old-only model's uncertainty
and coverage of the backbone features, `training.suggest.choose`), and the model is retrained on
old + those k as two sets, exactly as `screentime train --frames old --frames new` does
(`fit_heads` with per-set folds, the exported ensemble's average as the prediction). Scored on
the rest of new (the picked frames left out): frame accuracy and the worst per-character
screen-time error (predicted minus true seconds over true seconds, one second per frame). Mean and range over seeds.

Also measured: the wall time of a real `screentime train --frames OLD --frames NEW` with the
per-frame cache warm, and the coverage of the 90% screen-time interval (stream.confidence.interval) on
held-out folds: each fold's interval from the held-out counts of the other folds.

Both halves of one episode are one drawing style, so "new" here is a new part of the same show,
not a new show: the gains are smaller than on a different episode.

Usage: python benchmarks/adapt.py --frames DIR [--labels CSV] --backbone-weights VGG16.weights.h5 [--seeds 0,1,2]

Other shorts (`--shift DATA`): trained on DATA/train, k = 0, 10, 20, 40 frames of one segment of
DATA/shift picked by `suggest` or uniformly in time, retrained on both sets, scored on the rest of
that segment; bars cropped (`--crop auto`). Accuracy counts a verdict naming any class of a `1;2`
frame as right, as `evaluate` does. The picked frames train without their flipped copies (the
training episode keeps them): flipping a segment would cost a backbone pass per frame.

Usage: python benchmarks/adapt.py --shift ../shared/data/tom-and-jerry --backbone-weights W.weights.h5
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from stream.quiet import import_tensorflow_quietly

import_tensorflow_quietly()

import keras

from stream.confidence.interval import card_intervals
from stream.model.card_metrics import CardMetrics
from training.features import backbone_features
from training.labels import read_labels
from training.metrics import heldout_mistakes
from training.model import load_backbone
from training.shots import signature
from training.split import Folds, HeadSplit
from training.suggest import choose, uncertainty
from training.train import TrainConfig, fit_heads

CLASSES = ("neither", "jerry", "tom")
CHARACTERS = ("jerry", "tom")
KS = (10, 20, 40)


@dataclass(frozen=True)
class Data:
    paths: list[Path]
    y: np.ndarray
    times: np.ndarray
    x: np.ndarray
    views: list[np.ndarray]
    signatures: np.ndarray


def fit_predict(data: Data, sets: list[np.ndarray], test: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train as `screentime train` on the given sets (index arrays, each in time order);
    the ensemble's probabilities on `test` and the held-out probabilities of the training frames."""
    keras.backend.clear_session()  # hundreds of heads in one process: keep Keras' global state small
    idx = np.concatenate(sets)
    folds = Folds.of_sets([data.times[s] for s in sets], 5)
    config = TrainConfig(
        frames=Path("."), labels=None, output=Path("x.keras"), classes=CLASSES, progress=False, seed=seed
    )
    heads, _, oof = fit_heads(data.x[idx], data.y[idx], config, False, [v[idx] for v in data.views], folds)
    probs = np.mean([np.asarray(h(data.x[test], training=False)) for h in heads], axis=0)
    return probs, oof


class SameFoldFolds(Folds):
    """The earlier scheme, for comparison only: head k picks its checkpoint on the fold it is
    scored on, and trains on the other four."""

    def head_split(self, k: int, gap_s: float = 2.0) -> HeadSplit:
        held = np.flatnonzero(self.fold == k % self.n_folds)
        near = (self.group[:, None] == self.group[held][None, :]) & (
            np.abs(self.times_s[:, None] - self.times_s[held][None, :]) <= gap_s
        )
        return HeadSplit(np.flatnonzero(~near.any(axis=1)), held, held)


def compare_schemes(data: Data, directions: dict, seeds: list[int], console: Console) -> None:
    """Deployed ensemble on the other half, and what each scheme reports, old scheme against new."""
    table = Table(title="Checkpoint on the scored fold (earlier) vs on the next fold (now): train on one half")
    for col in ("scheme", "reported out-of-fold accuracy", "ensemble accuracy on the other half"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    for name, folds_type in (
        ("earlier: checkpoint = scored fold", SameFoldFolds),
        ("now: checkpoint = next fold", Folds),
    ):
        reported, other = [], []
        for old, new in directions.values():
            for seed in seeds:
                folds = folds_type.of_sets([data.times[old]], 5)
                config = TrainConfig(
                    frames=Path("."), labels=None, output=Path("x.keras"), classes=CLASSES, progress=False, seed=seed
                )
                heads, _, oof = fit_heads(data.x[old], data.y[old], config, False, [v[old] for v in data.views], folds)
                reported.append(float((oof.argmax(1) == data.y[old]).mean()))
                probs = np.mean([np.asarray(h(data.x[new], training=False)) for h in heads], axis=0)
                other.append(float((probs.argmax(1) == data.y[new]).mean()))
        table.add_row(
            name,
            f"{np.mean(reported):.3f} ({min(reported):.3f}-{max(reported):.3f})",
            f"{np.mean(other):.3f} ({min(other):.3f}-{max(other):.3f})",
        )
    console.print(table)


def seconds(labels: np.ndarray) -> dict[str, float]:
    return {name: float((labels == i).sum()) for i, name in enumerate(CLASSES)}


def score(data: Data, test: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    pred, true = probs.argmax(1), data.y[test]
    p, t = seconds(pred), seconds(true)
    worst = max(abs(p[c] - t[c]) / t[c] for c in CHARACTERS if t[c])
    return float((pred == true).mean()), float(worst)


def card_of(y: np.ndarray, pred: np.ndarray, runs: list[np.ndarray]) -> CardMetrics:
    """What `train` writes into the model card about held-out mistakes (`heldout_mistakes`), for
    true classes `y` and held-out predictions `pred`; `runs` index arrays into y, each a set in
    time order; frames one second apart."""
    held = heldout_mistakes([(c,) for c in y], [(c,) for c in pred], runs, CLASSES, background=0)
    return replace(held, frame_spacing_s=1.0)


def covered(data: Data, sets: list[np.ndarray], oof: np.ndarray, test: np.ndarray, probs: np.ndarray) -> list[bool]:
    """Per class: is the true total of `test` inside the 90% interval built from the training
    frames' held-out mistakes, as `watch` and `evaluate` would state it?"""
    scored = ~np.isnan(oof[:, 0])
    set_of = np.repeat(np.arange(len(sets)), [len(s) for s in sets])[scored]
    runs = [np.flatnonzero(set_of == g) for g in range(len(sets))]
    card = card_of(data.y[np.concatenate(sets)][scored], oof[scored].argmax(1), runs)
    truth = seconds(data.y[test])
    found = card_intervals(seconds(probs.argmax(1)), float(len(test)), len(test), card)
    return [iv.contains(truth[name]) for name, iv in found.items()]


def pick_uniform(pool: np.ndarray, k: int, **_) -> np.ndarray:
    return pool[((np.arange(k) + 0.5) * len(pool) / k).astype(int)]


def pick_random(pool: np.ndarray, k: int, seed: int, **_) -> np.ndarray:
    return np.sort(np.random.default_rng(1000 + seed).choice(pool, k, replace=False))


def pick_suggest(pool: np.ndarray, k: int, data: Data, old_probs: np.ndarray, seed: int, **_) -> np.ndarray:
    order = choose(uncertainty(old_probs), data.x[pool], data.signatures[pool], k, seed=seed)
    return np.sort(pool[order])


STRATEGIES: dict[str, Callable[..., np.ndarray]] = {
    "uniform": pick_uniform,
    "random": pick_random,
    "suggest": pick_suggest,
}


def rest_of(pool: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """`pool` less the picked frames. Their neighbours stay: they are part of the rest of the
    episode a user measures (leaving out 2 s either side of 40 picks would leave nothing of 148)."""
    return np.setdiff1d(pool, picked)


def fold_coverage(data: Data, seeds: list[int]) -> tuple[int, int, list[float], list[float]]:
    """Train on everything; for each fold, the interval from the other folds' held-out counts
    against the fold's true seconds. Returns (inside, checks, widths as a share of the truth,
    the cross-validated accuracy of each seed)."""
    everything = np.arange(len(data.y))
    inside = checks = 0
    widths, accuracy = [], []
    for seed in seeds:
        _, oof = fit_predict(data, [everything], everything[:1], seed)
        folds = Folds.of_sets([data.times], 5)
        pred = oof.argmax(1)
        accuracy.append(float((pred == data.y).mean()))
        for k in range(5):
            mine, others = folds.fold == k, np.flatnonzero(folds.fold != k)
            card = card_of(data.y[others], pred[others], [np.arange(len(others))])
            totals = seconds(pred[mine])
            truth = seconds(data.y[mine])
            for name, iv in card_intervals(totals, float(mine.sum()), int(mine.sum()), card).items():
                inside += iv.contains(truth[name])
                checks += 1
                widths.append((iv.high - iv.low) / max(truth[name], 1.0))
    return inside, checks, widths, accuracy


def retrain_wall_time(data: Data, old: np.ndarray, picked: np.ndarray, labels: dict[Path, int], weights: str) -> float:
    """A real `screentime train --frames OLD --frames NEW` (the cache already holds every frame)."""
    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        for name, idx in (("old", old), ("new", picked)):
            d = Path(tmp) / name
            d.mkdir()
            rows = ["Image_ID,Class"]
            for i in idx:
                shutil.copy(data.paths[i], d / data.paths[i].name)
                rows.append(f"{data.paths[i].name},{labels[data.paths[i]]}")
            (d / "labels.csv").write_text("\n".join(rows) + "\n")
            dirs += ["--frames", str(d)]
        started = time.perf_counter()
        subprocess.run(
            [
                str(Path(sys.executable).parent / "screentime"),
                "-q",
                "train",
                *dirs,
                "-o",
                f"{tmp}/m.keras",
                "--backbone-weights",
                weights,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - started


def _mean_range(values: list[float], fmt: str) -> str:
    return f"{np.mean(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def shift_adapt(args: argparse.Namespace, seeds: list[int]) -> int:
    """k frames of a shift/ segment (suggest or uniform) added to train/, scored on the rest."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.shift_data import FrameSet, backbone, load_set, predict, score, shift_sets, train_heads

    bb = backbone(args.backbone_weights)
    train = load_set("train", args.shift / "train", args.shift / "train" / "mapping.csv", bb, "auto", ("flip",))
    ks = [int(k) for k in args.ks.split(",")]
    console = Console(width=150)
    table = Table(title=f"Adapting to other shorts (bars cropped): mean (range) over seeds {args.seeds}")
    for col in ("segment", "k", "picked by", "accuracy on the rest", "worst screen-time error"):
        table.add_column(col, justify="left" if col in ("segment", "picked by") else "right")
    for name, frames, labels in shift_sets(args.shift / "shift"):
        seg = load_set(name, frames, labels, bb, "auto")
        shots = np.stack([signature(cv2.imread(str(p))) for p in seg.paths])
        pool = np.arange(len(seg.paths))
        rows: dict[tuple[int, str], list[tuple[float, float]]] = {}
        for seed in seeds:
            heads, _ = train_heads(train, seed)
            old_probs = predict(heads, seg.x)
            rows.setdefault((0, "-"), []).append(score(seg, old_probs))
            for k in ks:
                picks = {
                    "uniform": pick_uniform(pool, k),
                    "suggest": np.sort(choose(uncertainty(old_probs), seg.x, shots, k, seed=seed)),
                }
                for strategy, picked in picks.items():
                    rest = rest_of(pool, picked)
                    new = seg.subset(picked, "new")
                    both = FrameSet(
                        "both",
                        train.paths + new.paths,
                        train.labels + new.labels,
                        np.concatenate([train.times, new.times + train.times.max() + 1000]),
                        np.concatenate([train.x, new.x]),
                        [np.concatenate([train.views[0], new.x])],  # no flipped copies of the new frames
                        None,
                    )
                    heads, _ = train_heads(
                        both, seed, sets=[np.arange(len(train.paths)), len(train.paths) + np.arange(k)]
                    )
                    rest_set = seg.subset(rest, "rest")
                    rows.setdefault((k, strategy), []).append(score(rest_set, predict(heads, rest_set.x)))
        for (k, strategy), results in sorted(rows.items()):
            table.add_row(
                f"{name} ({len(seg.paths)})" if k == 0 else "",
                str(k),
                strategy,
                _mean_range([a for a, _ in results], ".3f"),
                _mean_range([w for _, w in results], ".1%"),
            )
        table.add_section()
        console.print(f"done: {name}")
    console.print(table)
    console.print(f"command: python {' '.join(sys.argv)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=Path, default=None)
    parser.add_argument("--shift", type=Path, default=None, help="DATA with train/ and shift/: adapt to other shorts")
    parser.add_argument("--labels", type=Path, default=None)
    parser.add_argument("--backbone-weights", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--skip-coverage", action="store_true")
    parser.add_argument("--ks", default=",".join(map(str, KS)))
    parser.add_argument("--skip-retrain", action="store_true")
    parser.add_argument("--coverage-only", action="store_true", help="only the held-out fold coverage")
    parser.add_argument(
        "--schemes", action="store_true", help="only: earlier checkpoint scheme against the current one"
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.shift is not None:
        return shift_adapt(args, seeds)
    if args.frames is None:
        parser.error("--frames or --shift is required")
    console = Console(width=150)
    labels_csv = args.labels or next(p for p in (args.frames / "labels.csv", args.frames / "mapping.csv") if p.exists())
    frames = read_labels(labels_csv, args.frames, len(CLASSES))
    backbone = load_backbone(TrainConfig.input_size, args.backbone_weights)
    t0 = time.perf_counter()
    x = backbone_features(backbone, frames.paths)
    views = [backbone_features(backbone, frames.paths, view=v) for v in TrainConfig.augment]
    console.print(f"features of {len(frames.paths)} frames (x{1 + len(views)} views): {time.perf_counter() - t0:.0f} s")
    data = Data(
        frames.paths,
        np.asarray(frames.single),
        np.asarray(frames.times_s, float),
        x,
        views,
        np.stack([signature(cv2.imread(str(p))) for p in frames.paths]),
    )
    n = len(data.y)
    half = n // 2
    directions = {
        "old = first half": (np.arange(half), np.arange(half, n)),
        "old = second half": (np.arange(half, n), np.arange(half)),
    }

    if args.schemes:
        compare_schemes(data, directions, seeds, console)
        return 0
    if not args.coverage_only:
        rows: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
        coverage: dict[int, list[bool]] = {}
        for direction, (old, new) in directions.items():
            for seed in seeds:
                started = time.perf_counter()
                old_probs, oof = fit_predict(data, [old], new, seed)
                rows.setdefault((direction, "none", 0), []).append(score(data, new, old_probs))
                coverage.setdefault(0, []).extend(covered(data, [old], oof, new, old_probs))
                for strategy, pick in STRATEGIES.items():
                    for k in KS:
                        picked = pick(new, k, data=data, old_probs=old_probs, seed=seed)
                        test = rest_of(new, picked)
                        probs, oof = fit_predict(data, [old, picked], test, seed)
                        rows.setdefault((direction, strategy, k), []).append(score(data, test, probs))
                        coverage.setdefault(k, []).extend(covered(data, [old, picked], oof, test, probs))
                console.print(f"{direction}, seed {seed}: {time.perf_counter() - started:.0f} s", style="dim")

        table = Table(title=f"New footage: accuracy and worst character error on the rest of new (seeds {args.seeds})")
        for col in (
            "old/new",
            "labelled frames of new",
            "k",
            "accuracy mean",
            "accuracy range",
            "worst error mean",
            "worst error range",
        ):
            table.add_column(col, justify="right" if col not in ("old/new", "labelled frames of new") else "left")
        for (direction, strategy, k), results in rows.items():
            acc = np.array([r[0] for r in results])
            err = np.array([r[1] for r in results])
            table.add_row(
                direction,
                strategy,
                str(k),
                f"{acc.mean():.3f}",
                f"{acc.min():.3f}-{acc.max():.3f}",
                f"{err.mean():.1%}",
                f"{err.min():.1%}-{err.max():.1%}",
            )
        console.print(table)
        for k, hits in coverage.items():
            console.print(
                f"90% interval coverage on the rest of new, k = {k}: {sum(hits)}/{len(hits)} = {np.mean(hits):.0%}"
                + (" (no frame of new labelled: the held-out counts describe old footage)" if k == 0 else "")
            )

        if not args.skip_retrain:
            label_of = {p: int(c) for p, c in zip(data.paths, data.y, strict=True)}
            old, new = directions["old = first half"]
            old_probs, _ = fit_predict(data, [old], new, seeds[0])
            picked = pick_suggest(new, 20, data, old_probs, seeds[0])
            wall = retrain_wall_time(data, old, picked, label_of, args.backbone_weights)
            console.print(
                f"retrain, warm cache: `screentime train --frames OLD --frames NEW` ({len(old)} + 20 frames): "
                f"{wall:.1f} s"
            )

    if not args.skip_coverage:
        inside, checks, widths, accuracy = fold_coverage(data, seeds)
        console.print(f"cross-validated accuracy (train on all {n} frames): {', '.join(f'{a:.3f}' for a in accuracy)}")
        console.print(
            f"90% interval coverage on held-out folds: {inside}/{checks} = {inside / checks:.0%} "
            f"(3 classes x 5 folds x {len(seeds)} seeds; median width {np.median(widths):.0%} of the true seconds)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
