# ruff: noqa: E402  (TensorFlow is imported quietly before the modules that need it)
"""Other shorts, leave one segment out: fine-tuning against frozen features, and `suggest`'s picks.

Part "suggest": trained on DATA/train, k frames of one segment of DATA/shift picked uniformly in
time, by the product's `suggest` (`training.suggest.choose`) or by a candidate (the rules in
CHOOSERS), retrained on both sets, scored on the rest of the segment. Frozen backbone, global head.

Part "picks": leave one segment out with k labels of the held-out segment. Trained on DATA/train
plus three segments (four sets), the held-out segment scored with no label of it (k = 0); then k
of its frames picked uniformly in time and by each rule in `--strategies` from that model's
uncertainty and features, the model retrained with them as a fifth set and scored on the rest of
the segment (the picked frames left out). Per seed (`--seeds`): the seed drives the heads'
initialisation and the rules' k-means. Frozen backbone, global head (today's default recipe).
Rows go to `--results` (JSON lines) as they finish; a rerun with the same file skips them, so
the grid can be split over processes (`--segments`) and resumed.

Part "why": where the mistakes of the model trained on DATA/train alone (`--seed`) and of the
leave-one-segment-out models (their k = 0 rows in `--results`) lie, confident or not, and what
each rule's picks in `--results` show.

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
runs block5_conv3 on them unchanged, once per set), at `--input-size`.

Usage: python benchmarks/loso.py --data ../shared/data/tom-and-jerry --backbone-weights W.weights.h5
       [--input-size 320x180] [--parts suggest,picks,why,loso] [--tunes none,conv3] [--heads global]
       [--ks 20] [--pick-ks 10,20,40] [--seeds 0,1,2] [--strategies suggest] [--results R.jsonl]
"""

from __future__ import annotations

import argparse
import json
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
from stream import defaults
from stream.model.margin import uncertainty
from training.images import path_crops, read_images
from training.labels import read_labels
from training.model import load_backbone
from training.shots import same_shot_as, signature
from training.split import Folds
from training.suggest import choose, kmeans, open_frames, unit_rows
from training.train import TrainConfig, fit_heads, fit_recipe, multi_hot
from training.tune import head_inputs, top

CLASSES = ("neither", "jerry", "tom")
CUT = "conv3"  # one cache serves the frozen and conv3 recipes: maps up to block5_conv2 (block5: block4_pool)


@dataclass(frozen=True)
class Part:
    name: str
    labels: list[tuple[int, ...]]
    times: np.ndarray
    maps: np.ndarray  # frozen maps (block4_pool | block5_conv2), float16
    signatures: np.ndarray
    pooled: np.ndarray  # the frozen recipe's global features (block5_conv3 with ImageNet weights, pooled)

    def take(self, idx: np.ndarray) -> Part:
        labels = [self.labels[i] for i in idx]
        return Part(self.name, labels, self.times[idx], self.maps[idx], self.signatures[idx], self.pooled[idx])


