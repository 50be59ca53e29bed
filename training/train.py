"""`screentime train`: the seed's recipe made right.

Frozen ImageNet VGG16 with the preprocessing its weights expect, a dense head with dropout,
balanced class weights, validation on time blocks, the checkpoint with the best (class-weighted)
validation loss, early stopping, and a metrics file beside the model. Several labelled sets (an
old episode and a few dozen frames of a new one) train one model; each set is split by its own time.

It runs past 300 lines because the recipe (folds, heads, checkpoints, metrics) is read as one.
"""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
from rich.progress import Progress

from stream import defaults
from stream.defaults import CROP
from stream.errors import BadInputError, LabelError
from stream.frames.crop import Crop
from stream.model.card_metrics import CardMetrics
from stream.outputs.atomic import atomic_write_text, check_writable
from stream.version import __version__
from training.extract import LABELS_CSV
from training.features import backbone_features
from training.images import set_crop
from training.labels import LabelledFrames, read_labels
from training.metrics import heldout_mistakes, score, verdicts
from training.model import Backbone, assemble, build_head, build_spatial_head, load_backbone
from training.split import GAP_S, Folds
from training.tune import frozen_maps

log = logging.getLogger(__name__)

DEFAULT_CLASSES = ("neither", "jerry", "tom")


@dataclass
class TrainConfig:
    frames: Path | Sequence[Path]  # one directory of labelled frames, or several (one per video)
    labels: Path | Sequence[Path | None] | None  # one CSV per directory; None: each directory's labels.csv
    output: Path
    classes: tuple[str, ...] = DEFAULT_CLASSES
    backbone_weights: str | None = None
    epochs: int = 60
    seed: int = 0
    input_size: tuple[int, int] = (448, 252)  # 16:9 at twice VGG's usual width: small characters survive
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 12
    folds: int = 5
    ensemble: int = 5  # heads averaged in the exported model (trained with different seeds)
    label_smoothing: float = 0.1
    augment: tuple[str, ...] = ("flip",)  # extra views of training frames (training.features.VIEWS)
    progress: bool = True
    background: int | None = 0
    crop: str | Crop = CROP  # black bars: each set's own, found (auto), none, or one fixed area
    tune: str = defaults.TUNE  # VGG16 layers that learn the labelled sets (training.tune)
    head: str = defaults.HEAD  # global: pooled features; spatial: presence per map position
    tune_epochs: int = defaults.TUNE_EPOCHS  # epochs with the tuned layers learning (after the head settles)
    tune_rate: float = defaults.TUNE_RATE  # their learning rate

    def validate(self) -> None:
        if len(self.classes) < 2:
            raise BadInputError("need at least two classes")
        if len(set(self.classes)) != len(self.classes):
            raise BadInputError(f"class names repeat: {','.join(self.classes)}")
        if self.output.suffix != ".keras":
            raise BadInputError(f"{self.output}: the model file must end in .keras")
        if self.epochs < 1:
            raise BadInputError("--epochs must be at least 1")
        if self.tune not in defaults.TUNES:
            raise BadInputError(f"--tune {self.tune}: choose one of {', '.join(defaults.TUNES)}")
        if self.head not in defaults.HEADS:
            raise BadInputError(f"--head {self.head}: choose one of {', '.join(defaults.HEADS)}")
        if self.tune_epochs < 1:
            raise BadInputError("--tune-epochs must be at least 1")
        if not 0 < self.tune_rate <= 0.1:
            raise BadInputError(f"--tune-rate {self.tune_rate:g}: must be above 0 and at most 0.1")
        self.label_sets()
        try:
            check_writable(self.output)
        except OSError as exc:
            raise BadInputError(f"{self.output}: cannot write ({exc})") from None

    def label_sets(self) -> list[tuple[Path, Path]]:
        """(frames directory, label CSV) per set; a set without a CSV uses its `labels.csv`."""
        frames = [Path(self.frames)] if isinstance(self.frames, str | Path) else [Path(f) for f in self.frames]
        labels = self.labels
        labels = [None] * len(frames) if labels is None else [labels] if isinstance(labels, str | Path) else labels
        if not frames:
            raise BadInputError("no --frames given")
        if len(labels) != len(frames):
            raise BadInputError(
                f"{len(frames)} --frames but {len(labels)} --labels: give one --labels per --frames, "
                f"in the same order, or none (each directory's {LABELS_CSV})"
            )
        sets = [(f, Path(lab) if lab else f / LABELS_CSV) for f, lab in zip(frames, labels, strict=True)]
        seen: set[tuple[Path, Path]] = set()
        for f, lab in sets:
            key = (f.resolve(), lab.resolve())
            if key in seen:
                raise BadInputError(f"{f} with {lab} is given twice")
            seen.add(key)
        return sets


