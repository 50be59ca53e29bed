"""Fine-tuning the top of VGG16 (`train --tune`) and the spatial head (`train --head spatial`):
real Keras training on tiny frames with a random-weight VGG16."""

from __future__ import annotations

import json
import logging

import cv2
import keras
import numpy as np
import pytest

from stream.model.engine import Engine
from tests.helpers import write_labelled_frames
from training.train import TrainConfig, train

pytestmark = pytest.mark.slow
CLASSES = ("neither", "jerry", "tom")
N_FRAMES = 40
VGG_LAYERS = (
    "block1_conv1",
    "block3_conv3",
    "block4_conv3",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
)


def label_of(i: int) -> int:
    return (i // 2) % 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_labelled_frames(tmp_path_factory.mktemp("frames"), N_FRAMES, label_of, (40, 36))


def config_for(dataset, output, **kwargs) -> TrainConfig:
    given = {
        "frames": dataset,
        "labels": None,
        "output": output,
        "classes": CLASSES,
        "backbone_weights": "random",
        "epochs": 6,
        "input_size": (32, 32),
        "progress": False,
        "seed": 3,
        "ensemble": 2,
        "tune_epochs": 2,
        **kwargs,
    }
    return TrainConfig(**given)


@pytest.fixture(scope="module")
def tuned(dataset, cache, tmp_path_factory):
    return train(config_for(dataset, tmp_path_factory.mktemp("model") / "tuned.keras", tune="conv3", tune_rate=3e-5))


def vgg_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    trunk = model.get_layer("features").get_layer("vgg16_trunk")
    return {name: trunk.get_layer(name).get_weights() for name in VGG_LAYERS}


def test_tuning_changes_the_tuned_layer_and_nothing_frozen(tuned):
    from export.onnx_export import load_keras
    from training.model import load_backbone

    keras.utils.set_random_seed(3)  # what train() drew the random backbone with
    vgg = load_backbone((32, 32), "random").model
    before = {name: vgg.get_layer(name).get_weights() for name in VGG_LAYERS}
    after = vgg_weights(load_keras(tuned.model_path))
    for name in VGG_LAYERS:
        same = all(np.array_equal(a, b) for a, b in zip(before[name], after[name], strict=True))
        assert same == (name != "block5_conv3"), name
    record = tuned.metrics["tuning"]
    assert record["layers"] == ["block5_conv3"] and record["epochs"] >= 1 and record["device"] in ("cpu", "gpu")
    assert record["sets"] and record["frames"] > 0 and record["seconds"] > 0
    assert record["learning_rate"] == 3e-5  # the rate asked for, and the card says so
    assert "only fold 0's frames are held out" in tuned.card_metrics.cross_validation_method


def test_retrain_hits_the_frozen_part_cache(tuned, dataset, caplog, tmp_path):
    with caplog.at_level(logging.INFO):
        train(config_for(dataset, tmp_path / "again.keras", tune="conv3"))
    assert "frozen maps to block5_conv2" not in caplog.text  # every frame and flip came from the cache
    assert "tuning block5_conv3 on CPU: about" in caplog.text  # the estimate, logged before it starts


def test_tuned_export_matches_keras_and_the_card_says_what_was_tuned(tuned, dataset):
    from export.onnx_export import export, load_keras
    from training.images import load_images

    out = export(tuned.model_path, tuned.model_path.with_suffix(".onnx"), frames=dataset)
    assert out.max_abs_diff <= 1e-4
    engine = Engine(out.path, "cpu")
    assert engine.card.tuned is not None and engine.card.tuned.layers == ("block5_conv3",)
    assert engine.card.tuned.sets == (str(dataset.resolve()),)
    assert engine.card.tuned.learning_rate == 3e-5
    assert engine.card.head == "global"
    # The graph's outputs on frames, against Keras with the tuned weights.
    frames = load_images([dataset / f"frame{i}.jpg" for i in range(8)], (32, 32))
    probs, features = engine.predict_with_features(list(frames))
    keras_model = load_keras(tuned.model_path)
    assert np.max(np.abs(probs - keras_model.predict(frames.astype(np.float32), verbose=0))) <= 1e-4
    pooled = keras_model.get_layer("features").predict(frames.astype(np.float32), verbose=0)
    assert np.max(np.abs(features - pooled)) <= 1e-4


def test_block5_tuning_and_spatial_head_export(dataset, cache, tmp_path):
    from export.onnx_export import export

    result = train(config_for(dataset, tmp_path / "spatial.keras", tune="block5", head="spatial"))
    assert result.metrics["multi_label"] and result.metrics["head"] == "spatial"
    assert result.metrics["tuning"]["layers"] == ["block5_conv1", "block5_conv2", "block5_conv3"]
    out = export(result.model_path, tmp_path / "spatial.onnx", frames=dataset)
    assert out.max_abs_diff <= 1e-4
    card = Engine(out.path, "cpu").card
    assert card.head == "spatial" and card.multi_label and card.tuned.layers[0] == "block5_conv1"


def test_tune_and_head_are_checked(dataset, tmp_path):
    from stream.errors import BadInputError

    with pytest.raises(BadInputError, match="--tune"):
        config_for(dataset, tmp_path / "m.keras", tune="block4").validate()
    with pytest.raises(BadInputError, match="--head"):
        config_for(dataset, tmp_path / "m.keras", head="local").validate()
    assert json.dumps(config_for(dataset, tmp_path / "m.keras").tune) == '"none"'
    with pytest.raises(BadInputError, match="--tune-rate 0: must be above 0"):
        config_for(dataset, tmp_path / "m.keras", tune_rate=0.0).validate()
    with pytest.raises(BadInputError, match="--tune-epochs must be at least 1"):
        config_for(dataset, tmp_path / "m.keras", tune_epochs=0).validate()


def corner_frame(i: int, present: bool, size: int = 96) -> np.ndarray:
    """A cluttered room (furniture of any colour but red) and, when `present`, a small red ball
    (a sixteenth of the frame's width) in one of its corners."""
    rng = np.random.default_rng(i)
    image = np.empty((size, size, 3), np.uint8)
    image[:] = rng.integers(120, 230, 3)
    for _ in range(6):
        x, y = rng.integers(0, size, 2)
        w, h = rng.integers(size // 8, size // 2, 2)
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), colour, -1)
    if present:
        r = size // 16
        cx = r + 1 if rng.random() < 0.5 else size - r - 2
        cy = r + 1 if rng.random() < 0.5 else size - r - 2
        cv2.circle(image, (int(cx), int(cy)), r, (20, 20, 250), -1)
    return image


