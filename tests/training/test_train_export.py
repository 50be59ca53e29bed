"""Real Keras training and real tf2onnx conversion, on tiny inputs with a random-weight VGG16."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import onnx
import pytest

from stream.errors import BadInputError, ModelError
from stream.model.card import CHANNEL_ORDER
from stream.model.card_metrics import read_card_metrics
from stream.model.engine import Engine
from tests.helpers import color_frame, write_labelled_frames
from training.evaluate import evaluate
from training.train import TrainConfig, train

pytestmark = pytest.mark.slow
CLASSES = ("neither", "jerry", "tom")
N_FRAMES = 60


def label_of(i: int) -> int:
    return (i // 2) % 3  # classes alternate every two frames, so every time block holds all three


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_labelled_frames(tmp_path_factory.mktemp("frames"), N_FRAMES, label_of, (48, 40))


@pytest.fixture(scope="module")
def trained(dataset, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "model.keras"
    config = TrainConfig(
        frames=dataset,
        labels=dataset / "labels.csv",
        output=out,
        classes=CLASSES,
        backbone_weights="random",
        epochs=40,
        input_size=(32, 32),
        progress=False,
        seed=1,
    )
    return train(config)


@pytest.fixture(scope="module")
def exported(trained, dataset):
    from export.onnx_export import export

    return export(trained.model_path, trained.model_path.with_suffix(".onnx"), int8=True, calibration=dataset)


def test_training_learns_a_separable_set_and_writes_metrics(trained):
    metrics = json.loads(trained.metrics_path.read_text())
    assert trained.metrics_path.name == "model.metrics.json"
    cv = metrics["cross_validation"]
    assert cv["accuracy"] >= 0.9
    assert metrics["classes"] == list(CLASSES)
    assert set(cv["per_class"]) == set(CLASSES)
    assert np.asarray(cv["confusion"]).sum() == metrics["cross_validation_frames"]
    assert metrics["backbone"]["weights"].startswith("random")
    assert metrics["seed"] == 1
    assert "neither trained on it nor chose its checkpoint on it" in metrics["cross_validation_method"]
    assert metrics["ensemble"] == len(metrics["best_epoch"]) == len(metrics["epochs_run"]) == 5
    # Five heads over five folds: every frame is scored once, by a head that never saw it.
    assert metrics["cross_validation_frames"] == metrics["train_frames"] == N_FRAMES
    # The held-out presence counts the intervals use agree with the confusion matrix.
    confusion = np.asarray(cv["confusion"])
    for i, name in enumerate(CLASSES):
        tp, fp, fn, tn = metrics["heldout_counts"][name]
        assert (tp, tp + fp, tp + fn, tp + fp + fn + tn) == (
            confusion[i, i],
            confusion[:, i].sum(),
            confusion[i].sum(),
            N_FRAMES,
        )
    assert metrics["heldout_design_effect"] >= 1.0 and metrics["frame_spacing_s"] == 1.0
    assert metrics["sets"] == [
        {
            "frames_dir": str(trained.metrics["frames_dir"]),
            "labels": metrics["sets"][0]["labels"],
            "frames": N_FRAMES,
            "cross_validation_accuracy": cv["accuracy"],
            "cross_validation_frames": N_FRAMES,
            "crop": None,  # synthetic frames have no black bars
        }
    ]
    assert metrics["crop"] == {"mode": "auto", "cropped_sets": 0, "sets": 1}  # the card says it
    assert metrics["augment"] == ["flip"]
    assert read_card_metrics(metrics, "model.metrics.json") == trained.card_metrics  # the card's part, read back
    assert all(1 <= b <= e for b, e in zip(metrics["best_epoch"], metrics["epochs_run"], strict=True))


def test_second_run_uses_cached_features(trained, dataset, caplog, tmp_path):
    config = TrainConfig(
        frames=dataset,
        labels=dataset / "labels.csv",
        output=tmp_path / "again.keras",
        classes=CLASSES,
        backbone_weights="random",
        epochs=2,
        input_size=(32, 32),
        progress=False,
        seed=1,
    )
    with caplog.at_level(logging.INFO):
        train(config)
    assert "not cached" not in caplog.text  # neither the frames nor their mirror images


def test_several_sets_train_one_model_and_only_new_frames_pass_the_backbone(trained, dataset, caplog, tmp_path):
    # A "new episode": 12 frames named like the old set's (frame0.jpg ...) but showing other
    # pictures, labelled in its own labels.csv; one of them is a byte copy of an old frame.
    new = tmp_path / "new"
    new.mkdir()
    rows = ["Image_ID,Class"]
    for i in range(12):
        cv2.imwrite(str(new / f"frame{i}.jpg"), color_frame(label_of(i + 1), (56, 44), noise=60, seed=100 + i))
        rows.append(f"frame{i}.jpg,{label_of(i + 1)}")
    (new / "frame11.jpg").write_bytes((dataset / "frame7.jpg").read_bytes())
    rows[-1] = f"frame11.jpg,{label_of(7)}"
    (new / "labels.csv").write_text("\n".join(rows) + "\n")
    config = TrainConfig(
        frames=(dataset, new),
        labels=None,  # each directory's labels.csv
        output=tmp_path / "both.keras",
        classes=CLASSES,
        backbone_weights="random",
        epochs=3,
        input_size=(32, 32),
        progress=False,
        seed=1,
    )
    with caplog.at_level(logging.INFO):
        result = train(config)
    # 11 new pictures (the copy is cached under its content), for the frames and for their mirrors.
    assert caplog.text.count("backbone features: 11 of 72 frames not cached") == 2
    m = result.metrics
    assert m["train_frames"] == 72 and [s["frames"] for s in m["sets"]] == [N_FRAMES, 12]
    assert [s["frames_dir"] for s in m["sets"]] == [str(dataset.resolve()), str(new.resolve())]
    assert sum(s["cross_validation_frames"] for s in m["sets"]) == m["cross_validation_frames"] == 72
    # Same names in two sets are two frames: every label of both files counts.
    old_counts = {n: sum(1 for i in range(N_FRAMES) if label_of(i) == c) for c, n in enumerate(CLASSES)}
    new_counts = {n: sum(1 for i in range(12) if label_of(i + 1 if i < 11 else 7) == c) for c, n in enumerate(CLASSES)}
    assert m["class_counts"] == {n: old_counts[n] + new_counts[n] for n in CLASSES}


def test_labels_must_pair_with_frames(dataset, tmp_path):
    config = TrainConfig(
        frames=(dataset, dataset), labels=(dataset / "labels.csv",), output=tmp_path / "m.keras", progress=False
    )
    with pytest.raises(BadInputError, match="2 --frames but 1 --labels"):
        config.validate()
    twice = TrainConfig(frames=(dataset, dataset), labels=None, output=tmp_path / "m.keras")
    with pytest.raises(BadInputError, match="given twice"):
        twice.validate()


def test_flip_view_is_the_features_of_mirrored_frames(dataset, tmp_path, monkeypatch):
    from training.features import backbone_features
    from training.model import load_backbone

    monkeypatch.setenv("SCREENTIME_CACHE", str(tmp_path / "cache"))
    paths = [dataset / f"frame{i}.jpg" for i in range(4)]
    mirrored = []
    for path in paths:
        mirrored.append(tmp_path / f"{path.stem}.png")  # lossless: the same pixels, mirrored
        cv2.imwrite(str(mirrored[-1]), cv2.flip(cv2.imread(str(path)), 1))
    backbone = load_backbone((32, 32), "random")
    flipped = backbone_features(backbone, paths, progress=False, view="flip")
    assert np.allclose(flipped, backbone_features(backbone, mirrored, progress=False), atol=1e-4)
    assert not np.allclose(flipped, backbone_features(backbone, paths, progress=False), atol=1e-4)


def test_export_parity_and_model_card_round_trip(trained, exported, dataset):
    assert exported.max_abs_diff <= 1e-4
    engine = Engine(exported.path, "cpu")
    card = engine.card
    assert card.classes == CLASSES
    assert card.input_size == (32, 32)
    assert card.channel_order == CHANNEL_ORDER == "BGR"
    assert card.metrics.cross_validation["accuracy"] >= 0.9
    assert set(card.metrics.heldout_counts) == set(CLASSES)
    assert card.metrics.crop == {"mode": "auto", "cropped_sets": 0, "sets": 1}  # the card says whether frames were cut
    assert card.metrics == trained.card_metrics  # every key the training wrote, through the ONNX file and back
    assert card.screentime_version
    graph = onnx.load(str(exported.path)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    # Frames of any size go in as OpenCV decodes them; the engine resizes, the graph preprocesses.
    frames = [cv2.imread(str(dataset / f"frame{i}.jpg")) for i in range(6)]
    assert engine.predict(frames).argmax(1).tolist() == [label_of(i) for i in range(6)]


def test_int8_export_agrees_with_fp32(exported):
    assert exported.int8_path is not None and exported.int8_path.is_file()
    assert exported.int8_agreement >= 0.9
    card = Engine(exported.int8_path, "cpu").card
    assert card.quantization["agreement_with_fp32"] == pytest.approx(exported.int8_agreement)
    assert "QDQ" in card.quantization["type"]
    graph = onnx.load(str(exported.int8_path)).graph
    made_by = {out: node.op_type for node in graph.node for out in node.output}

    def quantized(op: str) -> list[bool]:  # per node of this type: does an input come dequantized?
        return [any(made_by.get(i) == "DequantizeLinear" for i in n.input) for n in graph.node if n.op_type == op]

    assert quantized("Conv") and all(quantized("Conv"))  # the backbone runs in INT8
    assert quantized("Gemm") and not any(quantized("Gemm"))  # the heads stay fp32


def test_evaluate_exported_model(exported, dataset, tmp_path):
    result = evaluate(exported.path, dataset, dataset / "labels.csv")
    assert result.metrics["accuracy"] >= 0.9
    assert result.screen_time_s["true"] == {"neither": 20.0, "jerry": 20.0, "tom": 20.0}
    assert sum(result.screen_time_s["predicted"].values()) == pytest.approx(60.0)


def test_export_refuses_files_that_are_not_models(tmp_path):
    from export.onnx_export import export

    bogus = tmp_path / "bogus.keras"
    bogus.write_text("not a model")
    with pytest.raises(ModelError, match=r"metrics\.json"):
        export(bogus, tmp_path / "out.onnx")
    (tmp_path / "bogus.metrics.json").write_text(json.dumps({"classes": list(CLASSES)}))
    with pytest.raises(ModelError, match="not a Keras model"):
        export(bogus, tmp_path / "out.onnx")
    with pytest.raises(BadInputError, match=r"\.onnx"):
        export(bogus, tmp_path / "out.txt")


def test_transfer_views_black_out_or_crop_the_sides():
    from training.features import VIEWS

    frame = np.full((72, 128, 3), 200, np.uint8)
    boxed = VIEWS["pillarbox"](frame, (128, 72))
    assert boxed.shape == (72, 128, 3)
    assert boxed[:, :16].max() == 0 and boxed[:, -16:].max() == 0 and boxed[:, 16:112].min() == 200
    assert VIEWS["crop43"](frame, (64, 36)).shape == (36, 64, 3)
    assert VIEWS["colour"](frame, (64, 36)).shape == (36, 64, 3)
