"""`screentime suggest`: the frames whose labels would teach the model most, most useful first.

A label is worth a user's minute when the model is unsure of the frame (a small margin between
its two likeliest classes) and the frame shows something no labelled frame shows (far from them
in the backbone's feature space). The unlabelled frames are grouped by their features (k-means,
one group per frame asked for) and each group offers its least certain frame, so the list spreads
over the kinds of picture in the video instead of spending twenty labels on one confusing scene;
a frame of the same shot as a picked or labelled frame (`training.shots`) is never offered.
Chosen by benchmarks/adapt.py over a greedy uncertainty-times-distance pick and over time strata
(benchmarks/RESULTS.md, "New footage"). Runs on the ONNX model alone: no TensorFlow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.progress import Progress

from stream import defaults
from stream.crop import Crop
from stream.defaults import CROP
from stream.errors import BadInputError
from stream.margin import uncertainty
from training.images import read_images, set_crop
from training.labels import LabelStore
from training.shots import same_shot_as, signature

if TYPE_CHECKING:  # onnxruntime loads at call time
    from stream.engine import Engine

log = logging.getLogger(__name__)

DEFAULT_N = defaults.SUGGEST_N
BATCH = 16


@dataclass(frozen=True)
class Suggestion:
    names: tuple[str, ...]  # most useful first
    margins: tuple[float, ...]  # the model's margin on each (0: a coin toss between two classes)
    candidates: int  # unlabelled frames considered
    labelled: int  # frames already labelled (they count as covered)
    space: str  # what "far apart" was measured in: "backbone features" or "thumbnails"


def choose(
    uncertain: np.ndarray,
    features: np.ndarray,
    signatures: np.ndarray,
    n: int,
    labelled: np.ndarray | None = None,
    seed: int = 0,
) -> list[int]:
    """Indices of up to `n` frames to label, most useful first.

    `uncertain` (N,) in [0, 1]; `features` (N, F), compared by cosine similarity; `signatures`
    (N, 16, 16) shot thumbnails; `labelled` (N,) bool marks frames already labelled. The open
    frames' features are cut into n groups (k-means, seeded: one seed, one list); each group
    gives its least certain frame, and groups come first that are big, uncertain on average and
    far from every labelled frame.
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
        open_[same_shot_as(signatures, i)] = False

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


def kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Plain k-means (k-means++ start, seeded) on unit vectors; returns (assignment, unit centres)."""
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        nxt = x[rng.choice(len(x), p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(len(x))]
        centres.append(nxt)
        d2 = np.minimum(d2, ((x - nxt) ** 2).sum(axis=1))
    c = np.stack(centres)
    assign = np.zeros(len(x), int)
    for step in range(iterations):
        new = (x @ c.T).argmax(axis=1)
        if step and (new == assign).all():
            break
        assign = new
        for j in range(k):
            members = x[assign == j]
            if len(members):
                mean = members.mean(axis=0)
                c[j] = mean / max(np.linalg.norm(mean), 1e-12)
    return assign, c


def suggest(
    directory: str | Path,
    model: str | Path,
    n: int = DEFAULT_N,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    crop: str | Crop = CROP,
) -> Suggestion:
    """Rank the unlabelled frames of an `extract` directory for labelling with `model`'s help."""
    from stream.engine import Engine, choose_model

    if n < 1:
        raise BadInputError("-n must be at least 1")
    engine = Engine(choose_model(Path(model), device), device)
    return rank(engine, LabelStore(Path(directory), len(engine.card.classes)), n, seed, progress, crop)


def rank(
    engine: Engine,
    store: LabelStore,
    n: int = DEFAULT_N,
    seed: int = 0,
    progress: bool = False,
    crop: str | Crop = CROP,
) -> Suggestion:
    """`suggest` over an engine and a store already open: the labeller ranks with its own model and
    frames instead of loading them twice. Labels are read once, so labelling meanwhile cannot skew it."""
    names, labels = store.order, store.labels
    paths = [store.paths[name] for name in names]
    cut = set_crop(paths[0].parent, paths, crop) if paths else None  # the set's black bars, as `watch` cuts them
    probs, features, signatures = [], [], []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("scoring frames", total=len(names))
        for start in range(0, len(names), BATCH):
            chunk = names[start : start + BATCH]
            images = read_images([store.paths[name] for name in chunk], cut)
            p, f = engine.predict_with_features(images)
            shots = np.stack([signature(image) for image in images])
            probs.append(p)
            signatures.append(shots)
            # A model exported before `features` was an output: spread by thumbnails instead.
            features.append(f if f is not None else shots.reshape(len(shots), -1))
            bar.advance(task, len(chunk))
    space = "backbone features" if engine.features_name else "thumbnails"
    if space == "thumbnails":
        log.warning("%s has no features output (exported by an older screentime): spreading by thumbnails", engine.path)
    probs_all = np.concatenate(probs)
    uncertain = uncertainty(probs_all, engine.card.multi_label)
    labelled = np.asarray([bool(labels[name]) for name in names])
    order = choose(uncertain, np.concatenate(features), np.concatenate(signatures), n, labelled, seed)
    return Suggestion(
        names=tuple(names[i] for i in order),
        margins=tuple(round(1.0 - float(uncertain[i]), 4) for i in order),
        candidates=int((~labelled).sum()),
        labelled=int(labelled.sum()),
        space=space,
    )