@dataclass
class TrainResult:
    model_path: Path
    metrics_path: Path
    metrics: dict = field(default_factory=dict)  # all of MODEL.metrics.json
    card_metrics: CardMetrics = field(default_factory=CardMetrics)  # the part the model card carries


def metrics_path_for(model_path: Path) -> Path:
    """`model.keras` -> `model.metrics.json`."""
    return model_path.with_name(model_path.name.removesuffix(".keras") + ".metrics.json")


def multi_hot(labels: list[tuple[int, ...]], n_classes: int, background: int | None) -> np.ndarray:
    """(N, classes) 0/1 targets; the background is on only where no character is."""
    y = np.zeros((len(labels), n_classes), np.float32)
    for i, lab in enumerate(labels):
        ids = [c for c in lab if c != background] or list(lab)
        y[i, ids] = 1.0
    return y


def class_weights(labels: list[int], n_classes: int) -> dict[int, float]:
    """Balanced weights n / (k * count): each class weighs the same in the loss in total."""
    counts = Counter(labels)
    present = [c for c in range(n_classes) if counts[c]]
    return {c: len(labels) / (len(present) * counts[c]) for c in present}


CROSS_VALIDATION = (
    "time-block cross-validation, {folds} folds cut within each set: every frame is scored by the one "
    "head that neither trained on it nor chose its checkpoint on it (that head chose on the next fold; "
    "frames within {gap:g} s of either fold kept out of its training). One head per frame, so the "
    "exported ensemble of {heads} is likely a little better than this figure."
)


