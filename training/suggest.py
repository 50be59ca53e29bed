"""`screentime suggest`: the frames whose labels would teach the model most, most useful first.

A label is worth a user's minute when its frame stands for many frames the model has not been
taught: the list covers the video, and the model's doubt says where to start. The unlabelled
frames are grouped by their backbone features (k-means, one group per frame asked for, seeded);
groups come first that are big, uncertain on average (1 - the margin between the two likeliest
classes) and far from every labelled frame, and each group offers its most *typical* frame
(nearest the group's centre), never a frame of the same shot as a picked or labelled frame
(`training.shots`). Runs on the ONNX model alone: no TensorFlow.

Why typical frames and not each group's least certain one (this module until issue 28), nor a
k-center among the most uncertain frames: measured on the other shorts (benchmarks/loso.py,
benchmarks/RESULTS.md "`suggest`: spread over typical frames"), the costly mistakes of a model
taught on other footage are *confident* ones. Trained on the training episode alone, 44% of its
mistakes on the pillarboxed S08 and 40% on the pillarboxed S10 lie in the more certain half of the
frames (S10: 83 of its 136 empty rooms called Tom; S08: 26 empty rooms and 22 Jerry frames called
Tom), against 31% on S01 and 22% on S17. Picks of the least certain frames (mean uncertainty
0.77-0.89, against 0.61-0.69 for the segment) never reach those frames; picks uniform in time
sample them in proportion, and that is where the old rule lost. It was not the bars (cut before
the features and the shot thumbnails are taken) nor picks bunched in a few shots (no two of the
old rule's picks are one shot). Leave one segment out at k = 20 (two seeds), typical picks beat
uniform ones on S01, S08 and S17 and tie on S10; the old rule lost on S01 and S10.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.progress import Progress

from stream import defaults
from stream.defaults import CROP
from stream.errors import BadInputError
from stream.frames.crop import Crop
from stream.model.margin import uncertainty
from training.images import read_images, set_crop
from training.labels import LabelStore
from training.shots import same_shot_as, signature

if TYPE_CHECKING:  # onnxruntime loads at call time
    from stream.model.engine import Engine

log = logging.getLogger(__name__)

DEFAULT_N = defaults.SUGGEST_N
BATCH = 16
GROUPS_PER_PICK = 1  # k-means groups per frame asked for


@dataclass(frozen=True)
class Suggestion:
    names: tuple[str, ...]  # most useful first
    margins: tuple[float, ...]  # the model's margin on each (0: a coin toss between two classes)
    candidates: int  # unlabelled frames considered
    labelled: int  # frames already labelled (they count as covered)
    space: str  # what "far apart" was measured in: "backbone features" or "thumbnails"


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (cosine similarity is then a dot product)."""
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def open_frames(
    features: np.ndarray, signatures: np.ndarray, labelled: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labelled as a mask, unit features, open mask): the frames a pick may still take, neither
    labelled nor of a labelled frame's shot."""
    labelled = np.zeros(len(features), bool) if labelled is None else np.asarray(labelled, bool)
    open_ = ~labelled
    for i in np.flatnonzero(labelled):
        open_[same_shot_as(signatures, int(i))] = False
    return labelled, unit_rows(features), open_


def choose(
    uncertain: np.ndarray,
    features: np.ndarray,
    signatures: np.ndarray,
    n: int,
    labelled: np.ndarray | None = None,
    seed: int = 0,
    groups_per_pick: int = GROUPS_PER_PICK,
) -> list[int]:
    """Indices of up to `n` frames to label, most useful first.

    `uncertain` (N,) in [0, 1]; `features` (N, F), compared by cosine similarity; `signatures`
    (N, 16, 16) shot thumbnails; `labelled` (N,) bool marks frames already labelled. The open
    frames' features are cut into GROUPS_PER_PICK * n groups (k-means, seeded: one seed, one
    list); groups come first that are big, uncertain on average and far from every labelled
    frame, and each of the first n gives its most typical open frame (nearest its centre; ties to
    the less certain). A frame of the same shot as a picked or labelled frame is never offered;
    when shots close every frame of a group, later rounds take the next typical frame of the
    groups in the same order.
    """
    labelled, unit, open_ = open_frames(features, signatures, labelled)
    candidates = np.flatnonzero(open_)
    if not len(candidates) or n < 1:
        return []
    k = min(groups_per_pick * n, len(candidates))
    assign, centres = kmeans(unit[candidates], k, seed)
    known = unit[labelled]
    gap = np.ones(k) if not len(known) else 1.0 - (centres @ known.T).max(axis=1)
    gap = gap / max(gap.max(), 1e-12)
    sizes = np.bincount(assign, minlength=k)
    mean_u = np.bincount(assign, weights=uncertain[candidates], minlength=k) / np.maximum(sizes, 1)
    order = np.argsort(-(sizes * mean_u * gap), kind="stable")
    # Each group's members, most typical first (nearest the centre; ties: the less certain).
    typical = []
    for c in order:
        members = candidates[assign == c]
        near = np.round(unit[members] @ centres[c], 6)
        typical.append(members[np.lexsort((-uncertain[members], -near))])
    picked: list[int] = []
    while len(picked) < n:  # a round: each group in order offers its most typical open frame
        before = len(picked)
        for members in typical:
            first = next((i for i in members if open_[i]), None)
            if first is None:
                continue
            picked.append(int(first))
            open_[same_shot_as(signatures, int(first))] = False
            if len(picked) >= n:
                break
        if len(picked) == before:
            break
    return picked


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
    from stream.model.engine import Engine, choose_model

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