def test_spatial_head_finds_a_small_object_in_a_corner_better_than_global_pooling():
    # Same frames, same random backbone, same folds, epochs and ensemble: the heads differ only in
    # where they decide (each map position, then pooled; or after pooling each channel).
    from training.model import load_backbone
    from training.split import Folds
    from training.train import fit_heads, multi_hot
    from training.tune import frozen_part, head_inputs, top

    n = 200
    present = np.asarray([(i // 2) % 2 for i in range(n)])
    keras.utils.set_random_seed(0)
    backbone = load_backbone((96, 96), "random")
    images = np.stack([corner_frame(i, bool(p)) for i, p in enumerate(present)]).astype(np.float32)
    maps = frozen_part(backbone, "none").predict(images, verbose=0)
    folds = Folds.of_sets([np.arange(n, dtype=float)], 5)
    config = TrainConfig(
        frames=".", labels=None, output="x.keras", classes=("neither", "ball"), progress=False, epochs=40, augment=()
    )
    found = {}
    for head in ("global", "spatial"):
        x = head_inputs(top(backbone, "none", maps.shape[-1]), maps, head)
        multi = head == "spatial"
        y = multi_hot([(int(c),) for c in present], 2, 0) if multi else present
        _, _, oof = fit_heads(x, y, config, multi, [], folds)
        scored = ~np.isnan(oof[:, 0])
        found[head] = float((oof[scored].argmax(1) == present[scored]).mean())
    assert found["spatial"] >= 0.62, found
    assert found["spatial"] >= found["global"] + 0.05, found
