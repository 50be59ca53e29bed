"""A batch's second stage: an actor pool of `watch`'s ONNX engine over the decoded pictures.

Each actor loads the model once and classifies whatever batches Ray Data hands it, from any
video; rows without a picture (a video's closing record) pass through untouched. Only the
probabilities travel on: pictures are dropped here.
"""

from __future__ import annotations

import numpy as np

from stream.batch.decode import NO_PICTURE, ray_node_id
from stream.model.engine import Device, Engine


class InferenceWorker:
    """One engine: GPU providers when Ray gave this actor a GPU, else `threads` CPU threads."""

    def __init__(self, model: str, gpu: bool, threads: int) -> None:
        self.engine = Engine(model, Device.AUTO if gpu else Device.CPU, threads=0 if gpu else threads)
        self.node = ray_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        seq = batch["seq"]
        probs = np.zeros((len(seq), len(self.engine.card.classes)), np.float32)
        todo = seq != NO_PICTURE
        if todo.any():
            probs[todo] = self.engine.predict(list(batch["image"][todo]))
        return {
            "video": batch["video"],
            "seq": seq,
            "t_s": batch["t_s"],
            "probs": probs,
            "record": batch["record"],
            "node": np.array([self.node] * len(seq), dtype=object),
            "device": np.array([self.engine.device_name] * len(seq), dtype=object),
        }