def train(config: TrainConfig) -> TrainResult:
    config.validate()
    started = time.monotonic()
    keras.utils.set_random_seed(config.seed)
    label_sets = config.label_sets()
    sets = [read_labels(lab, frames, len(config.classes)) for frames, lab in label_sets]
    data = LabelledFrames.concat(sets)
    # Any frame labelled with several classes (`1;2`) makes a multi-label model: one sigmoid per
    # class, and a frame counts for every character on it. Seed files stay single-label.
    # A spatial head says per class whether it is anywhere on the frame: multi-label by nature.
    multi = any(len(lab) > 1 for lab in data.labels) or config.head == "spatial"
    y = multi_hot(data.labels, len(config.classes), config.background) if multi else np.asarray(data.single)
    if len(y) < 2 * config.folds:
        raise LabelError(f"{len(y)} labelled frames are too few for {config.folds}-fold time-block validation")
    folds = Folds.of_sets([s.times_s for s in sets], config.folds)

    backbone = load_backbone(config.input_size, config.backbone_weights)
    t0 = time.monotonic()
    set_crops = [set_crop(s.directory, s.paths, config.crop) for s in sets]  # each set's own bars
    crops = [c for s, c in zip(sets, set_crops, strict=True) for _ in s.paths]
    tuning: dict = {}
    if config.tune == "none" and config.head == "global":  # frozen backbone: pooled features suffice
        features = backbone_features(backbone, data.paths, progress=config.progress, crops=crops)
        augmented = [
            backbone_features(backbone, data.paths, progress=config.progress, view=v, crops=crops)
            for v in config.augment
        ]
        feature_s = time.monotonic() - t0
        t0 = time.monotonic()
        heads, histories, oof = fit_heads(features, y, config, multi, augmented, folds)
    else:  # the frozen part's maps, cached per frame and view; the top and the heads learn on them
        maps = frozen_maps(backbone, data.paths, config.tune, crops=crops, progress=config.progress)
        views = [
            frozen_maps(backbone, data.paths, config.tune, view=v, crops=crops, progress=config.progress)
            for v in config.augment
        ]
        feature_s = time.monotonic() - t0
        t0 = time.monotonic()
        fit = fit_recipe(backbone, maps, views, y, multi, folds, config)
        heads, histories, oof, backbone = fit.heads, fit.histories, fit.oof, fit.backbone
        if fit.tuning:
            tuning = {**fit.tuning, "sets": [str(f.resolve()) for f, _ in label_sets]}
    heads_s = time.monotonic() - t0
    scored = np.flatnonzero(~np.isnan(oof[:, 0]))
    truth, predicted = verdicts([data.labels[i] for i in scored], oof[scored], config.background, multi)
    cross_validation = score(truth, predicted, config.classes, multi)
    runs = [np.flatnonzero(folds.group[scored] == g) for g in range(len(sets))]  # each set's scored frames
    per_set = []
    for (frames_dir, labels_csv), s, mine, cut in zip(label_sets, sets, runs, set_crops, strict=True):
        accuracy = score([truth[j] for j in mine], [predicted[j] for j in mine], config.classes, multi)["accuracy"]
        per_set.append(
            {
                "frames_dir": str(frames_dir.resolve()),
                "labels": str(labels_csv.resolve()),
                "frames": len(s.paths),
                "cross_validation_accuracy": accuracy,
                "cross_validation_frames": len(mine),
                "crop": cut.spec if cut else None,
            }
        )
    best = [_best_epoch(h) for h in histories]

    model = assemble(backbone, heads, config.head)
    model.save(str(config.output))
    card = replace(
        heldout_mistakes(truth, predicted, runs, config.classes, config.background),
        cross_validation=cross_validation,
        cross_validation_method=CROSS_VALIDATION.format(folds=config.folds, gap=GAP_S, heads=config.ensemble)
        + (TUNED_CV if tuning else ""),
        frame_spacing_s=round(_spacing(sets), 3),
        class_counts={config.classes[c]: n for c, n in sorted(Counter(c for lab in data.labels for c in lab).items())},
        seed=config.seed,
        # Whether the frames the model learnt from had their black bars cut (the stream does the same).
        crop={
            "mode": config.crop.spec if isinstance(config.crop, Crop) else config.crop,
            "cropped_sets": sum(c is not None for c in set_crops),
            "sets": len(sets),
        },
    )
    metrics = {
        "classes": list(config.classes),
        "background": config.background,
        **card.to_dict(),  # what the model card carries (stream.model.card_metrics), at the top level
        "sets": per_set,
        "train_frames": len(y),
        "cross_validation_frames": len(scored),
        "dropped_frames": data.dropped,
        "unlabelled_frames": data.unlabelled,
        "multi_label": multi,
        "ensemble": config.ensemble,
        "epochs_run": [len(h["val_loss"]) for h in histories],
        "best_epoch": [b + 1 for b in best],
        "checkpoint_on": "validation loss" if multi else "class-weighted validation loss",
        "best_checkpoint_loss": float(np.mean([h["val_loss"][b] for h, b in zip(histories, best, strict=True)])),
        "label_smoothing": config.label_smoothing,
        "augment": list(config.augment),
        "head": config.head,
        "tune": config.tune,
        "tuning": tuning,  # which layers learnt, on which sets, for how long (the model card carries it)
        "backbone": backbone.provenance,
        "input_size": list(config.input_size),
        "frames_dir": per_set[0]["frames_dir"],
        "screentime_version": __version__,
        "timing_s": {
            "features": round(feature_s, 2),
            "heads": round(heads_s, 2),
            "total": round(time.monotonic() - started, 2),
        },
    }
    metrics_file = metrics_path_for(config.output)
    atomic_write_text(metrics_file, json.dumps(metrics, indent=2) + "\n")
    return TrainResult(config.output, metrics_file, metrics, card)


