"""The model card: what the ONNX file tells the stream side about itself.

The ONNX file is the contract between `export/` and `stream/`. Everything the stream needs
(class names, input size, channel order, training metrics) travels in one JSON metadata entry
under `METADATA_KEY`; this module is the only place that spells it (and `card_metrics` the only
one that spells the training metrics' keys).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from stream.errors import ModelError
from stream.model.card_metrics import CardMetrics, read_card_metrics

METADATA_KEY = "screentime.card"
FORMAT_VERSION = 1
CHANNEL_ORDER = "BGR"  # what OpenCV gives; the graph expects frames exactly as decoded
PROBS_OUTPUT = "probs"  # graph output: class probabilities (N, classes)
FEATURES_OUTPUT = "features"  # graph output: pooled backbone features (N, F); older models lack it


@dataclass(frozen=True)
class Tuning:
    """Which backbone layers learnt the labelled sets (`train --tune`), on what and for how long.
    Absent (an empty dict in the card) when the backbone stayed frozen."""

    layers: tuple[str, ...]  # e.g. ("block5_conv3",)
    sets: tuple[str, ...]  # the labelled sets' frame directories
    frames: int  # training frames per epoch, views included
    epochs: int
    best_epoch: int
    seconds: float  # wall time of the tuning, the head's settling included
    device: str  # "cpu" or "gpu"
    learning_rate: float
    heldout_accuracy: float | None = None  # on the one fold neither the tuned layers nor its head saw


@dataclass(frozen=True)
class ModelCard:
    """Self-description of a screentime classifier, stored inside its ONNX file."""

    classes: tuple[str, ...]
    input_width: int
    input_height: int
    background: int | None = 0
    channel_order: str = CHANNEL_ORDER
    multi_label: bool = False
    preprocessing: str = "uint8 BGR frame, resized by the caller; mean subtraction in the graph"
    backbone: dict[str, Any] = field(default_factory=dict)
    metrics: CardMetrics = field(default_factory=CardMetrics)  # how it did at training, on which frames
    smoothing: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)  # empty for fp32
    head: str = "global"  # global: one verdict from pooled features; spatial: presence per map position
    tuning: dict[str, Any] = field(default_factory=dict)  # asdict(Tuning): empty when nothing was tuned
    screentime_version: str = ""
    format: int = FORMAT_VERSION

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height), the order OpenCV's resize takes."""
        return (self.input_width, self.input_height)

    @property
    def characters(self) -> tuple[str, ...]:
        """Class names that count as on-screen characters (all but the background)."""
        return tuple(c for i, c in enumerate(self.classes) if i != self.background)

    @property
    def tuned(self) -> Tuning | None:
        """The tuning record, or None for a frozen backbone (and for cards written before it existed)."""
        if not self.tuning:
            return None
        known = Tuning.__dataclass_fields__
        data = {k: v for k, v in self.tuning.items() if k in known}
        return Tuning(**{**data, "layers": tuple(data["layers"]), "sets": tuple(data["sets"])})

    def to_metadata(self) -> dict[str, str]:
        data = {**asdict(self), "metrics": self.metrics.to_dict()}
        return {METADATA_KEY: json.dumps(data, sort_keys=True)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str = "model") -> ModelCard:
        """Parse the card; a file without one was not made by screentime. Its metrics are checked
        (`read_card_metrics`: a wrong type is refused, a key older cards lack keeps its default)."""
        raw = metadata.get(METADATA_KEY)
        if raw is None:
            raise ModelError(f"{source}: not a screentime model (no '{METADATA_KEY}' metadata)")
        try:
            data = json.loads(raw)
            data["classes"] = tuple(data["classes"])
            data["metrics"] = read_card_metrics(data.get("metrics") or {}, source)
            known = cls.__dataclass_fields__
            card = cls(**{k: v for k, v in data.items() if k in known})
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{source}: screentime metadata is unreadable ({exc})") from None
        if card.format > FORMAT_VERSION:
            raise ModelError(
                f"{source}: model card format {card.format} is newer than this screentime "
                f"understands ({FORMAT_VERSION}); upgrade screentime"
            )
        if not card.classes or card.input_width < 1 or card.input_height < 1:
            raise ModelError(f"{source}: screentime metadata has no classes or input size")
        return card
