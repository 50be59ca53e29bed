"""ONNX inference: one onnxruntime session, providers chosen by `--device`, batches as given.

The engine knows nothing of sources or sinks; it reads its model card from the file so the
caller never repeats class names or input sizes.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from stream.defaults import DEVICES
from stream.errors import ModelError
from stream.frames.preprocess import batch_frames
from stream.model.card import FEATURES_OUTPUT, PROBS_OUTPUT, ModelCard
from stream.quiet import captured_output

log = logging.getLogger(__name__)


class Device(StrEnum):
    """--device's choices, declared in defaults (spelled out here so that type checkers see the members)."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    TENSORRT = "tensorrt"


assert tuple(Device) == DEVICES, "stream.model.engine.Device must list stream.defaults.DEVICES, in order"


_PROVIDER = {
    Device.TENSORRT: "TensorrtExecutionProvider",
    Device.CUDA: "CUDAExecutionProvider",
    Device.CPU: "CPUExecutionProvider",
}


def cuda_driver_present() -> bool:
    """True if the NVIDIA driver library loads; without it GPU providers cannot work."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def provider_chain(device: Device, available: list[str], cache_dir: Path, gpu: bool = True) -> list:
    """Providers to ask onnxruntime for, best first; CPU is always last as the safety net."""
    wanted = [Device.TENSORRT, Device.CUDA] if device is Device.AUTO else [device]
    if device is Device.AUTO and not gpu:
        wanted = []
    chain: list = []
    for dev in wanted:
        name = _PROVIDER[dev]
        if dev is not Device.CPU and name not in available:
            continue
        if dev is Device.TENSORRT:
            cache_dir.mkdir(parents=True, exist_ok=True)
            chain.append(
                (
                    name,
                    {
                        "trt_fp16_enable": True,
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(cache_dir),
                        "trt_timing_cache_enable": True,
                    },
                )
            )
        elif dev is not Device.CPU:
            chain.append(name)
    chain.append(_PROVIDER[Device.CPU])
    return chain


def int8_sibling(model: Path) -> Path:
    """`model.onnx` -> `model.int8.onnx`, where `screentime export --int8` writes it."""
    return model.with_name(model.name.removesuffix(".onnx") + ".int8.onnx")


def choose_model(model: Path, device: Device | str, precision: str = "auto") -> Path:
    """The file to load. On CPU a static INT8 twin runs 3-4x faster and as accurately, so
    `auto` takes it when it lies beside the fp32 model; GPUs keep fp32 (TensorRT makes its own FP16)."""
    if precision == "fp32" or model.name.endswith(".int8.onnx"):
        return model
    twin = int8_sibling(model)
    on_cpu = Device(device) is Device.CPU or (Device(device) is Device.AUTO and not cuda_driver_present())
    if precision == "int8" and not twin.is_file():
        raise ModelError(f"--precision int8: no {twin.name} beside {model.name} (export with --int8)")
    if twin.is_file() and (precision == "int8" or on_cpu):
        log.info("using the INT8 model %s on CPU (--precision fp32 for the fp32 one)", twin.name)
        return twin
    return model


def file_sha256(path: str | Path) -> str:
    """The model file's SHA-256: a report names the exact weights that made it, and `batch` redoes
    a video only when they changed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def probs_output(session: ort.InferenceSession) -> str | None:
    """The graph output holding class probabilities: `probs` by name, else (older or foreign
    graphs) the first output."""
    names = [o.name for o in session.get_outputs()]
    return PROBS_OUTPUT if PROBS_OUTPUT in names else (names[0] if names else None)


def check_card_against_graph(card: ModelCard, session: ort.InferenceSession, source: str) -> None:
    """Refuse at load a card that does not describe its graph (class count = output width,
    background in range, an image input), rather than fail mid-run."""
    outputs, inputs = session.get_outputs(), session.get_inputs()
    probs = next((o for o in outputs if o.name == probs_output(session)), None)
    width = probs.shape[-1] if probs is not None and probs.shape else None
    if isinstance(width, int) and width != len(card.classes):
        raise ModelError(
            f"{source}: the model card lists {len(card.classes)} classes but the graph outputs {width} scores"
        )
    if card.background is not None and not 0 <= card.background < len(card.classes):
        raise ModelError(f"{source}: the model card's background index {card.background} is not a class")
    if not inputs or len(inputs[0].shape) != 4:
        raise ModelError(f"{source}: the graph's input is not a batch of images (N, H, W, 3)")


class Model(Protocol):
    """What a pipeline asks of a model: an `Engine`, or a fleet camera's `Swappable` one."""

    @property
    def card(self) -> ModelCard: ...

    @property
    def path(self) -> Path: ...

    @property
    def sha256(self) -> str: ...

    @property
    def device_name(self) -> str: ...

    def predict(self, images: list[np.ndarray]) -> np.ndarray: ...


class Engine:
    """Classify frames with a screentime ONNX model."""

    def __init__(self, model_path: str | Path, device: Device | str = Device.AUTO, threads: int = 0) -> None:
        self.path = Path(model_path)
        device = Device(device)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such model file")
        ort.set_default_logger_severity(3)  # provider fall-back noise is summarised below instead
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        cache = Path.home() / ".cache" / "screentime" / "tensorrt"
        gpu = cuda_driver_present()
        chain = provider_chain(device, ort.get_available_providers(), cache, gpu=gpu)
        if device is Device.AUTO and not gpu:
            log.info("device auto: no CUDA driver found, running on CPU")
        try:
            if len(chain) > 1:
                with captured_output():
                    self.session = ort.InferenceSession(str(self.path), options, providers=chain)
            else:
                self.session = ort.InferenceSession(str(self.path), options, providers=chain)
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: not a readable ONNX model ({first[:200]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.card = ModelCard.from_metadata(meta, source=str(self.path))
        check_card_against_graph(self.card, self.session, str(self.path))
        self.providers = self.session.get_providers()
        self._check_device(device, chain)
        self.input_name = self.session.get_inputs()[0].name
        self.probs_name = probs_output(self.session)
        names = [o.name for o in self.session.get_outputs()]
        self.features_name = FEATURES_OUTPUT if FEATURES_OUTPUT in names else None

    def _check_device(self, device: Device, chain: list) -> None:
        asked = [p if isinstance(p, str) else p[0] for p in chain]
        if device is Device.AUTO:
            if asked[0] != self.providers[0]:
                log.info("device auto: %s not usable here, running on %s", asked[0], self.providers[0])
        elif self.providers[0] != _PROVIDER[device]:
            raise ModelError(f"--device {device.value}: {_PROVIDER[device]} is not usable on this machine")

    @cached_property
    def sha256(self) -> str:
        """Of the file loaded (the INT8 twin when chosen); hashed when a report first asks."""
        return file_sha256(self.path)

    @property
    def device_name(self) -> str:
        return self.providers[0].removesuffix("ExecutionProvider")

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, classes) for BGR frames of any size."""
        return self._run(images, with_features=False)[0]

    def predict_with_features(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and the backbone's pooled features (None for a model exported without them)."""
        return self._run(images, with_features=True)

    def _run(self, images: list[np.ndarray], with_features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if not images:
            return np.zeros((0, len(self.card.classes)), np.float32), None
        wanted = [self.probs_name] + ([self.features_name] if with_features and self.features_name else [])
        out = self.session.run(wanted, {self.input_name: batch_frames(images, self.card.input_size)})
        return out[0], out[1] if len(out) > 1 else None