def load(name: str, frames: Path, labels: Path, bb, cut: str = CUT) -> Part:
    from training.tune import frozen_maps

    data = read_labels(labels, frames, len(CLASSES))
    crops = path_crops(data.paths, "auto")
    maps = frozen_maps(bb, data.paths, cut, crops=crops, progress=False)
    shots = np.stack([signature(im) for im in read_images(data.paths, crops)])
    pooled = head_inputs(top(bb, cut, maps.shape[-1]), maps, "global")  # frozen: the same for every fit
    return Part(name, list(data.labels), np.asarray(data.times_s, float), maps, shots, pooled)


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

    def __init__(
        self,
        bb,
        parts: list[Part],
        tune: str,
        head: str,
        seed: int,
        tune_epochs: int = defaults.TUNE_EPOCHS,
        tune_rate: float = defaults.TUNE_RATE,
    ) -> None:
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
        config.tune_epochs, config.tune_rate = tune_epochs, tune_rate
        self.head = head
        started = time.perf_counter()
        cut = "block5" if maps.shape[-1] == 512 else CUT  # block4_pool alone, or beside block5_conv2
        if tune not in ("none", cut):
            raise SystemExit(f"--tunes {tune} and block5 need maps cut at other layers: measure block5 on its own")
        if tune == "none":
            self.top = top(bb, cut, maps.shape[-1])  # block 5 (or its conv3) with the ImageNet weights
            x = np.concatenate([p.pooled for p in parts]) if head == "global" else head_inputs(self.top, maps, head)
            self.heads, _, _ = fit_heads(x, y, config, self.multi, [], folds)
            self.tuning: dict = {}
        else:
            fit = fit_recipe(bb, maps, [], y, self.multi, folds, config)
            self.top, self.heads, self.tuning = fit.top, fit.heads, fit.tuning
        self.seconds = time.perf_counter() - started

    def predict(self, part: Part) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and the global features (what `suggest` spreads over) of `part`'s frames."""
        frozen = not self.tuning
        pooled = part.pooled if frozen else head_inputs(self.top, part.maps, "global")
        x = pooled if frozen and self.head == "global" else head_inputs(self.top, part.maps, self.head)
        probs = np.mean([np.asarray(h.predict(x, verbose=0)) for h in self.heads], axis=0)
        return probs, pooled


POOL_PER_PICK = 4  # the k-center runs over the 4n most uncertain open frames at least


def choose_kcenter(
    uncertain: np.ndarray,
    features: np.ndarray,
    signatures: np.ndarray,
    n: int,
    labelled: np.ndarray | None = None,
    seed: int = 0,
    pool_fraction: float = 1 / 3,
) -> list[int]:
    """Indices of up to `n` frames to label, most useful first (a candidate, not the product).

    `uncertain` (N,) in [0, 1]; `features` (N, F), compared by cosine distance; `signatures`
    (N, 16, 16) shot thumbnails; `labelled` (N,) bool marks frames already labelled. Among the
    most uncertain open frames (`pool_fraction` of them, POOL_PER_PICK per frame asked for at
    least), a greedy k-center: each pick is the frame farthest from every labelled and picked
    frame, so the list covers the kinds of picture the model is unsure of instead of the one scene
    it is least sure of; the first pick is the least certain frame. A frame of the same shot as a
    picked or labelled frame (`training.shots`) is never offered. Ties go to the less certain
    frame (for the first pick: to the one farthest from the labelled frames), then to `seed`'s
    order (one seed, one list).
    """
    count = len(uncertain)
    labelled, unit, open_ = open_frames(features, signatures, labelled)
    candidates = np.flatnonzero(open_)
    if not len(candidates):
        return []
    tiebreak = np.random.default_rng(seed).permutation(count)
    by_doubt = candidates[np.lexsort((tiebreak[candidates], -uncertain[candidates]))]
    pool = np.zeros(count, bool)
    pool[by_doubt[: max(POOL_PER_PICK * n, int(np.ceil(pool_fraction * len(candidates))))]] = True
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