TUNED_CV = (
    " The tuned layers learnt on head 0's training folds and chose their epoch on its checkpoint fold, "
    "so only fold 0's frames are held out from them as well: tuning.heldout_accuracy is that fold's figure."
)


@dataclass
class Recipe:
    """What `fit_recipe` learnt: the heads (as `fit_heads` returns them) and the backbone they read,
    with its tuned layers, plus `top` (cached maps -> the heads' maps) and the tuning record."""

    heads: list[keras.Model]
    histories: list[dict]
    oof: np.ndarray
    backbone: Backbone
    top: keras.Model
    tuning: dict


def fit_recipe(
    backbone: Backbone,
    maps: np.ndarray,
    views: Sequence[np.ndarray],
    y: np.ndarray,
    multi: bool,
    folds: Folds,
    config: TrainConfig,
) -> Recipe:
    """`config.tune` layers fine-tuned on the frozen part's cached `maps` (and `views` of them) with
    a head on head 0's split (training.tune.fine_tune), then the ensemble of `config.head` heads
    fitted on the tuned features exactly as `fit_heads` does on frozen ones."""
    from training.tune import fine_tune, head_inputs, top, tuned_backbone

    n_classes = len(config.classes)
    channels = 2 * 512
    top_model = top(backbone, config.tune, maps.shape[-1])
    record: dict = {}
    if config.tune != "none":
        from training.tune import TuneSettings

        split = folds.head_split(0)
        targets = y if multi else keras.utils.to_categorical(y, n_classes)
        weights = None if multi else class_weights(y[split.train].tolist(), n_classes)
        keras.utils.set_random_seed(config.seed)
        settle = (
            build_spatial_head(channels, n_classes, name="tune_head")
            if config.head == "spatial"
            else build_head(channels, n_classes, multi_label=multi, name="tune_head")
        )
        top_model, record = fine_tune(
            backbone,
            config.tune,
            settle,
            maps,
            targets,
            split.train,
            split.checkpoint,
            multi,
            views,
            TuneSettings(epochs=config.tune_epochs, learning_rate=config.tune_rate),
            config.label_smoothing,
            weights,
            config.head,
            config.seed,
        )
        backbone = tuned_backbone(backbone, top_model, record)
    features = head_inputs(top_model, maps, config.head)
    augmented = [head_inputs(top_model, v, config.head) for v in views]
    heads, histories, oof = fit_heads(features, y, config, multi, augmented, folds)
    if record:
        held = folds.head_split(0).held_out
        truth, predicted = verdicts([_labels_of(y[i], multi) for i in held], oof[held], config.background, multi)
        record["heldout_accuracy"] = score(truth, predicted, config.classes, multi)["accuracy"]
        record["heldout_frames"] = len(held)
    return Recipe(heads, histories, oof, backbone, top_model, record)


def _labels_of(row, multi: bool) -> tuple[int, ...]:
    return tuple(int(c) for c in np.flatnonzero(row)) if multi else (int(row),)


def _spacing(sets: list[LabelledFrames]) -> float:
    """The typical time between labelled frames (median over all sets' gaps)."""
    gaps = [b - a for s in sets for a, b in itertools.pairwise(s.times_s) if b > a]
    return float(np.median(gaps)) if gaps else 1.0


def _best_epoch(history: dict) -> int:
    """Index of the epoch whose weights the checkpoint kept."""
    return int(np.argmin(history["val_loss"]))


