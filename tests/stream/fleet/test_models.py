"""A camera's model swapped while it runs: checked beside the old one, taken between batches."""

from __future__ import annotations

import numpy as np
import pytest

from stream.errors import ModelError
from stream.fleet.models import Engines, Swappable, check_runs
from stream.model.engine import Engine
from tests.helpers import make_color_model


def test_swap_takes_the_next_batch_and_names_who_made_each_result(tmp_path):
    old = Engine(make_color_model(tmp_path / "old.onnx"), "cpu")
    new = Engine(make_color_model(tmp_path / "new.onnx", sharpness=0.2), "cpu")
    engine = Swappable(old)
    picture = np.full((32, 32, 3), (60, 60, 180), np.uint8)  # between grey and red
    sure = engine.predict([picture])
    assert engine.made_by == old.sha256
    assert engine.swap(new) and engine.sha256 == new.sha256  # the next batch's model ...
    assert engine.made_by == old.sha256  # ... while the latest results are still the old one's
    less_sure = engine.predict([picture])
    assert engine.made_by == new.sha256 and less_sure.max() < sure.max()
    assert not engine.swap(new)  # the same engine again: nothing to do


def test_a_model_with_other_classes_is_refused(tmp_path):
    engine = Swappable(Engine(make_color_model(tmp_path / "a.onnx"), "cpu"))
    other = Engine(make_color_model(tmp_path / "b.onnx", classes=("neither", "jerry", "spike")), "cpu")
    with pytest.raises(ModelError, match="classes"):
        engine.swap(other)
    smaller = Engine(make_color_model(tmp_path / "c.onnx", size=(16, 16)), "cpu")
    with pytest.raises(ModelError, match="input size"):
        engine.swap(smaller)


def test_engines_are_shared_by_path_and_content(tmp_path):
    path = make_color_model(tmp_path / "m.onnx")
    engines = Engines()
    first = engines.get(path, "cpu")
    assert engines.get(path, "cpu") is first
    make_color_model(tmp_path / "m.onnx", sharpness=2.0)  # a new file at the same path
    second = engines.get(path, "cpu")
    assert second is not first
    check_runs(first)
    engines.keep({second})
    assert engines.get(path, "cpu") is second
