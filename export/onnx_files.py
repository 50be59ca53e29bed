"""The ONNX file's own chores, shared by `export` and `quantize`: write the card into a file,
pick real frames to check a graph on, and run a file on them.

Its own module so `quantize` (which `export` calls) need not import `export` back.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stream.model.card import PROBS_OUTPUT, ModelCard

log = logging.getLogger(__name__)


def write_card(path: Path, card: ModelCard) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in card.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "screentime"
    model.doc_string = f"screentime classifier: {', '.join(card.classes)}"
    tmp = path.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    tmp.replace(path)


def sample_frames(directory: Path | None, size: tuple[int, int], limit: int = 16, seed: int = 0) -> np.ndarray:
    """Up to `limit` real frames from `directory`, evenly spread, their black bars cut as `watch`
    cuts them (`--crop auto`, the set's own bars), so INT8 calibration and the parity check see
    what the model will see; synthetic ones if there are none."""
    from training.images import load_images, set_crop

    paths = sorted(directory.glob("*.jpg")) + sorted(directory.glob("*.png")) if directory else []
    if paths:
        assert directory is not None  # frames are only found in a directory
        pick = np.linspace(0, len(paths) - 1, min(limit, len(paths))).round().astype(int)
        return load_images([paths[i] for i in pick], size, set_crop(directory, paths))
    log.warning("no frames for the parity check; using random frames")
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (limit, size[1], size[0], 3), dtype=np.uint8)


def onnx_probs(path: Path, frames: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([PROBS_OUTPUT], {session.get_inputs()[0].name: frames})[0]
