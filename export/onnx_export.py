"""`screentime export`: one ONNX file the stream side needs nothing else to use.

The graph takes uint8 frames (N, H, W, 3) in OpenCV's BGR order and does the preprocessing
itself; the model card (classes, input size, channel order, training metrics, version) rides in
the file's metadata. Conversion goes through `tf2onnx.convert.from_function` on a tf.function
wrapping the Keras 3 functional model, and is checked against Keras on real frames.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.onnx_files import onnx_probs, sample_frames, write_card
from stream.errors import BadInputError, ModelError
from stream.model.card import FEATURES_OUTPUT, PROBS_OUTPUT, ModelCard, Tuning
from stream.model.card_metrics import read_card_metrics
from stream.outputs.atomic import check_writable
from stream.version import __version__

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4
OPSET = 17


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_diff: float
    parity_frames: int
    int8_path: Path | None = None
    int8_agreement: float | None = None


def load_keras(model_path: Path):
    """Load a model `screentime train` wrote (its custom preprocessing layer registered)."""
    import keras

    import training.model  # noqa: F401  registers CaffePreprocess for deserialisation

    if not model_path.is_file():
        raise BadInputError(f"{model_path}: no such model file")
    try:
        return keras.models.load_model(str(model_path), compile=False)
    except Exception as exc:
        raise ModelError(f"{model_path}: not a Keras model screentime can load ({type(exc).__name__})") from None


def metrics_file(model_path: Path) -> Path:
    """MODEL.metrics.json, which `train` wrote beside the model: the card is made from it."""
    from training.train import metrics_path_for

    path = metrics_path_for(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: missing; it is written by 'screentime train' beside the model")
    return path


def card_for(model, metrics: dict, source: str = "metrics") -> ModelCard:
    """The card of `model` from its MODEL.metrics.json (`source` names it in errors); of its
    training metrics, the card carries those `stream.model.card_metrics` declares: honest
    accuracy, and the held-out mistakes `watch` and `evaluate` turn into screen-time intervals."""
    _, height, width, _ = model.input_shape
    return ModelCard(
        classes=tuple(metrics["classes"]),
        input_width=int(width),
        input_height=int(height),
        background=metrics.get("background", 0),
        multi_label=bool(metrics.get("multi_label", False)),
        backbone=metrics.get("backbone", {}),
        metrics=read_card_metrics(metrics, source),
        head=metrics.get("head", "global"),
        tuning=_tuning(metrics.get("tuning") or {}),
        screentime_version=__version__,
    )


def _tuning(record: dict) -> dict:
    """The training record of the tuned layers, as the card's `Tuning` keys (empty: nothing tuned)."""
    if not record:
        return {}
    from dataclasses import asdict

    known = Tuning.__dataclass_fields__
    fields: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in record.items() if k in known}
    return asdict(Tuning(**fields))


def convert(model, output: Path) -> None:
    """tf2onnx on a tf.function: uint8 in, cast inside the graph; out: probabilities and the
    pooled backbone features (outputs named by `stream.model.card`)."""
    import tensorflow as tf
    import tf2onnx

    from training.model import with_features

    _, height, width, channels = model.input_shape
    both = with_features(model)

    @tf.function(input_signature=[tf.TensorSpec((None, height, width, channels), tf.uint8, name="frames")])
    def serve(frames):
        out = both(tf.cast(frames, tf.float32), training=False)
        return {PROBS_OUTPUT: out["probs"], FEATURES_OUTPUT: out["features"]}

    tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=OPSET, output_path=str(output))


def export(
    model_path: str | Path,
    output: str | Path,
    frames: str | Path | None = None,
    int8: bool = False,
    calibration: str | Path | None = None,
) -> ExportResult:
    """Convert, stamp the model card, check parity; optionally write a static INT8 twin."""
    model_path, output = Path(model_path), Path(output)
    if output.suffix != ".onnx":
        raise BadInputError(f"{output}: the output must end in .onnx")
    try:
        check_writable(output)
    except OSError as exc:
        raise BadInputError(f"{output}: cannot write ({exc})") from None
    if int8 and calibration is None:
        raise BadInputError("--int8 needs --calibration DIR (frames like the ones it will see)")
    metrics_path = metrics_file(model_path)
    metrics = json.loads(metrics_path.read_text())
    model = load_keras(model_path)
    card = card_for(model, metrics, str(metrics_path))
    convert(model, output)
    write_card(output, card)

    frames_dir = Path(frames) if frames else Path(calibration) if calibration else _training_frames(metrics)
    batch = sample_frames(frames_dir, card.input_size)
    expected = model.predict(batch.astype(np.float32), verbose=0)
    diff = float(np.max(np.abs(onnx_probs(output, batch) - expected)))
    if diff > PARITY_TOLERANCE:
        output.unlink(missing_ok=True)
        raise ModelError(f"ONNX output differs from Keras by {diff:.2e} (> {PARITY_TOLERANCE:g}); export refused")
    result = ExportResult(output, diff, len(batch))
    if int8:
        from export.quantize import quantize_int8

        int8_path = output.with_name(output.stem + ".int8.onnx")
        assert calibration is not None  # checked above: --int8 needs --calibration
        agreement = quantize_int8(output, int8_path, Path(calibration), card)
        result = ExportResult(output, diff, len(batch), int8_path, agreement)
    return result


def _training_frames(metrics: dict) -> Path | None:
    directory = metrics.get("frames_dir")
    return Path(directory) if directory and Path(directory).is_dir() else None
