"""What the model card says of how the model did at training: every key of its `metrics`, once.

`train` writes them into MODEL.metrics.json (beside its other records), `export` copies them
into the ONNX file's card, and `watch`, `batch` and `evaluate` read them back (the screen-time
intervals). The field names are the JSON keys; no other module spells one. A card made before a
key existed lacks it, and the field keeps its default, which states nothing and corrects nothing.

Which frames a figure is measured on decides what it is worth: "held-out" figures come from
frames the scoring head neither trained on nor chose its checkpoint on (time-block
cross-validation); "validation" figures (cards from before it) from frames each head chose its
checkpoint on, so they flatter the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from stream.errors import BadInputError

Counts = tuple[int, int, int, int]  # true pos, false pos, false neg, true neg of "on screen"
_READ = "read"  # field metadata: the function that checks and converts the JSON value


class _Wrong(ValueError):
    """A value of the wrong type: what it should be, and what was found (default: the value's kind)."""

    def __init__(self, wanted: str, found: str = "") -> None:
        super().__init__(wanted)
        self.wanted, self.found = wanted, found


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Wrong("a JSON object")
    return dict(value)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _Wrong("a string")
    return value


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Wrong("an integer")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Wrong("a number")
    return float(value)


def _class_counts(value: object) -> dict[str, int]:
    counts = _object(value)
    for name, n in counts.items():
        if not _is_count(n):
            raise _Wrong("a JSON object of class: count", f"{_kind(n)} for {name!r}")
    return counts


def _presence(value: object) -> dict[str, Counts]:
    counts = _object(value)
    for name, row in counts.items():
        if not isinstance(row, list | tuple):
            found = _kind(row)
        elif len(row) != 4:
            found = f"a list of {len(row)}"
        else:
            found = next((_kind(n) for n in row if not _is_count(n)), "")
        if found:
            raise _Wrong("a JSON object of class: [tp, fp, fn, tn], four counts", f"{found} for {name!r}")
    return {name: (row[0], row[1], row[2], row[3]) for name, row in counts.items()}


def _is_count(value: object) -> bool:
    """An integer (JSON's true and false are not) not below 0."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _reads(read: Callable[[object], Any]) -> dict[str, Any]:
    return {_READ: read}


@dataclass(frozen=True)
class CardMetrics:
    """The card's `metrics`: how the model did at training, and on which frames."""

    # Held-out: `training.metrics.score` over every labelled frame, each scored by the one head that
    # neither trained on it nor chose its checkpoint on it: accuracy, samples, per-class
    # precision/recall/support (single-label: the confusion matrix too). Empty: not stated.
    cross_validation: dict[str, Any] = field(default_factory=dict, metadata=_reads(_object))
    # In words, how those frames were held out (folds, gap, heads; what tuned layers saw).
    cross_validation_method: str = field(default="", metadata=_reads(_text))
    # Held-out, the same frames: per class, (tp, fp, fn, tn) of "on screen", what the screen-time
    # intervals know of the model's mistakes (stream.confidence.interval). Empty: no intervals.
    heldout_counts: dict[str, Counts] = field(default_factory=dict, metadata=_reads(_presence))
    # Held-out, the same frames in time order per set: how many consecutive frames carry the
    # information of one, judged by the mistakes' runs (>= 1; 1: no correction, older cards).
    heldout_design_effect: float = field(default=1.0, metadata=_reads(_number))
    # All labelled frames: their typical spacing in seconds; times the design effect, the time over
    # which a run's samples are one observation (0: unknown, samples not capped).
    frame_spacing_s: float = field(default=0.0, metadata=_reads(_number))
    # All labelled frames: how many show each class (a frame showing several counts for each).
    class_counts: dict[str, int] = field(default_factory=dict, metadata=_reads(_class_counts))
    # The training run's random seed (None: not stated).
    seed: int | None = field(default=None, metadata=_reads(_integer))
    # All labelled frames: whether their black bars were cut ({mode, cropped_sets, sets}), as the
    # stream cuts them. Empty: not stated (cards from before cropping).
    crop: dict[str, Any] = field(default_factory=dict, metadata=_reads(_object))
    # Validation, older cards only (before cross-validation; never written now): `score` over the
    # out-of-fold frames each head chose its checkpoint on, so optimistic.
    validation: dict[str, Any] = field(default_factory=dict, metadata=_reads(_object))
    # Older cards only: how those validation frames were chosen, in words.
    validation_split: str = field(default="", metadata=_reads(_text))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready `metrics` of a card (and those keys of MODEL.metrics.json); what states
        nothing (None, empty) is left out, as the default says the same."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != "" and v != {}}


def read_card_metrics(data: object, source: str = "model") -> CardMetrics:
    """A card's `metrics` (or MODEL.metrics.json, whose other keys are not the card's), checked:
    a missing or null key keeps its default (older cards), a value of the wrong type is refused
    in one line naming the key."""
    if not isinstance(data, Mapping):
        raise BadInputError(f"{source}: the model card's metrics should be a JSON object, not {_kind(data)}")
    values: dict[str, Any] = {}
    for f in fields(CardMetrics):
        value = data.get(f.name)
        if value is None:
            continue
        try:
            values[f.name] = f.metadata[_READ](value)
        except _Wrong as exc:
            found = exc.found or _kind(value)
            raise BadInputError(
                f"{source}: the model card's metric '{f.name}' should be {exc.wanted}, not {found}"
            ) from None
    return CardMetrics(**values)


def _kind(value: object) -> str:
    """A JSON value's kind, for messages (never the value itself: it may be long)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return "a negative number"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)
