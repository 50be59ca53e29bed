"""One verdict: the same frame gets the same classes in `watch`, `batch`, `evaluate` and the labeller."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stream.batch.tally import tally
from stream.model.engine import Engine
from stream.model.verdict import VerdictRule, to_prediction, verdict
from tests.helpers import make_color_model, make_presence_model
from training.evaluate import evaluate
from training.label_server import Predictor

# BGR solid colours; the presence model's answer for each (neither=green, jerry=red, tom=blue channel)
SWATCHES = {
    "grey": (128, 128, 128),  # all three >= 0.5: the background is dropped beside characters
    "red": (0, 0, 220),  # jerry alone
    "magenta": (220, 0, 220),  # jerry and tom
    "black": (0, 0, 0),  # none: the background alone
    "olive-red": (0, 128, 220),  # background and jerry over 0.5: jerry alone
}
EXPECTED = {"grey": (1, 2), "red": (1,), "magenta": (1, 2), "black": (0,), "olive-red": (1,)}


@pytest.mark.parametrize(
    ("probs", "rule", "expected"),
    [
        ([0.2, 0.7, 0.1], VerdictRule(False, 0), (1,)),
        ([0.9, 0.05, 0.05], VerdictRule(False, 0), (0,)),  # single-label: the background is a class like any
        ([0.9, 0.8, 0.5], VerdictRule(True, 0), (1, 2)),  # at the threshold counts; never the background beside
        ([0.3, 0.1, 0.2], VerdictRule(True, 0), (0,)),  # nothing present: the background
        ([0.3, 0.1, 0.2], VerdictRule(True, None), (0,)),  # no background: the likeliest
        ([0.1, 0.3, 0.2], VerdictRule(True, None), (1,)),
    ],
)
def test_verdict_rule(probs, rule, expected):
    assert verdict(np.array(probs), rule) == expected


def write_swatches(folder, size=(64, 48)):
    names = list(SWATCHES)
    for i, name in enumerate(names):
        image = np.empty((size[1], size[0], 3), np.uint8)
        image[:] = SWATCHES[name]
        cv2.imwrite(str(folder / f"frame{i}.png"), image)
    (folder / "labels.csv").write_text("Image_ID,Class\n" + "".join(f"frame{i}.png,0\n" for i in range(len(names))))
    return names


@pytest.mark.parametrize("multi", [True, False])
def test_same_frame_same_verdict_in_watch_batch_evaluate_and_labeller(tmp_path, multi):
    model = (make_presence_model if multi else make_color_model)(tmp_path / "m.onnx")
    frames = tmp_path / "frames"
    frames.mkdir()
    names = write_swatches(frames)
    paths = {f"frame{i}.png": frames / f"frame{i}.png" for i in range(len(names))}
    engine = Engine(model, "cpu")
    card = engine.card
    probs = engine.predict([cv2.imread(str(p)) for p in paths.values()])
    as_names = [tuple(card.classes[i] for i in verdict(row, card)) for row in probs]

    watch = [to_prediction(row, card, float(t)).present for t, row in enumerate(probs)]
    timeline = tally([float(t) for t in range(len(probs))], list(probs), card, None, smoothing=1).timeline
    batch = [tuple(entry.label.split("+")) for entry in timeline]
    evaluated = [p.predicted for p in evaluate(model, frames, frames / "labels.csv", device="cpu").predictions]
    guesses = Predictor(model, "cpu").predict(paths)
    labeller = [tuple(card.classes[i] for i in guesses[n]["classes"]) for n in paths]

    assert watch == batch == evaluated == labeller == as_names
    if multi:
        assert as_names == [tuple(card.classes[i] for i in EXPECTED[n]) for n in names]
    else:
        assert len(set(as_names)) > 1 and all(len(v) == 1 for v in as_names)