def fit_heads(
    features: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    multi: bool,
    augmented: Sequence[np.ndarray] = (),
    folds: Folds | None = None,
) -> tuple[list[keras.Model], list[dict], np.ndarray]:
    """Train `config.ensemble` heads; head k trains on three folds, keeps the weights of its best
    epoch on fold k + 1 and is scored on fold k, which it never saw (`Folds.head_split`).

    Together the heads train on every labelled frame, and each frame gets one honest score: from
    a head whose training and checkpoint choice never touched it or its neighbours.
    `y` holds class ids (single-label) or 0/1 rows (multi-label); `augmented` holds features of
    other views of the same frames (flips), used for training only; `folds` defaults to one set
    whose frames are one second apart. Returns the heads, their Keras histories and held-out
    probabilities (N, classes), NaN for frames no head held out.
    """
    folds = folds or Folds.of_sets([np.arange(len(y), dtype=float)], config.folds)
    targets = y if multi else keras.utils.to_categorical(y, len(config.classes))
    heads, histories = [], []
    oof_sum = np.zeros((len(y), len(config.classes)))
    oof_n = np.zeros(len(y))
    with Progress(disable=not config.progress, transient=True) as bar:
        task = bar.add_task("training heads", total=config.ensemble * config.epochs)
        for k in range(config.ensemble):
            split = folds.head_split(k)
            train_idx, val_idx = split.train, split.checkpoint
            keras.utils.set_random_seed(config.seed * 1000 + k)
            head = (
                build_spatial_head(features.shape[-1], len(config.classes), name=f"head_{k}")
                if features.ndim == 4
                else build_head(features.shape[1], len(config.classes), multi_label=multi, name=f"head_{k}")
            )
            x_train = np.concatenate([features[train_idx], *(a[train_idx] for a in augmented)])
            t_train = np.concatenate([targets[train_idx]] * (1 + len(augmented)))
            val_data: tuple = (features[val_idx], targets[val_idx])
            weights = None
            if not multi:
                # Balanced class weights (the same whether or not the augmented copies are
                # counted), and the validation loss weighted alike: unweighted, the common
                # characters dominate it and the checkpoint favours epochs that miss the rare,
                # small one and overcount the common one (benchmarks/accuracy.py).
                weights = class_weights(y[train_idx].tolist(), len(config.classes))
                val_data += (np.asarray([weights.get(c, 1.0) for c in y[val_idx]], np.float32),)
            histories.append(_fit_head(head, (x_train, t_train), val_data, weights, config, multi, bar, task))
            heads.append(head)
            if len(split.held_out):
                oof_sum[split.held_out] += head.predict(features[split.held_out], verbose=0)
                oof_n[split.held_out] += 1
    with np.errstate(invalid="ignore"):
        oof = oof_sum / oof_n[:, None]
    return heads, histories, oof


def _fit_head(
    head, train_data: tuple, val_data: tuple, class_weight: dict | None, config: TrainConfig, multi: bool, bar, task
) -> dict:
    """Fit one head on `train_data` (x, targets); keep the weights of its best epoch on `val_data`
    (x, targets[, sample weights]). Returns its Keras history."""
    loss = (
        keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing)
        if multi
        else keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    )
    head.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss)
    with tempfile.TemporaryDirectory() as tmp:
        best = Path(tmp) / "best.weights.h5"
        callbacks = [
            keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True, save_weights_only=True),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience),
            _EpochProgress(bar, task),
        ]
        history = head.fit(
            *train_data,
            validation_data=val_data,
            epochs=config.epochs,
            batch_size=config.batch_size,
            class_weight=class_weight,
            callbacks=callbacks,
            verbose=0,
        )
        head.load_weights(str(best))
    bar.update(task, advance=config.epochs - len(history.history["val_loss"]))  # early stop: skip the rest
    return history.history


class _EpochProgress(keras.callbacks.Callback):
    """Advances a shared rich progress bar per epoch, showing the validation loss (Keras' own output is off)."""

    def __init__(self, bar: Progress, task) -> None:
        super().__init__()
        self._bar, self._task = bar, task

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        loss = (logs or {}).get("val_loss", float("nan"))
        self._bar.update(self._task, advance=1, description=f"training heads (val loss {loss:.3f})")
