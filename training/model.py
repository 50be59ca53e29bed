"""The classifier: a frozen ImageNet VGG16 base with a small dense head, built functionally.

Functional, never `Sequential`: tf2onnx 1.17 cannot convert Keras 3 Sequential models
(tf2onnx issue 2448). Preprocessing is a layer of the model, so the exported graph takes frames
exactly as OpenCV decodes them (uint8 BGR) and no caller can get it wrong.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import keras
import numpy as np

from stream.errors import BadInputError

# ImageNet VGG16 was trained on BGR images with these channel means subtracted ("caffe" mode).
MEAN_BGR = (103.939, 116.779, 123.68)
WEIGHTS_ENV = "SCREENTIME_VGG16_WEIGHTS"


@keras.saving.register_keras_serializable(package="screentime")
class CaffePreprocess(keras.layers.Layer):
    """BGR 0..255 in, mean-subtracted BGR out: what the ImageNet VGG16 weights expect.

    OpenCV already gives BGR, so unlike the seed (which scaled RGB to [-1, 1]) nothing is flipped.
    """

    def call(self, x):
        return keras.ops.cast(x, "float32") - keras.ops.convert_to_tensor(np.asarray(MEAN_BGR, "float32"))


@dataclass(frozen=True)
class Backbone:
    model: keras.Model
    provenance: dict  # where the weights came from, for the model card

    @cached_property
    def fingerprint(self) -> str:
        """Digest of the weights, so cached features are never reused across backbones (computed once)."""
        digest = hashlib.sha256()
        for w in self.model.get_weights():
            digest.update(np.ascontiguousarray(w).tobytes())
        return digest.hexdigest()[:16]


def load_backbone(input_size: tuple[int, int], weights: str | None = None) -> Backbone:
    """VGG16 without its top, frozen.

    `weights`: a weights file, "random" (tests), "imagenet" (Keras' download), or None: then the
    environment variable SCREENTIME_VGG16_WEIGHTS, else the download.
    """
    width, height = input_size
    if width < 32 or height < 32:
        raise BadInputError(f"input size {width}x{height} is too small for VGG16 (minimum 32x32)")
    choice = weights or os.environ.get(WEIGHTS_ENV) or "imagenet"
    shape = (height, width, 3)
    if choice == "random":
        model = keras.applications.VGG16(include_top=False, weights=None, input_shape=shape)
        provenance: dict[str, object] = {
            "name": "vgg16",
            "weights": "random (not ImageNet: for tests and offline demos)",
        }
    elif choice == "imagenet":
        try:
            model = keras.applications.VGG16(include_top=False, weights="imagenet", input_shape=shape)
        except Exception as exc:  # urllib/HTTP errors vary by platform
            raise BadInputError(
                f"cannot download the ImageNet VGG16 weights ({type(exc).__name__}); "
                f"pass --backbone-weights FILE or set {WEIGHTS_ENV} (see README)"
            ) from None
        provenance = {"name": "vgg16", "weights": "imagenet (keras.applications download)"}
    else:
        path = Path(choice)
        if not path.is_file():
            raise BadInputError(f"{path}: no such backbone weights file")
        model = keras.applications.VGG16(include_top=False, weights=None, input_shape=shape)
        try:
            model.load_weights(str(path))
        except Exception as exc:
            raise BadInputError(f"{path}: not VGG16 weights Keras can load ({exc})") from None
        provenance = {"name": "vgg16", "weights": f"imagenet from file {path.name}", "sha256": _sha256(path)}
    model.trainable = False
    provenance["input_size"] = [width, height]
    return Backbone(model, provenance)


FEATURE_LAYERS = ("block4_pool", "block5_pool")
MAP_LAYERS = ("block4_pool", "block5_conv3")  # same grid (1/16 of the input): the spatial head's evidence


def feature_extractor(backbone: Backbone) -> keras.Model:
    """Frames (N, H, W, 3) BGR 0..255 -> one pooled feature vector per frame; what the cache stores.

    Global max pooling keeps a small character's strongest response instead of averaging it away,
    and block 4 adds finer, more local evidence than block 5 alone (a mouse a few dozen pixels
    wide): chosen by benchmarks/accuracy.py.
    """
    trunk = keras.Model(
        backbone.model.input, [backbone.model.get_layer(name).output for name in FEATURE_LAYERS], name="vgg16_trunk"
    )
    inputs = keras.Input(backbone.model.input_shape[1:], name="frames")
    maps = trunk(CaffePreprocess(name="preprocess")(inputs))
    pooled = [
        keras.layers.GlobalMaxPooling2D(name=f"pool_{name}")(m) for name, m in zip(FEATURE_LAYERS, maps, strict=True)
    ]
    return keras.Model(inputs, keras.layers.Concatenate(name="pooled")(pooled), name="features")


def maps_extractor(backbone: Backbone) -> keras.Model:
    """Frames -> the block-4 and block-5 maps side by side (N, H/16, W/16, 1024): a spatial head's input."""
    trunk = keras.Model(
        backbone.model.input, [backbone.model.get_layer(name).output for name in MAP_LAYERS], name="vgg16_maps"
    )
    inputs = keras.Input(backbone.model.input_shape[1:], name="frames")
    both = keras.layers.Concatenate(name="both_maps")(list(trunk(CaffePreprocess(name="preprocess")(inputs))))
    return keras.Model(inputs, both, name="maps")


@keras.saving.register_keras_serializable(package="screentime")
class PoolMaps(keras.layers.Layer):
    """The block-4 | block-5 maps (`maps_extractor`) -> the pooled features `feature_extractor` gives
    (block 5 max-pooled 2x2 first, as VGG's block5_pool does), so a tuned block's frames feed the
    same head as the full model's."""

    def call(self, maps):
        half = maps.shape[-1] // 2
        block4, block5 = maps[..., :half], maps[..., half:]
        block5 = keras.ops.max_pool(block5, 2, 2, padding="valid")
        return keras.ops.concatenate([keras.ops.max(block4, axis=(1, 2)), keras.ops.max(block5, axis=(1, 2))], axis=-1)


@keras.saving.register_keras_serializable(package="screentime")
class PresencePool(keras.layers.Layer):
    """Per-position class scores (N, H, W, C) -> one score per class (N, C): log-sum-exp (a soft
    maximum: one confident position is enough, several agreeing ones count a little more) or max."""

    def __init__(self, mode: str = "lse", sharpness: float = 5.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode, self.sharpness = mode, float(sharpness)

    def call(self, scores):
        if self.mode == "max":
            return keras.ops.max(scores, axis=(1, 2))
        r = self.sharpness
        peak = keras.ops.max(scores, axis=(1, 2), keepdims=True)
        soft = keras.ops.log(keras.ops.mean(keras.ops.exp(r * (scores - peak)), axis=(1, 2))) / r
        return soft + keras.ops.squeeze(peak, axis=(1, 2))

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode, "sharpness": self.sharpness}


def build_spatial_head(
    channels: int, n_classes: int, hidden: int = 256, dropout: float = 0.2, pool: str = "max", name: str = "head"
) -> keras.Model:
    """Class presence at each map position (1x1 convolutions on the block-4 | block-5 maps), pooled
    over positions: a small character in a corner counts as much as a big one in the middle, and
    two characters in one frame are two presences (sigmoid per class: multi-label by nature)."""
    inputs = keras.Input((None, None, channels), name="maps")
    # Its statistics settle in tens of steps, not hundreds: a few dozen frames give a head only a few
    # steps an epoch, and with the default momentum its validation loss first rises for a dozen
    # epochs (early stopping then keeps an untrained head).
    x = keras.layers.BatchNormalization(momentum=0.9, name="norm")(inputs)
    x = keras.layers.Dropout(dropout, name="dropout_in")(x)
    x = keras.layers.Conv2D(hidden, 1, activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(dropout, name="dropout_hidden")(x)
    scores = keras.layers.Conv2D(n_classes, 1, name="presence")(x)
    pooled = PresencePool(pool, name="over_positions")(scores)
    outputs = keras.layers.Activation("sigmoid", name="probs")(pooled)
    return keras.Model(inputs, outputs, name=name)


def build_head(
    n_features: int,
    n_classes: int,
    hidden: int = 256,
    dropout: float = 0.5,
    multi_label: bool = False,
    name: str = "head",
) -> keras.Model:
    """A small dense head with dropout on pooled features."""
    inputs = keras.Input((n_features,), name="features")
    # Feature scales differ wildly between layers and backbones (ImageNet vs random); normalising
    # them lets one learning rate fit all. At inference this folds into a multiply-add.
    x = keras.layers.BatchNormalization(name="norm")(inputs)
    x = keras.layers.Dropout(dropout, name="dropout_in")(x)
    x = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(dropout, name="dropout_hidden")(x)
    activation = "sigmoid" if multi_label else "softmax"  # several characters at once, or exactly one class
    outputs = keras.layers.Dense(n_classes, activation=activation, name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def assemble(backbone: Backbone, heads: list[keras.Model], head: str = "global") -> keras.Model:
    """The deployable model: frames in, class probabilities out (the heads' average). A global head
    reads the pooled features, a spatial one the maps."""
    inputs = keras.Input(backbone.model.input_shape[1:], name="frames")
    stem = maps_extractor(backbone) if head == "spatial" else feature_extractor(backbone)
    return keras.Model(inputs, _ensemble(heads, stem(inputs)), name="screentime")


def with_features(model: keras.Model) -> keras.Model:
    """`model` (as `assemble` built it) answering {"probs", "features"}: the exported graph also
    gives each frame's pooled backbone features, which `suggest` spreads its picks over."""
    heads = [layer for layer in model.layers if layer.name.startswith("head_")]
    inputs = keras.Input(model.input_shape[1:], name="frames")
    names = {layer.name for layer in model.layers}
    if "maps" in names:  # a spatial head: the features are the maps pooled as a global head's
        maps = model.get_layer("maps")(inputs)
        pooled = PoolMaps(name="pooled")(maps)
        return keras.Model(inputs, {"probs": _ensemble(heads, maps), "features": pooled}, name="screentime_export")
    pooled = model.get_layer("features")(inputs)
    return keras.Model(inputs, {"probs": _ensemble(heads, pooled), "features": pooled}, name="screentime_export")


def _ensemble(heads: list[keras.Model], pooled):
    outputs = [head(pooled) for head in heads]
    return keras.layers.Average(name="ensemble")(outputs) if len(outputs) > 1 else outputs[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