def choose_least_certain_of_groups(
    uncertain: np.ndarray,
    features: np.ndarray,
    signatures: np.ndarray,
    n: int,
    labelled: np.ndarray | None = None,
    seed: int = 0,
) -> list[int]:
    """`suggest` until issue 28: as the product's `choose`, but each group offers its *least
    certain* frame (n groups), and groups emptied by shot closures are refilled by the least
    certain frames left. Kept to measure against.

    `uncertain` (N,) in [0, 1]; `features` (N, F), compared by cosine similarity; `signatures`
    (N, 16, 16) shot thumbnails; `labelled` (N,) bool marks frames already labelled. The open
    frames' features are cut into n groups (k-means, seeded: one seed, one list); each group
    gives its least certain frame, and groups come first that are big, uncertain on average and
    far from every labelled frame.
    """
    labelled, unit, open_ = open_frames(features, signatures, labelled)
    candidates = np.flatnonzero(open_)
    if not len(candidates):
        return []
    k = min(n, len(candidates))
    assign, centres = kmeans(unit[candidates], k, seed)
    known = unit[labelled]
    gap = np.ones(k) if not len(known) else 1.0 - (centres @ known.T).max(axis=1)
    gap = gap / max(gap.max(), 1e-12)
    sizes = np.bincount(assign, minlength=k)
    mean_u = np.bincount(assign, weights=uncertain[candidates], minlength=k) / np.maximum(sizes, 1)
    priority = sizes * mean_u * gap
    picked: list[int] = []

    def pick(i: int) -> None:
        picked.append(int(i))
        open_[same_shot_as(signatures, int(i))] = False

    for c in np.argsort(-priority, kind="stable"):  # each group's least certain open frame
        members = candidates[assign == c]
        first = next((i for i in members[np.argsort(-uncertain[members], kind="stable")] if open_[i]), None)
        if first is not None:
            pick(first)
    for i in np.argsort(-uncertain, kind="stable"):  # groups emptied by shot closures: the least certain left
        if len(picked) >= n:
            break
        if open_[i]:
            pick(i)
    return picked[:n]


def choose_typical_quarter(
    uncertain: np.ndarray, features: np.ndarray, signatures: np.ndarray, n: int, seed: int = 0
) -> list[int]:
    """A candidate between the two: n k-means groups over every frame, in the product's order;
    each offers the least certain of its quarter nearest its centre; the least certain frames
    left fill in for groups emptied by shot closures."""
    unit = unit_rows(features)
    k = min(n, len(uncertain))
    assign, centres = kmeans(unit, k, seed)
    sizes = np.bincount(assign, minlength=k)
    mean_u = np.bincount(assign, weights=uncertain, minlength=k) / np.maximum(sizes, 1)
    open_ = np.ones(len(uncertain), bool)
    picked: list[int] = []
    for c in np.argsort(-(sizes * mean_u), kind="stable"):
        members = np.flatnonzero(assign == c)
        members = members[open_[members]]
        if not len(members):
            continue
        near = members[np.argsort(1.0 - unit[members] @ centres[c], kind="stable")[: int(np.ceil(len(members) / 4))]]
        best = int(near[np.argmax(uncertain[near])])
        picked.append(best)
        open_[same_shot_as(signatures, best)] = False
    for i in np.argsort(-uncertain, kind="stable"):
        if len(picked) >= n:
            break
        if open_[i]:
            picked.append(int(i))
            open_[same_shot_as(signatures, int(i))] = False
    return picked[:n]


# The rules `--strategies` names (besides uniform): the product and the candidates measured against it.
CHOOSERS = {
    "suggest": lambda u, f, s, n, seed: choose(u, f, s, n, seed=seed),
    "groups-1n": lambda u, f, s, n, seed: choose(u, f, s, n, seed=seed, groups_per_pick=1),
    "groups-2n": lambda u, f, s, n, seed: choose(u, f, s, n, seed=seed, groups_per_pick=2),
    "kmeans-least-certain": lambda u, f, s, n, seed: choose_least_certain_of_groups(u, f, s, n, seed=seed),
    "kcenter-third": lambda u, f, s, n, seed: choose_kcenter(u, f, s, n, seed=seed),
    "kcenter-half": lambda u, f, s, n, seed: choose_kcenter(u, f, s, n, seed=seed, pool_fraction=0.5),
    "typical-quarter": lambda u, f, s, n, seed: choose_typical_quarter(u, f, s, n, seed=seed),
}


def pick(strategy: str, seg: Part, k: int, probs: np.ndarray, features: np.ndarray, multi: bool, seed: int):
    """Sorted indices of the k frames of `seg` that `strategy` picks ("uniform": the middle of k
    equal runs of time; else a CHOOSERS rule on the model's uncertainty and features)."""
    if strategy == "uniform":
        return ((np.arange(k) + 0.5) * len(seg.labels) / k).astype(int)
    return np.sort(CHOOSERS[strategy](uncertainty(probs, multi), features, seg.signatures, k, seed))


