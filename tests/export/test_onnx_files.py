"""INT8 calibration and the parity check see frames as the stream shows them to the model."""

from __future__ import annotations

import cv2
import numpy as np

from export.onnx_files import sample_frames


def test_calibration_frames_have_their_black_bars_cut(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):  # a 4:3 picture pillarboxed into 16:9: 40 px of black each side
        frame = np.zeros((90, 160, 3), np.uint8)
        frame[:, 40:120] = rng.integers(60, 255, (90, 80, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"frame{i}.png"), frame)
    frames = sample_frames(tmp_path, (64, 36), limit=4)
    assert frames.shape == (4, 36, 64, 3)
    edges = np.concatenate([frames[:, :, :2], frames[:, :, -2:]], axis=2)
    assert edges.mean() > 60  # picture to the edges: no bar left
