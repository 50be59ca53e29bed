"""Frames showing both characters: `1;2` labels train a multi-label model whose frames count for each."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stream import watch
from stream.model.engine import Engine
from tests.helpers import color_frame
from training.evaluate import evaluate
from training.train import TrainConfig, train

pytestmark = pytest.mark.slow
CLASSES = ("neither", "jerry", "tom")
KINDS = [(0,), (1,), (2,), (1, 2)]  # both: left half red (jerry), right half blue (tom)


def both_frame(size=(48, 40), seed=0) -> np.ndarray:
    image = color_frame(1, size, noise=40, seed=seed)
    image[:, size[0] // 2 :] = color_frame(2, (size[0] - size[0] // 2, size[1]), noise=40, seed=seed + 1)
    return image


def frame_for(kind: tuple[int, ...], seed: int) -> np.ndarray:
    return both_frame(seed=seed) if len(kind) > 1 else color_frame(kind[0], (48, 40), noise=40, seed=seed)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    frames = tmp_path_factory.mktemp("frames")
    rows = ["Image_ID,Class"]
    for i in range(80):
        kind = KINDS[(i // 2) % 4]
        cv2.imwrite(str(frames / f"frame{i}.jpg"), frame_for(kind, i))
        rows.append(f"frame{i}.jpg,{';'.join(map(str, kind))}")
    (frames / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path_factory.mktemp("model") / "multi.keras"
    mp = pytest.MonkeyPatch()
    mp.setenv("SCREENTIME_CACHE", str(tmp_path_factory.mktemp("cache")))
    result = train(
        TrainConfig(
            frames=frames,
            labels=frames / "labels.csv",
            output=out,
            classes=CLASSES,
            backbone_weights="random",
            epochs=150,
            ensemble=1,  # the ensemble is tested elsewhere; one head keeps this test quick
            input_size=(32, 32),
            progress=False,
            seed=2,
        )
    )
    mp.undo()
    from export.onnx_export import export

    return frames, result, export(result.model_path, out.with_suffix(".onnx"))


def test_multi_label_training_and_card(model):
    frames, result, exported = model
    assert result.metrics["multi_label"] is True
    assert result.metrics["cross_validation"]["accuracy"] >= 0.8
    assert Engine(exported.path, "cpu").card.multi_label is True
    evaluation = evaluate(exported.path, frames, frames / "labels.csv")
    assert evaluation.metrics["multi_label"] is True and evaluation.metrics["accuracy"] >= 0.8
    true = evaluation.screen_time_s["true"]
    assert true == {"neither": 20.0, "jerry": 40.0, "tom": 40.0}  # both-frames count for each character


def test_watch_counts_each_character_on_shared_frames(model, tmp_path):
    _, _, exported = model
    # 0-2 s jerry alone, 2-6 s both, 6-8 s tom alone.
    video = tmp_path / "both.mp4"
    from fractions import Fraction

    import av

    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 40, "yuv420p"
        for i in range(80):
            t = i / 10
            kind = (1,) if t < 2 else (1, 2) if t < 6 else (2,)
            frame = av.VideoFrame.from_ndarray(frame_for(kind, i), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    report = watch(video, exported.path, every_s=0.5).run()
    assert report.multi_label
    assert report.screen_time_s["jerry"] == pytest.approx(6.0, abs=1.0)
    assert report.screen_time_s["tom"] == pytest.approx(6.0, abs=1.0)
    assert sum(report.screen_time_s.values()) > report.duration_s  # overlap, and the report says why
    assert "multi-label" in report.to_dict()["note"]
    assert any(e.label == "jerry+tom" for e in report.timeline)