def with_picks(parts: list[Part], seg: Part, picked: np.ndarray) -> list[Part]:
    new = seg.take(picked)
    return [*parts, Part("new", new.labels, new.times, new.maps, new.signatures, new.pooled)]


def composition(seg: Part, picked: np.ndarray) -> str:
    """What the picks show: neither / jerry / tom / both, and how uncertain they were."""
    labs = [seg.labels[i] for i in picked]
    both = sum(len(lab) > 1 for lab in labs)
    return "/".join(str(sum(lab == (c,) for lab in labs)) for c in range(3)) + f"/{both}"


def part_suggest(
    bb, train: Part, segs: list[Part], ks: list[int], strategies: list[str], seed: int, console: Console
) -> None:
    table = Table(title="Picks on other shorts: trained on train/ + k picked frames, scored on the rest (frozen)")
    for col in ("segment", "k", "picked by", "accuracy on the rest", "worst error", "picks n/j/t/both"):
        table.add_column(col, justify="left" if col in ("segment", "picked by") else "right")
    for seg in segs:
        base = Model(bb, [train], "none", "global", seed)
        probs, features = base.predict(seg)
        acc, worst = score(seg.labels, probs)
        truth = composition(seg, np.arange(len(seg.labels)))
        table.add_row(f"{seg.name} ({len(seg.labels)})", "0", "-", f"{acc:.3f}", f"{worst:.1%}", f"all: {truth}")
        for k in ks:
            for strategy in ["uniform", *strategies]:
                picked = pick(strategy, seg, k, probs, features, base.multi, seed)
                rest = np.setdiff1d(np.arange(len(seg.labels)), picked)
                model = Model(bb, with_picks([train], seg, picked), "none", "global", seed)
                acc, worst = score([seg.labels[i] for i in rest], model.predict(seg.take(rest))[0])
                table.add_row("", str(k), strategy, f"{acc:.3f}", f"{worst:.1%}", composition(seg, picked))
                console.print(f"  {seg.name} k={k} {strategy}: {acc:.3f}, worst {worst:.1%}", style="dim")
        table.add_section()
        console.print(f"suggest part: {seg.name} done", style="dim")
    console.print(table)


