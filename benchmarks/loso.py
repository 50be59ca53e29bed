# ruff: noqa: E402  (TensorFlow is imported quietly before the modules that need it)
"""Other shorts, leave one segment out: fine-tuning against frozen features, and `suggest`'s picks.

Part "suggest": trained on DATA/train, k frames of one segment of DATA/shift picked uniformly in
time, by the product's `suggest` (k-means groups, each offering its least certain frame,
`training.suggest.choose`) or by a candidate (greedy k-center among the most uncertain frames,
`choose_kcenter` here; measured worse on three of four segments, so not in the product),
retrained on both sets, scored on the rest of the segment. Frozen backbone, global head.

Part "loso": trained on DATA/train plus three segments (each its own set, as `train --frames ...`
does), scored on the fourth with no label of it (k = 0) and with k frames of it picked by
`suggest` from that model (retrained with them as a fifth set, scored on the rest). Recipes:
`--tune none` (frozen) and `--tune conv3` / `block5` (training.train.fit_recipe: the same code
`screentime train` runs), global or spatial head.

Accuracy counts a verdict naming any class of a `1;2` frame as right (the argmax among the
classes), as benchmarks/adapt.py --shift does; the worst screen-time error is |predicted - true| /
true seconds of the worse character (one second per frame; a `1;2` frame counts for both).
Every set's bars are cropped (`--crop auto`). No flipped views (each would cost a backbone pass
per frame on this CPU): the tuned layers see maps shifted by a cell instead. The frozen part's maps
come from the per-frame cache (training.tune.frozen_maps, up to block5_conv2; the frozen recipe
runs block5_conv3 on them unchanged), at `--input-size`.

Usage: python benchmarks/loso.py --data ../shared/data/tom-and-jerry --backbone-weights W.weights.h5
       [--input-size 320x180] [--parts suggest,loso] [--tunes none,conv3] [--heads global] [--ks 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from rich.console import Console
from rich.table import Table

from stream.quiet import import_tensorflow_quietly

import_tensorflow_quietly()

import keras

from benchmarks.shift_data import shift_sets
from stream.model.margin import uncertainty
from training.images import path_crops, read_images
from training.labels import read_labels
from training.model import load_backbone
from training.shots import same_shot_as, signature
from training.split import Folds
from training.suggest import choose
from training.train import TrainConfig, fit_heads, fit_recipe, multi_hot
from training.tune import head_inputs, top

CLASSES = ("neither", "jerry", "tom")
CUT = "conv3"  # one cache serves both recipes: maps up to block5_conv2


@dataclass(frozen=True)
class Part:
    name: str
    labels: list[tuple[int, ...]]
    times: np.ndarray
    maps: np.ndarray  # frozen maps (block4_pool | block5_conv2), float16
    signatures: np.ndarray

    def take(self, idx: np.ndarray) -> Part:
        return Part(self.name, [self.labels[i] for i in idx], self.times[idx], self.maps[idx], self.signatures[idx])


def load(name: str, frames: Path, labels: Path, bb) -> Part:
    from training.tune import frozen_maps

    data = read_labels(labels, frames, len(CLASSES))
    crops = path_crops(data.paths, "auto")
    maps = frozen_maps(bb, data.paths, CUT, crops=crops, progress=False)
    shots = np.stack([signature(im) for im in read_images(data.paths, crops)])
    return Part(name, list(data.labels), np.asarray(data.times_s, float), maps, shots)


def score(labels: list[tuple[int, ...]], probs: np.ndarray) -> tuple[float, float]:
    pred = probs.argmax(1)
    right = float(np.mean([p in lab for p, lab in zip(pred, labels, strict=True)]))
    worst = 0.0
    for c in (1, 2):
        true_s = sum(c in lab for lab in labels)
        if true_s:
            worst = max(worst, abs(int((pred == c).sum()) - true_s) / true_s)
    return right, worst


class Model:
    """One recipe trained on some parts: predicts probabilities and pooled features from maps."""

    def __init__(self, bb, parts: list[Part], tune: str, head: str, seed: int) -> None:
        keras.backend.clear_session()
        labels = [lab for p in parts for lab in p.labels]
        self.multi = any(len(lab) > 1 for lab in labels) or head == "spatial"
        y = multi_hot(labels, len(CLASSES), 0) if self.multi else np.asarray([lab[0] for lab in labels])
        folds = Folds.of_sets([p.times for p in parts], 5)
        maps = np.concatenate([p.maps for p in parts])
        config = TrainConfig(
            frames=Path("."), labels=None, output=Path("x.keras"), classes=CLASSES, progress=False, seed=seed
        )
        config.augment, config.tune, config.head = (), tune, head
        self.head = head
        started = time.perf_counter()
        if tune == "block5":
            raise SystemExit("--tunes block5 needs maps up to block4_pool: this benchmark caches up to block5_conv2")
        if tune == "none":
            self.top = top(bb, CUT, maps.shape[-1])  # block5_conv3 with its ImageNet weights
            x = head_inputs(self.top, maps, head)
            self.heads, _, _ = fit_heads(x, y, config, self.multi, [], folds)
            self.tuning: dict = {}
        else:
            fit = fit_recipe(bb, maps, [], y, self.multi, folds, config)
            self.top, self.heads, self.tuning = fit.top, fit.heads, fit.tuning
        self.seconds = time.perf_counter() - started

    def predict(self, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = head_inputs(self.top, maps, self.head)
        probs = np.mean([np.asarray(h.predict(x, verbose=0)) for h in self.heads], axis=0)
        return probs, head_inputs(self.top, maps, "global")


POOL_PER_PICK = 4  # the k-center runs over the 4n most uncertain open frames (at least a third of them)


def choose_kcenter(
    uncertain: np.ndarray,
    features: np.ndarray,
    signatures: np.ndarray,
    n: int,
    labelled: np.ndarray | None = None,
    seed: int = 0,
) -> list[int]:
    """Indices of up to `n` frames to label, most useful first.

    `uncertain` (N,) in [0, 1]; `features` (N, F), compared by cosine distance; `signatures`
    (N, 16, 16) shot thumbnails; `labelled` (N,) bool marks frames already labelled. Among the
    most uncertain open frames (POOL_PER_PICK per frame asked for, at least a third of them), a
    greedy k-center: each pick is the frame farthest from every labelled and picked frame, so the
    list covers the kinds of picture the model is unsure of instead of the one scene it is least
    sure of; the first pick is the least certain frame. A frame of the same
    shot as a picked or labelled frame (`training.shots`) is never offered. Ties go to the less
    certain frame (for the first pick: to the one farthest from the labelled frames), then to `seed`'s
    order (one seed, one list).
    """
    count = len(uncertain)
    labelled = np.zeros(count, bool) if labelled is None else np.asarray(labelled, bool)
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    open_ = ~labelled
    for i in np.flatnonzero(labelled):
        open_[same_shot_as(signatures, i)] = False
    candidates = np.flatnonzero(open_)
    if not len(candidates):
        return []
    tiebreak = np.random.default_rng(seed).permutation(count)
    by_doubt = candidates[np.lexsort((tiebreak[candidates], -uncertain[candidates]))]
    pool = np.zeros(count, bool)
    pool[by_doubt[: max(POOL_PER_PICK * n, len(candidates) // 3)]] = True
    known = unit[labelled]
    gap = np.full(count, 2.0) if not len(known) else (1.0 - unit @ known.T).min(axis=1)
    picked: list[int] = []
    while len(picked) < n:
        where = open_ & pool if (open_ & pool).any() else open_  # the pool used up: any open frame
        if not where.any():
            break
        idx = np.flatnonzero(where)
        far, doubt = np.round(gap[idx], 6), uncertain[idx]
        keys = (-far, -doubt) if picked else (-doubt, -far)  # the first pick: the least certain
        best = idx[np.lexsort((tiebreak[idx], *reversed(keys)))[0]]
        picked.append(int(best))
        open_[same_shot_as(signatures, best)] = False
        gap = np.minimum(gap, 1.0 - unit @ unit[best])
    return picked


def pick(strategy: str, seg: Part, k: int, probs: np.ndarray, features: np.ndarray, multi: bool, seed: int):
    if strategy == "uniform":
        return ((np.arange(k) + 0.5) * len(seg.labels) / k).astype(int)
    doubt = uncertainty(probs, multi)
    if strategy == "k-means (product)":
        return np.sort(choose(doubt, features, seg.signatures, k, seed=seed))
    return np.sort(choose_kcenter(doubt, features, seg.signatures, k, seed=seed))


def with_picks(parts: list[Part], seg: Part, picked: np.ndarray) -> list[Part]:
    new = seg.take(picked)
    return [*parts, Part("new", new.labels, new.times, new.maps, new.signatures)]


def composition(seg: Part, picked: np.ndarray) -> str:
    """What the picks show: neither / jerry / tom / both, and how uncertain they were."""
    labs = [seg.labels[i] for i in picked]
    both = sum(len(lab) > 1 for lab in labs)
    return "/".join(str(sum(lab == (c,) for lab in labs)) for c in range(3)) + f"/{both}"


def part_suggest(bb, train: Part, segs: list[Part], ks: list[int], seed: int, console: Console) -> None:
    table = Table(title="Picks on other shorts: trained on train/ + k picked frames, scored on the rest (frozen)")
    for col in ("segment", "k", "picked by", "accuracy on the rest", "worst error", "picks n/j/t/both"):
        table.add_column(col, justify="left" if col in ("segment", "picked by") else "right")
    for seg in segs:
        base = Model(bb, [train], "none", "global", seed)
        probs, features = base.predict(seg.maps)
        acc, worst = score(seg.labels, probs)
        truth = composition(seg, np.arange(len(seg.labels)))
        table.add_row(f"{seg.name} ({len(seg.labels)})", "0", "-", f"{acc:.3f}", f"{worst:.1%}", f"all: {truth}")
        for k in ks:
            for strategy in ("uniform", "k-means (product)", "k-center (candidate)"):
                picked = pick(strategy, seg, k, probs, features, base.multi, seed)
                rest = np.setdiff1d(np.arange(len(seg.labels)), picked)
                model = Model(bb, with_picks([train], seg, picked), "none", "global", seed)
                acc, worst = score([seg.labels[i] for i in rest], model.predict(seg.maps[rest])[0])
                table.add_row("", str(k), strategy, f"{acc:.3f}", f"{worst:.1%}", composition(seg, picked))
                console.print(f"  {seg.name} k={k} {strategy}: {acc:.3f}, worst {worst:.1%}", style="dim")
        table.add_section()
        console.print(f"suggest part: {seg.name} done", style="dim")
    console.print(table)


def part_loso(bb, train: Part, segs: list[Part], args, seed: int, console: Console) -> None:
    table = Table(title="Leave one segment out: trained on train/ + the other three segments, scored on the fourth")
    for col in ("held out", "recipe", "k", "accuracy", "worst error", "fit s", "tuning"):
        table.add_column(col, justify="left" if col in ("held out", "recipe", "tuning") else "right")
    for s, seg in enumerate(segs):
        others = [train, *(p for j, p in enumerate(segs) if j != s)]
        for tune in args.tunes.split(","):
            for head in args.heads.split(","):
                recipe = f"{tune}/{head}"
                model = Model(bb, others, tune, head, seed)
                probs, features = model.predict(seg.maps)
                acc, worst = score(seg.labels, probs)
                table.add_row(
                    f"{seg.name} ({len(seg.labels)})", recipe, "0", f"{acc:.3f}", f"{worst:.1%}",
                    f"{model.seconds:.0f}", _tuning(model.tuning),
                )  # fmt: skip
                console.print(f"  {seg.name} {recipe} k=0: {acc:.3f}, worst {worst:.1%}, {model.seconds:.0f} s "
                              f"{_tuning(model.tuning)}", style="dim")  # fmt: skip
                for k in [int(k) for k in args.ks.split(",") if k and int(k) > 0]:
                    picked = pick("k-means (product)", seg, k, probs, features, model.multi, seed)
                    rest = np.setdiff1d(np.arange(len(seg.labels)), picked)
                    again = Model(bb, with_picks(others, seg, picked), tune, head, seed)
                    acc, worst = score([seg.labels[i] for i in rest], again.predict(seg.maps[rest])[0])
                    table.add_row(
                        "", recipe, str(k), f"{acc:.3f}", f"{worst:.1%}", f"{again.seconds:.0f}", _tuning(again.tuning)
                    )
                    console.print(f"  {seg.name} {recipe} k={k}: {acc:.3f}, worst {worst:.1%}, {again.seconds:.0f} s "
                                  f"{_tuning(again.tuning)}", style="dim")  # fmt: skip
                console.print(f"loso: {seg.name} {recipe} done", style="dim")
        table.add_section()
    console.print(table)


def _tuning(record: dict) -> str:
    if not record:
        return "-"
    return (
        f"{record['epochs']} ep (best {record['best_epoch']}), {record['frames']} frames, "
        f"{record['seconds']:.0f} s, fold-0 {record['heldout_accuracy']:.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="DATA with train/ and shift/")
    parser.add_argument("--backbone-weights", required=True)
    parser.add_argument("--input-size", default="320x180")
    parser.add_argument("--parts", default="suggest,loso")
    parser.add_argument("--tunes", default="none,conv3")
    parser.add_argument("--heads", default="global")
    parser.add_argument("--ks", default="20", help="labelled frames of the held-out segment (loso part)")
    parser.add_argument("--suggest-ks", default="10,20,40")
    parser.add_argument("--suggest-segments", default="", help="only these segments in the suggest part (S08,S10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=160)
    size = tuple(int(v) for v in args.input_size.split("x"))
    bb = load_backbone(size, args.backbone_weights)  # type: ignore[arg-type]
    started = time.perf_counter()
    train = load("train", args.data / "train", args.data / "train" / "mapping.csv", bb)
    segs = [load(name, frames, labels, bb) for name, frames, labels in shift_sets(args.data / "shift")]
    console.print(f"frozen maps of {len(train.labels) + sum(len(s.labels) for s in segs)} frames (cache): "
                  f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    parts = args.parts.split(",")
    if "loso" in parts:
        part_loso(bb, train, segs, args, args.seed, console)
    if "suggest" in parts:
        chosen = [s for s in segs if not args.suggest_segments or s.name in args.suggest_segments.split(",")]
        part_suggest(bb, train, chosen, [int(k) for k in args.suggest_ks.split(",")], args.seed, console)
    console.print(f"command: python {' '.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
