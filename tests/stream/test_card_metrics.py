"""The model card's training metrics: each key declared once (stream.model.card_metrics), checked
where a card is read, kept whole from MODEL.metrics.json through export's ONNX file and back."""

from __future__ import annotations

import json
from dataclasses import fields
from types import SimpleNamespace

import onnx
import pytest

from stream.errors import BadInputError
from stream.model.card import METADATA_KEY, ModelCard
from stream.model.card_metrics import CardMetrics, read_card_metrics
from stream.model.engine import Engine
from tests.helpers import CLASSES, make_color_model

# Every field set to something other than its default, so a key lost on the way shows.
FULL = CardMetrics(
    cross_validation={"accuracy": 0.9, "samples": 60, "per_class": {"tom": {"precision": 1.0}}, "confusion": [[1]]},
    cross_validation_method="time-block cross-validation, 5 folds",
    heldout_counts={"neither": (30, 3, 3, 60), "jerry": (25, 2, 4, 65), "tom": (28, 4, 2, 62)},
    heldout_design_effect=2.5,
    frame_spacing_s=1.25,
    class_counts={"neither": 20, "jerry": 20, "tom": 20},
    seed=7,
    crop={"mode": "auto", "cropped_sets": 0, "sets": 1},
    validation={"accuracy": 0.95, "samples": 12},
    validation_split="time blocks, out of fold",
)


def with_card(path, card_json: str):
    """Replace the ONNX file's card with `card_json`, as an older (or broken) screentime wrote it."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    model.metadata_props.add(key=METADATA_KEY, value=card_json)
    onnx.save(model, str(path))
    return path


def test_full_sets_every_key():
    assert set(FULL.to_dict()) == {f.name for f in fields(CardMetrics)}


def test_round_trip_export_to_load_keeps_every_key(tmp_path):
    from export.onnx_export import card_for
    from export.onnx_files import write_card

    # MODEL.metrics.json as `train` writes it: the card's keys among its own records.
    written = {"classes": list(CLASSES), "background": 0, **FULL.to_dict(), "sets": [], "ensemble": 5}
    written = json.loads(json.dumps(written))  # through JSON, as the file is read: tuples are lists
    keras_model = SimpleNamespace(input_shape=(None, 32, 32, 3))  # all `card_for` asks of the Keras model
    card = card_for(keras_model, written, "model.metrics.json")
    path = make_color_model(tmp_path / "m.onnx")
    write_card(path, card)
    loaded = Engine(path, "cpu").card
    assert loaded.metrics == FULL
    assert loaded.metrics.heldout_counts["tom"] == (28, 4, 2, 62)
    assert ModelCard.from_metadata(loaded.to_metadata()) == loaded


def test_an_old_card_without_the_newer_keys_loads(tmp_path):
    # The card of the first screentime: validation figures, no held-out counts, no crop, no head.
    old = {
        "background": 0,
        "backbone": {"name": "VGG16"},
        "channel_order": "BGR",
        "classes": list(CLASSES),
        "format": 1,
        "input_height": 32,
        "input_width": 32,
        "metrics": {
            "class_counts": {"neither": 10, "jerry": 5, "tom": 5},
            "seed": 0,
            "validation": {"accuracy": 0.8, "samples": 20},
            "validation_split": "time blocks, out of fold",
        },
        "multi_label": False,
        "preprocessing": "uint8 BGR frame",
        "quantization": {},
        "screentime_version": "0.1.0",
        "smoothing": {},
    }
    path = with_card(make_color_model(tmp_path / "old.onnx"), json.dumps(old))
    metrics = Engine(path, "cpu").card.metrics
    assert metrics.validation["accuracy"] == 0.8 and metrics.class_counts["jerry"] == 5 and metrics.seed == 0
    assert metrics.heldout_counts == {} and metrics.cross_validation == {} and metrics.crop == {}
    assert (metrics.heldout_design_effect, metrics.frame_spacing_s) == (1.0, 0.0)  # no correction
    # No metrics at all, or null ones, load too: every default.
    bare = {k: v for k, v in old.items() if k != "metrics"}
    for card in (bare, {**bare, "metrics": None}, {**bare, "metrics": {"seed": None, "heldout_counts": None}}):
        assert ModelCard.from_metadata({METADATA_KEY: json.dumps(card)}).metrics == CardMetrics()


@pytest.mark.parametrize(
    ("metrics", "key", "says"),
    [
        ({"heldout_design_effect": "big"}, "heldout_design_effect", "should be a number, not a string"),
        ({"frame_spacing_s": True}, "frame_spacing_s", "should be a number, not a boolean"),
        ({"seed": 1.5}, "seed", "should be an integer, not a number"),
        ({"heldout_counts": [1, 2, 3, 4]}, "heldout_counts", "should be a JSON object"),
        ({"heldout_counts": {"tom": [1, 2, 3]}}, "heldout_counts", "not a list of 3 for 'tom'"),
        ({"heldout_counts": {"tom": [1, 2, 3, -4]}}, "heldout_counts", "four counts, not a negative number for 'tom'"),
        ({"class_counts": {"tom": "5"}}, "class_counts", "not a string for 'tom'"),
        ({"cross_validation": 0.9}, "cross_validation", "should be a JSON object, not a number"),
        ({"cross_validation_method": ["x"]}, "cross_validation_method", "should be a string, not a list"),
        ({"crop": "auto"}, "crop", "should be a JSON object, not a string"),
    ],
)
def test_a_metric_of_the_wrong_type_is_refused_in_one_line(tmp_path, metrics, key, says):
    card = ModelCard(classes=CLASSES, input_width=32, input_height=32).to_metadata()[METADATA_KEY]
    broken = json.dumps({**json.loads(card), "metrics": {**FULL.to_dict(), **metrics}})
    path = with_card(make_color_model(tmp_path / "bad.onnx"), broken)
    with pytest.raises(BadInputError) as caught:
        Engine(path, "cpu")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path)) and f"'{key}'" in message and says in message


def test_metrics_that_are_not_an_object_are_refused():
    with pytest.raises(BadInputError, match=r"^m\.json: the model card's metrics should be a JSON object, not a list$"):
        read_card_metrics([1, 2], "m.json")


def test_keys_that_are_not_the_cards_are_left_out():
    # MODEL.metrics.json holds much more than the card carries; a newer card may carry more too.
    assert read_card_metrics({"ensemble": 5, "sets": [], "seed": 3}) == CardMetrics(seed=3)