def part_picks(bb, train: Part, segs: list[Part], args, console: Console) -> None:
    """Leave one segment out, k labels of it picked uniformly or by each rule, per seed; rows to
    `args.results` as they finish, rows already there skipped."""
    ks = [int(k) for k in args.pick_ks.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    strategies = ["uniform", *args.strategies.split(",")]
    wanted = [s for s in segs if not args.segments or s.name in args.segments.split(",")]
    results = Path(args.results) if args.results else None
    rows = read_rows(results)
    for seed in [] if args.table_only else seeds:
        for seg in wanted:
            others = [train, *(p for p in segs if p is not seg)]
            todo = [(k, st) for k in ks for st in strategies if (seg.name, k, st, seed) not in rows]
            base_key = (seg.name, 0, "-", seed)
            if not todo and base_key in rows:
                continue
            if base_key in rows and "probs" in rows[base_key]:  # the k = 0 model's output, kept
                probs = np.asarray(rows[base_key]["probs"], np.float32)
                multi = bool(rows[base_key]["multi"])
            else:
                base = Model(bb, others, "none", "global", seed)
                probs, multi = np.round(base.predict(seg)[0], 5), base.multi  # as kept: a resumed run picks alike
                acc, worst = score(seg.labels, probs)
                row = dict(seg=seg.name, k=0, strategy="-", seed=seed, acc=acc, worst=worst, fit_s=base.seconds)
                add_row(results, rows, {**row, "multi": multi, "probs": probs.tolist()})
                console.print(f"  {seg.name} seed {seed} k=0: {acc:.3f}, worst {worst:.1%}", style="dim")
            for k, strategy in todo:
                picked = pick(strategy, seg, k, probs, seg.pooled, multi, seed)
                rest = np.setdiff1d(np.arange(len(seg.labels)), picked)
                again = Model(bb, with_picks(others, seg, picked), "none", "global", seed)
                acc, worst = score([seg.labels[i] for i in rest], again.predict(seg.take(rest))[0])
                row = dict(seg=seg.name, k=k, strategy=strategy, seed=seed, acc=acc, worst=worst, fit_s=again.seconds)
                add_row(results, rows, {**row, "picks": picked.tolist(), "make_up": composition(seg, picked)})
                console.print(f"  {seg.name} seed {seed} k={k} {strategy}: {acc:.3f}, worst {worst:.1%}, "
                              f"picks {composition(seg, picked)}", style="dim")  # fmt: skip
    console.print(picks_table(rows, segs, ks, seeds, strategies))


def read_rows(path: Path | None) -> dict[tuple, dict]:
    rows: dict[tuple, dict] = {}
    if path and path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[(row["seg"], row["k"], row["strategy"], row["seed"])] = row
    return rows


def add_row(path: Path | None, rows: dict[tuple, dict], row: dict) -> None:
    rows[(row["seg"], row["k"], row["strategy"], row["seed"])] = row
    if path:
        with path.open("a") as out:
            out.write(json.dumps(row) + "\n")


def picks_table(rows: dict[tuple, dict], segs: list[Part], ks: list[int], seeds: list[int], strategies: list[str]):
    """Accuracy on the rest of the held-out segment: mean over the seeds present (each seed's
    value listed), worst screen-time error likewise; per strategy, the seeds on which it beat uniform."""
    table = Table(
        title="Leave one segment out, k labels of the held-out segment: accuracy on the rest of it (held out)"
    )
    columns = ("held out", "k", "picked by", "seeds", "accuracy mean", "per seed", "worst error mean", "beats uniform")
    for col in columns:
        table.add_column(col, justify="left" if col in ("held out", "picked by", "per seed") else "right")
    for seg in segs:
        first = True
        for k in [0, *ks]:
            for strategy in ["-"] if k == 0 else strategies:
                got = [rows[(seg.name, k, strategy, s)] for s in seeds if (seg.name, k, strategy, s) in rows]
                if not got:
                    continue
                wins = "-"
                if strategy not in ("-", "uniform"):
                    pairs = [
                        (r["acc"], rows[(seg.name, k, "uniform", r["seed"])]["acc"])
                        for r in got
                        if (seg.name, k, "uniform", r["seed"]) in rows
                    ]
                    wins = f"{sum(a > u for a, u in pairs)}/{len(pairs)}"
                table.add_row(
                    f"{seg.name} ({len(seg.labels)})" if first else "",
                    str(k),
                    strategy,
                    ",".join(str(r["seed"]) for r in got),
                    f"{np.mean([r['acc'] for r in got]):.3f}",
                    " ".join(f"{r['acc']:.3f}" for r in got),
                    f"{np.mean([r['worst'] for r in got]):.1%}",
                    wins,
                )
                first = False
        table.add_section()
    return table


def mistakes(seg: Part, probs: np.ndarray, multi: bool) -> tuple[int, int, str]:
    """(mistakes, of them in the more certain half of the frames, the commonest mistake)."""
    doubt = uncertainty(probs, multi)
    pred = probs.argmax(1)
    wrong = np.asarray([p not in lab for p, lab in zip(pred, seg.labels, strict=True)])
    sure = doubt < np.median(doubt)
    kinds: dict[str, int] = {}
    for i in np.flatnonzero(wrong):
        truth = "both" if len(seg.labels[i]) > 1 else CLASSES[seg.labels[i][0]]
        key = f"{truth} called {CLASSES[pred[i]]}"
        kinds[key] = kinds.get(key, 0) + 1
    common = max(kinds, key=lambda key: kinds[key]) if kinds else "-"
    return int(wrong.sum()), int((wrong & sure).sum()), f"{common} ({kinds.get(common, 0)})"


def part_why(bb, train: Part, segs: list[Part], args, console: Console) -> None:
    """Where each model's mistakes lie (confident or not), and what each rule's picks are: the
    make-up (neither/Jerry/Tom/both), their mean uncertainty against the segment's, how many of
    them the model had wrong, and pairs of picks that are one shot."""
    table = Table(title="Mistakes on the held-out segment: how many lie in the more certain half of its frames")
    for col in ("model", "segment", "accuracy", "mistakes", "in the more certain half", "commonest"):
        table.add_column(col, justify="left" if col in ("model", "segment", "commonest") else "right")
    only = Model(bb, [train], "none", "global", args.seed)
    rows = read_rows(Path(args.results) if args.results else None)
    for seg in segs:
        probs = only.predict(seg)[0]
        wrong, sure, common = mistakes(seg, probs, only.multi)
        acc = score(seg.labels, probs)[0]
        table.add_row("train/ only", seg.name, f"{acc:.3f}", str(wrong), f"{sure} ({sure / max(wrong, 1):.0%})", common)
    for seg in segs:
        base = rows.get((seg.name, 0, "-", args.seed))
        if base:
            probs = np.asarray(base["probs"], np.float32)
            wrong, sure, common = mistakes(seg, probs, bool(base["multi"]))
            label = "train/ + other three"
            table.add_row(
                label, seg.name, f"{base['acc']:.3f}", str(wrong), f"{sure} ({sure / max(wrong, 1):.0%})", common
            )
    console.print(table)
    picks = Table(title="The picks (leave one segment out): what they show and how unsure the model was of them")
    for col in ("segment", "k", "picked by", "n/j/t/both", "mean uncertainty", "model wrong on", "same-shot pairs"):
        picks.add_column(col, justify="left" if col in ("segment", "picked by") else "right")
    for seg in segs:
        base = rows.get((seg.name, 0, "-", args.seed))
        if not base:
            continue
        probs = np.asarray(base["probs"], np.float32)
        doubt = uncertainty(probs, bool(base["multi"]))
        pred = probs.argmax(1)
        everything = composition(seg, np.arange(len(seg.labels)))
        picks.add_row(seg.name, "all", "-", everything, f"{doubt.mean():.2f}", "", "")
        for (name, k, strategy, seed), row in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2])):
            if name != seg.name or seed != args.seed or k == 0:
                continue
            chosen = np.asarray(row["picks"])
            wrong = sum(pred[i] not in seg.labels[i] for i in chosen)
            pairs = sum(
                bool(same_shot_as(seg.signatures, int(a))[b]) for j, a in enumerate(chosen) for b in chosen[j + 1 :]
            )
            picks.add_row(
                "", str(k), strategy, composition(seg, chosen), f"{doubt[chosen].mean():.2f}", str(wrong), str(pairs)
            )
        picks.add_section()
    console.print(picks)


