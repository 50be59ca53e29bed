"""Fine-tuning the top of VGG16 on the labelled sets (`screentime train --tune conv3|block5`).

The frozen part of the backbone (up to block 4, or up to block5_conv2 when only the last
convolution learns) never changes, so its maps are cached per frame and per view like the pooled
features (`training.features.cached_pass`): a retrain after 20 new labels passes only those 20
frames through it, and the tuning itself runs on the cached maps. The tuned layers start from the
ImageNet weights and learn at a low rate, after the head has settled on the frozen features (a
fresh head's large gradients would otherwise wreck the pretrained filters), with the maps shifted
by up to a cell as augmentation. Their weights go back into a copy of VGG16: the exported graph is
the same graph, at the same cost, with other numbers in block 5.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from stream import defaults
from stream.frames.crop import Crop
from training.features import cached_pass
from training.model import Backbone, CaffePreprocess, PoolMaps

log = logging.getLogger(__name__)

BLOCK4 = "block4_pool"
TUNED_LAYERS = {
    "none": (),
    "conv3": ("block5_conv3",),
    "block5": ("block5_conv1", "block5_conv2", "block5_conv3"),
}
# The frozen layer whose output the tuned ones read: cached beside block 4's maps.
CUT = {"none": "block5_conv3", "conv3": "block5_conv2", "block5": BLOCK4}
TRAIN_COST = 3.0  # a training step costs about three forward passes (forward, gradients of inputs and weights)


@dataclass(frozen=True)
class TuneSettings:
    epochs: int = defaults.TUNE_EPOCHS  # passes over the training frames with the block learning
    settle_epochs: int = 30  # the head alone first, on frozen features
    learning_rate: float = defaults.TUNE_RATE
    batch_size: int = 16
    shift: int = 1  # augmentation: maps moved by up to this many cells (16 px at the input)
    patience: int = 2


def cut_layer(tune: str) -> str:
    return CUT[tune]


def frozen_part(backbone: Backbone, tune: str) -> keras.Model:
    """Frames -> what the cache stores: block 4's maps and the cut layer's, side by side
    (block 4's alone when the whole of block 5 learns)."""
    vgg = backbone.model
    names = [BLOCK4] if CUT[tune] == BLOCK4 else [BLOCK4, CUT[tune]]
    trunk = keras.Model(vgg.input, [vgg.get_layer(n).output for n in names], name="vgg16_frozen")
    inputs = keras.Input(vgg.input_shape[1:], name="frames")
    out = trunk(CaffePreprocess(name="preprocess")(inputs))
    out = keras.layers.Concatenate(name="frozen_maps")(list(out)) if len(names) > 1 else out
    return keras.Model(inputs, out, name="frozen")


def maps_key(backbone: Backbone, tune: str, view: str = "full") -> str:
    """Weights, input size, cut and view: everything besides the frame that decides its maps."""
    digest = hashlib.sha256(backbone.fingerprint.encode())
    digest.update(f"maps:{CUT[tune]}:view:{view}".encode())
    digest.update(repr(backbone.model.input_shape).encode())
    return "maps-" + digest.hexdigest()[:24]


def frozen_maps(
    backbone: Backbone,
    paths: Sequence[Path],
    tune: str,
    view: str = "full",
    crops: Sequence[Crop | None] | None = None,
    progress: bool = True,
    use_cache: bool = True,
) -> np.ndarray:
    """(N, H/16, W/16, C) float16 maps of the frozen part for `view` of each frame, cached per frame."""
    return cached_pass(
        backbone,
        lambda: frozen_part(backbone, tune),
        maps_key(backbone, tune, view),
        paths,
        batch_size=8,
        progress=progress,
        use_cache=use_cache,
        view=view,
        crops=crops,
        what=f"frozen maps to {CUT[tune]}",
        dtype="float16",
    )


def top(backbone: Backbone, tune: str, channels: int) -> keras.Model:
    """Cached maps -> the block-4 | block5_conv3 maps a head reads, through the tuned layers
    (copies of VGG's, ImageNet weights to start; `none`: nothing learns, the maps pass through)."""
    inputs = keras.Input((None, None, channels), name="frozen_maps")
    x = keras.ops.cast(inputs, "float32")
    if CUT[tune] == BLOCK4:
        block4, x = x, x
    else:
        half = channels // 2
        block4, x = x[..., :half], x[..., half:]
    for name in TUNED_LAYERS[tune]:
        source = backbone.model.get_layer(name)
        layer = keras.layers.Conv2D(
            source.filters, source.kernel_size, padding="same", activation="relu", name=f"tuned_{name}"
        )
        x = layer(x)
        layer.set_weights(source.get_weights())
    both = keras.layers.Concatenate(name="both_maps")([block4, x])
    return keras.Model(inputs, both, name=f"top_{tune}")


def tuned_backbone(backbone: Backbone, tuned: keras.Model, record: dict) -> Backbone:
    """A copy of the backbone with the tuned layers' weights in place of ImageNet's (same graph)."""
    vgg = keras.models.clone_model(backbone.model)
    vgg.set_weights(backbone.model.get_weights())
    for layer in tuned.layers:
        if layer.name.startswith("tuned_"):
            vgg.get_layer(layer.name.removeprefix("tuned_")).set_weights(layer.get_weights())
    vgg.trainable = False
    return Backbone(vgg, {**backbone.provenance, "tuned": record})


def head_inputs(top_model: keras.Model, maps: np.ndarray, head: str, batch_size: int = 16) -> np.ndarray:
    """What a head trains on: the maps through the top (spatial), or those pooled (global)."""
    model = top_model
    if head == "global":
        model = keras.Model(top_model.input, PoolMaps(name="pooled")(top_model.output))
    out = [np.asarray(model(maps[i : i + batch_size], training=False)) for i in range(0, len(maps), batch_size)]
    dtype = np.float32 if head == "global" else np.float16
    return np.concatenate(out).astype(dtype) if out else np.zeros((0,), dtype)


class _Shift(keras.layers.Layer):
    """Augmentation on cached maps (training only): moved by up to `cells` positions each way,
    the edge filled with zeros, as a frame panned by a few dozen pixels would be."""

    def __init__(self, cells: int, seed: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cells = cells
        self.rng = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or not self.cells:
            return x
        c = self.cells
        padded = keras.ops.pad(x, [[0, 0], [c, c], [c, c], [0, 0]])
        dy, dx = (keras.random.randint((2,), 0, 2 * c + 1, seed=self.rng)[i] for i in range(2))
        h, w = keras.ops.shape(x)[1], keras.ops.shape(x)[2]
        return keras.ops.slice(padded, [0, dy, dx, 0], [keras.ops.shape(x)[0], h, w, keras.ops.shape(x)[3]])


def estimate_s(model: keras.Model, sample: np.ndarray, frames: int, epochs: int) -> tuple[float, float]:
    """(seconds the tuning will take, seconds per frame) from two timed forward passes of a batch."""
    model(sample, training=False)  # the first call builds the graph
    started = time.perf_counter()
    model(sample, training=False)
    per_frame = TRAIN_COST * (time.perf_counter() - started) / len(sample)
    return per_frame * frames * epochs, per_frame


def device_name() -> str:
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def fine_tune(
    backbone: Backbone,
    tune: str,
    head_model: keras.Model,
    maps: np.ndarray,
    targets: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    multi: bool,
    views: Sequence[np.ndarray] = (),
    settings: TuneSettings = TuneSettings(),
    label_smoothing: float = 0.1,
    class_weight: dict | None = None,
    head: str = "global",
    seed: int = 0,
) -> tuple[keras.Model, dict]:
    """Settle `head_model` on the frozen features, then train the tuned layers and the head
    together at a low rate on the training frames (and their `views`), keeping the epoch with the
    best loss on `val_idx`. Returns the top (tuned layers; its weights go to `tuned_backbone`) and
    what happened (epochs, seconds, device, losses) for the model card."""
    keras.utils.set_random_seed(seed)
    started = time.monotonic()
    top_model = top(backbone, tune, maps.shape[-1])
    loss = (
        keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        if multi
        else keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    )
    x_train = np.concatenate([maps[train_idx], *(v[train_idx] for v in views)])
    t_train = np.concatenate([targets[train_idx]] * (1 + len(views)))
    weights = _sample_weights(t_train, class_weight)
    val = (maps[val_idx], targets[val_idx], _sample_weights(targets[val_idx], class_weight))

    # 1. The head settles on the frozen features (cheap: the top runs once per frame).
    head_model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    settle_x = head_inputs(top_model, x_train, head)
    settle_val = head_inputs(top_model, val[0], head)
    _fit_best(
        head_model,
        (settle_x, t_train, weights),
        (settle_val, val[1], val[2]),
        settings.settle_epochs,
        settings.batch_size,
        patience=8,
    )

    # 2. The tuned layers and the head together, at a low rate, on shifted maps.
    inputs = keras.Input(maps.shape[1:], name="frozen_maps")
    shifted = _Shift(settings.shift, seed, name="shift")(inputs)
    features = top_model(shifted)
    if head == "global":
        features = PoolMaps(name="pooled")(features)
    model = keras.Model(inputs, head_model(features), name="tuning")
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss=loss)
    estimate, per_frame = estimate_s(model, x_train[: settings.batch_size], len(x_train), settings.epochs)
    device = device_name()
    log.info(
        "tuning %s on %s: about %.0f s (%d frames x %d epochs, %.2f s per frame)",
        "+".join(TUNED_LAYERS[tune]),
        device.upper(),
        estimate,
        len(x_train),
        settings.epochs,
        per_frame,
    )
    train = (x_train, t_train, weights)
    history = _fit_best(model, train, val, settings.epochs, settings.batch_size, settings.patience)
    record = {
        "layers": list(TUNED_LAYERS[tune]),
        "epochs": len(history["loss"]),
        "best_epoch": int(np.argmin(history["val_loss"])) + 1,
        "frames": len(x_train),
        "seconds": round(time.monotonic() - started, 1),
        "estimated_s": round(estimate, 1),
        "device": device,
        "learning_rate": settings.learning_rate,
        "validation_loss": [round(float(v), 4) for v in history["val_loss"]],
    }
    return top_model, record


def _sample_weights(targets: np.ndarray, class_weight: dict | None) -> np.ndarray | None:
    if class_weight is None:
        return None
    return np.asarray([class_weight.get(int(c), 1.0) for c in targets.argmax(1)], np.float32)


def _fit_best(model: keras.Model, train: tuple, val: tuple, epochs: int, batch_size: int, patience: int) -> dict:
    """Fit; keep the weights of the epoch with the best validation loss."""
    x, t, w = train
    with tempfile.TemporaryDirectory() as tmp:
        best = Path(tmp) / "best.weights.h5"
        history = model.fit(
            x,
            t,
            sample_weight=w,
            validation_data=val if val[2] is not None else val[:2],
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[
                keras.callbacks.ModelCheckpoint(
                    str(best), monitor="val_loss", save_best_only=True, save_weights_only=True
                ),
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience),
            ],
        )
        model.load_weights(str(best))
    return history.history
