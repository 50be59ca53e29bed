"""A camera's model, swappable while it runs: the new engine is loaded and checked beside the old
one, then takes over between two batches; every result says which model made it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from stream.errors import ModelError
from stream.model.engine import Engine, choose_model, file_sha256

log = logging.getLogger(__name__)


class Engines:
    """Loaded engines by (path, content): cameras sharing a model share one engine."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[Path, str, str], Engine] = {}
        self._lock = threading.Lock()

    def get(self, model: Path, device: str, threads: int = 0) -> Engine:
        """`threads`: the engine's own (0: onnxruntime's choice, every core)."""
        path = choose_model(model, device)
        key = (path, file_sha256(path), device)
        with self._lock:
            if key not in self._loaded:
                engine = Engine(path, device, threads)
                # Engine hashes its file when first asked: ask now, while the file is the one loaded
                if engine.sha256 != key[1]:
                    raise ModelError(f"{path}: replaced while it was loading (the next change reloads it)")
                check_runs(engine)
                self._loaded[key] = engine
            return self._loaded[key]

    def keep(self, used: set[Engine]) -> None:
        """Let go of the engines no camera uses any more (a swapped-out model's memory)."""
        with self._lock:
            self._loaded = {k: e for k, e in self._loaded.items() if e in used}


def check_runs(engine: Engine) -> None:
    """One grey frame through the model: a file that loads but cannot run is refused before use."""
    width, height = engine.card.input_size
    probs = engine.predict([np.full((height, width, 3), 128, np.uint8)])
    if probs.shape != (1, len(engine.card.classes)) or not np.all(np.isfinite(probs)):
        raise ModelError(f"{engine.path}: gives no usable probabilities on a test frame")


class Swappable:
    """The engine a camera's pipeline calls. `swap` replaces the model between batches; `sha256`
    names the model that takes the next batch (a near-duplicate never reuses another model's
    result: stream.run.pipeline), `made_by` the model that made the latest results."""

    def __init__(self, engine: Engine) -> None:
        self.current = engine
        self.used = engine

    @property
    def card(self):
        return self.current.card

    @property
    def path(self) -> Path:
        return self.current.path

    @property
    def sha256(self) -> str:
        return self.current.sha256

    @property
    def made_by(self) -> str:
        return self.used.sha256

    @property
    def device_name(self) -> str:
        return self.current.device_name

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        engine = self.current  # one engine per batch, whatever a swap does meanwhile
        probs = engine.predict(images)
        self.used = engine
        return probs

    def predict_with_features(self, images: list[np.ndarray]):
        engine = self.current
        out = engine.predict_with_features(images)
        self.used = engine
        return out

    def swap(self, new: Engine) -> bool:
        """Take `new` from the next batch on; refused (ModelError) when its classes or input differ,
        since the run's totals and its frames' preparation are the old model's. False: no change."""
        old = self.current
        if new is old:
            return False
        if tuple(new.card.classes) != tuple(old.card.classes):
            raise ModelError(f"{new.path}: classes {list(new.card.classes)} are not the running model's")
        if new.card.input_size != old.card.input_size or new.card.multi_label != old.card.multi_label:
            raise ModelError(f"{new.path}: input size or kind differs from the running model's (restart the camera)")
        self.current = new
        return True