def part_loso(bb, train: Part, segs: list[Part], args, seed: int, console: Console) -> None:
    table = Table(title="Leave one segment out: trained on train/ + the other three segments, scored on the fourth")
    for col in ("held out", "recipe", "k", "accuracy", "worst error", "fit s", "tuning"):
        table.add_column(col, justify="left" if col in ("held out", "recipe", "tuning") else "right")
    for s, seg in enumerate(segs):
        if args.segments and seg.name not in args.segments.split(","):
            continue
        others = [train, *(p for j, p in enumerate(segs) if j != s)]
        for tune in args.tunes.split(","):
            for head in args.heads.split(","):
                recipe = f"{tune}/{head}"
                model = Model(bb, others, tune, head, seed, args.tune_epochs, args.tune_rate)
                probs, features = model.predict(seg)
                acc, worst = score(seg.labels, probs)
                table.add_row(
                    f"{seg.name} ({len(seg.labels)})", recipe, "0", f"{acc:.3f}", f"{worst:.1%}",
                    f"{model.seconds:.0f}", _tuning(model.tuning),
                )  # fmt: skip
                console.print(f"  {seg.name} {recipe} k=0: {acc:.3f}, worst {worst:.1%}, {model.seconds:.0f} s "
                              f"{_tuning(model.tuning)}", style="dim")  # fmt: skip
                for k in [int(k) for k in args.ks.split(",") if k and int(k) > 0]:
                    picked = pick("suggest", seg, k, probs, features, model.multi, seed)
                    rest = np.setdiff1d(np.arange(len(seg.labels)), picked)
                    picks = with_picks(others, seg, picked)
                    again = Model(bb, picks, tune, head, seed, args.tune_epochs, args.tune_rate)
                    acc, worst = score([seg.labels[i] for i in rest], again.predict(seg.take(rest))[0])
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
    parser.add_argument("--parts", default="suggest,picks,loso")
    parser.add_argument("--tunes", default="none,conv3")
    parser.add_argument("--heads", default="global")
    parser.add_argument(
        "--cut",
        choices=("auto", "conv3", "block5"),
        default="auto",
        help="the frozen maps cached: conv3 = up to block5_conv2 (the frozen and conv3 recipes), block5 = "
        "block4_pool (the frozen and block5 recipes); auto: block5 when the loso part tunes it",
    )
    parser.add_argument("--tune-epochs", type=int, default=defaults.TUNE_EPOCHS, help="loso part: as train's")
    parser.add_argument("--tune-rate", type=float, default=defaults.TUNE_RATE, help="loso part: as train's")
    parser.add_argument("--ks", default="20", help="labelled frames of the held-out segment (loso part)")
    parser.add_argument("--suggest-ks", default="10,20,40")
    parser.add_argument("--suggest-segments", default="", help="only these segments in the suggest part (S08,S10)")
    parser.add_argument("--seed", type=int, default=0, help="the suggest and loso parts' seed")
    parser.add_argument("--pick-ks", default="10,20,40", help="labelled frames of the held-out segment (picks part)")
    parser.add_argument("--seeds", default="0,1,2", help="the picks part's seeds")
    parser.add_argument(
        "--strategies", default="suggest", help=f"rules measured against uniform picks: {','.join(CHOOSERS)}"
    )
    parser.add_argument("--segments", default="", help="only these held-out segments (picks and loso parts)")
    parser.add_argument(
        "--table-only", action="store_true", help="picks part: print the table of --results, fit nothing"
    )
    parser.add_argument("--results", default="", help="the picks part's rows, JSON lines (a rerun skips them)")
    args = parser.parse_args()
    console = Console(width=160)
    size = tuple(int(v) for v in args.input_size.split("x"))
    bb = load_backbone(size, args.backbone_weights)  # type: ignore[arg-type]
    started = time.perf_counter()
    tunes_block5 = "block5" in args.tunes.split(",") and "loso" in args.parts.split(",")
    cut = args.cut if args.cut != "auto" else "block5" if tunes_block5 else CUT
    train = load("train", args.data / "train", args.data / "train" / "mapping.csv", bb, cut)
    segs = [load(name, frames, labels, bb, cut) for name, frames, labels in shift_sets(args.data / "shift")]
    console.print(f"frozen maps of {len(train.labels) + sum(len(s.labels) for s in segs)} frames (cache): "
                  f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    parts = args.parts.split(",")
    if "loso" in parts:
        part_loso(bb, train, segs, args, args.seed, console)
    if "picks" in parts:
        part_picks(bb, train, segs, args, console)
    if "why" in parts:
        part_why(bb, train, segs, args, console)
    if "suggest" in parts:
        chosen = [s for s in segs if not args.suggest_segments or s.name in args.suggest_segments.split(",")]
        ks = [int(k) for k in args.suggest_ks.split(",")]
        part_suggest(bb, train, chosen, ks, args.strategies.split(","), args.seed, console)
    console.print(f"command: python {' '.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
