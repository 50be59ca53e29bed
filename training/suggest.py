"""`screentime suggest`: the frames whose labels would teach the model most, most useful first.

A label is worth a user's minute when the model is unsure of the frame (a small margin between
its two likeliest classes) and the frame shows something no labelled frame shows (far from them
in the backbone's feature space). Among the most uncertain unlabelled frames, a greedy k-center
over the features picks each next frame as far as possible from every labelled and picked one,
so the list spreads over the kinds of picture the model is unsure of instead of spending twenty
labels on one confusing scene; a frame of the same shot as a picked or labelled frame
(`training.shots`) is never offered. It replaced a k-means grouping that lost to uniform picks on
the pillarboxed shorts (benchmarks/RESULTS.md, "Fine-tuning, spatial head, spread picks").
Runs on the ONNX model alone: no TensorFlow.
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


POOL_PER_PICK = 4  # the k-center runs over the 4n most uncertain open frames (at least a third of them)


def choose(
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
