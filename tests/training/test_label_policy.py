"""One CSV policy: `read_labels` (train, evaluate) and the labeller's store read labels.csv alike."""

from __future__ import annotations

import cv2

from tests.helpers import color_frame
from training.labels import LabelStore, read_labels


def test_the_labeller_and_training_agree_on_repeated_and_conflicting_rows(tmp_path):
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"frame{i}.jpg"), color_frame(i % 3))
    rows = ["frame0.jpg,1", "frame0.jpg,1", "frame1.jpg,1", "frame1.jpg,2", "frame2.jpg,2", "frame3.jpg,"]
    (tmp_path / "labels.csv").write_text("Image_ID,Class\n" + "\n".join(rows) + "\n")
    training = read_labels(tmp_path / "labels.csv", tmp_path, 3)
    store = LabelStore(tmp_path, 3)
    assert dict(zip([p.name for p in training.paths], training.labels, strict=True)) == {
        "frame0.jpg": (1,),
        "frame2.jpg": (2,),
    }
    assert training.dropped == ["frame1.jpg"]
    assert store.labels == {"frame0.jpg": (1,), "frame1.jpg": (), "frame2.jpg": (2,), "frame3.jpg": ()}
    assert {n for n, c in store.labels.items() if c} == {p.name for p in training.paths}
