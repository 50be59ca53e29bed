"""`evaluate` on a case small enough to check by hand (the tiny colour model: no TensorFlow)."""

import json

import cv2
import pytest

from tests.helpers import color_frame
from training.evaluate import evaluate


def write_labelled_set(folder, shown, claimed, stamps) -> None:
    """Frame i shows colour `shown[i]`, is labelled `claimed[i]` and was taken at `stamps[i]` s."""
    rows = ["Image_ID,Class"]
    for i, (s, c) in enumerate(zip(shown, claimed, strict=True)):
        cv2.imwrite(str(folder / f"frame{i}.png"), color_frame(s, noise=10, seed=i))
        rows.append(f"frame{i}.png,{c}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    (folder / "frames.csv").write_text(
        "Image_ID,timestamp_s\n" + "".join(f"frame{i}.png,{t}\n" for i, t in enumerate(stamps))
    )


def test_evaluate_numbers_by_hand(tmp_path, color_model):
    # Frames show colours 0,0,1,1,2,2; the labels claim 0,1,1,1,2,0.
    # Half-second spacing from frames.csv, except a longer last gap (time comes from timestamps).
    write_labelled_set(tmp_path, [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], [0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    result = evaluate(color_model, tmp_path, tmp_path / "labels.csv")
    m = result.metrics
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[1, 0, 1], [1, 2, 0], [0, 0, 1]]  # rows: claimed (true), columns: predicted
    assert m["per_class"]["jerry"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "support": 3}
    assert m["per_class"]["tom"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    # Each frame stands for the typical spacing (0.5 s), never for the 1 s gap before the last.
    assert result.screen_time_s["true"] == pytest.approx({"neither": 0.5 + 0.5, "jerry": 1.5, "tom": 0.5})
    assert result.screen_time_s["predicted"] == pytest.approx({"neither": 1.0, "jerry": 1.0, "tom": 1.0})
    json.dumps(result.to_dict())  # JSON-ready


def test_evaluate_states_a_screen_time_interval_from_the_card(tmp_path):
    from stream.model.card_metrics import CardMetrics
    from tests.helpers import make_color_model

    counts = {"neither": (30, 3, 3, 60), "jerry": (25, 2, 4, 65), "tom": (28, 4, 2, 62)}
    model = make_color_model(tmp_path / "m.onnx", metrics=CardMetrics(heldout_counts=counts))
    rows = ["Image_ID,Class"]
    for i in range(12):
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), color_frame(i % 3, noise=10, seed=i))
        rows.append(f"frame{i}.png,{i % 3}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    result = evaluate(model, tmp_path, tmp_path / "labels.csv")
    st = result.screen_time_s
    assert set(st["interval"]) == {"neither", "jerry", "tom"}
    for name, (low, high) in st["interval"].items():
        assert low <= st["predicted"][name] <= high or low <= st["true"][name] <= high
    assert result.metrics["interval"]["classes"] == 3 and 0 <= result.metrics["interval"]["true_inside"] <= 3
    json.dumps(result.to_dict())


def test_frame_seconds_never_credit_a_gap_between_runs():
    from training.evaluate import frame_seconds

    # Two runs of 1-s frames with a 100-s hole between them (frames of other classes left out).
    times = [0.0, 1.0, 2.0, 102.0, 103.0]
    assert frame_seconds(times) == [1.0, 1.0, 1.0, 1.0, 1.0]
    assert frame_seconds([0.0, 0.5, 1.0, 5.0]) == [0.5, 0.5, 0.5, 0.5]
    assert frame_seconds([7.0]) == [1.0]


def test_evaluate_on_frames_showing_several_classes(tmp_path, color_model):
    # Frames 0..5 at 1-s spacing with a 50-s hole after frame 2; frames 1 and 4 show jerry and tom.
    write_labelled_set(
        tmp_path, [0, 1, 1, 2, 2, 0], ["0", "1;2", "1", "2", "1;2", "0"], [0.0, 1.0, 2.0, 52.0, 53.0, 54.0]
    )
    result = evaluate(color_model, tmp_path, tmp_path / "labels.csv")
    # The single-label model names jerry on frame 1 and tom on frame 4: both right.
    assert result.metrics["accuracy"] == 1.0
    assert result.metrics["several_classes"] == 2
    # Six frames of one second each: 6 s analysed, and the two-character frames count for both.
    assert result.screen_time_s["true"] == pytest.approx({"neither": 2.0, "jerry": 3.0, "tom": 3.0})
    assert result.screen_time_s["predicted"] == pytest.approx({"neither": 2.0, "jerry": 2.0, "tom": 2.0})


def test_a_verdict_outside_a_several_class_label_is_wrong(tmp_path, color_model):
    # A frame showing colour 0 ("neither") labelled 1;2: the model's verdict names neither class.
    rows = ["Image_ID,Class"]
    for i, (s, c) in enumerate([(0, "1;2"), (1, "1"), (2, "2")]):
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), color_frame(s, noise=10, seed=i))
        rows.append(f"frame{i}.png,{c}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    result = evaluate(color_model, tmp_path, tmp_path / "labels.csv")
    assert result.metrics["accuracy"] == pytest.approx(2 / 3)
    assert result.metrics["confusion"][1] == [1, 1, 0]  # counted against its first class, jerry
