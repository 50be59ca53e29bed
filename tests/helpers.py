"""Inputs the tests build themselves: a tiny real ONNX colour classifier and solid-colour videos.

The colour model is a real ONNX graph (Cast -> mean over pixels -> linear -> softmax) carrying a
real screentime model card, so the stream side runs exactly as with an exported VGG16, only
fast and with a known answer: a frame's class is its dominant colour.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stream.frames.sampler import Sampler
from stream.model.card import ModelCard
from stream.model.card_metrics import CardMetrics
from stream.model.engine import Engine
from stream.records import VideoInfo
from stream.sources.capture import CaptureBase
from training.synthetic import write_video

# BGR colours of the classes in the colour clips: grey = neither, red = jerry, blue = tom.
COLORS = {0: (128, 128, 128), 1: (0, 0, 220), 2: (220, 0, 0)}
CLASSES = ("neither", "jerry", "tom")


def make_color_model(
    path: Path,
    classes: Sequence[str] = CLASSES,
    size: tuple[int, int] = (32, 32),
    crop: tuple[int, int, int, int] | None = None,
    features: bool = False,
    sharpness: float = 10.0,
    metrics: CardMetrics | None = None,
) -> Path:
    """Write an ONNX model whose class is the frame's dominant colour (see COLORS); with `crop`
    (x0, y0, x1, y1 in input pixels), the dominant colour of that part only, so a model that
    sees a picture turned sideways answers differently. With `features`, a second output
    `features` (the mean BGR colour), as exported models give their backbone features; a lower
    `sharpness` makes blends of two colours uncertain."""
    centers = np.array([COLORS[i] for i in range(len(classes))], np.float32)  # (k, 3) BGR
    # Nearest centre by a linear score: -|x - c|^2 = 2 x.c - |c|^2 + const; sharpened for confident output.
    weight = (2 * centers.T / 255.0 * sharpness).astype(np.float32)  # (3, k)
    bias = (-(centers**2).sum(1) / 255.0**2 * sharpness).astype(np.float32)
    x0, y0, x1, y1 = crop or (0, 0, size[0], size[1])
    nodes = [
        helper.make_node("Slice", ["frames", "starts", "ends", "axes"], ["part"]),
        helper.make_node("Cast", ["part"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("Div", ["mean", "scale"], ["unit"]),
        helper.make_node("MatMul", ["unit", "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    if features:
        nodes.append(helper.make_node("Identity", ["mean"], ["features"]))
    inits = [
        numpy_helper.from_array(np.array([y0, x0], np.int64), "starts"),
        numpy_helper.from_array(np.array([y1, x1], np.int64), "ends"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
        numpy_helper.from_array(np.array(1.0, np.float32), "scale"),
        numpy_helper.from_array(weight, "W"),
        numpy_helper.from_array(bias, "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "color",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", size[1], size[0], 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", len(classes)])]
        + ([helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])] if features else []),
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    card = ModelCard(
        classes=tuple(classes),
        input_width=size[0],
        input_height=size[1],
        metrics=metrics or CardMetrics(),
        screentime_version="test",
    )
    for key, value in card.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def color_frame(label: int, size: tuple[int, int] = (64, 48), noise: int = 0, seed: int = 0) -> np.ndarray:
    image = np.empty((size[1], size[0], 3), np.uint8)
    image[:] = COLORS[label]
    if noise:
        rng = np.random.default_rng(seed)
        image = np.clip(image.astype(int) + rng.integers(-noise, noise + 1, image.shape), 0, 255).astype(np.uint8)
    return image


def write_color_video(
    path: Path,
    scenes: Sequence[tuple[int, float, float]],
    times_s: Sequence[float],
    size: tuple[int, int] = (64, 48),
    rate: float = 10,
    codec: str = "libx264",
    gop: int | None = None,
    noise: int = 0,
    options: dict[str, str] | None = None,
) -> Path:
    """Frames at exact `times_s`; each frame shows the colour of the scene (label, start, end) it falls in.

    `gop`: a keyframe every `gop` frames (else the encoder's choice); `noise`: each frame differs;
    `options`: the encoder's own.
    """

    def frame_at(t: float) -> np.ndarray:
        label = next((lab for lab, a, b in scenes if a <= t < b), scenes[-1][0])
        return color_frame(label, size, noise, seed=round(t * 1000))

    write_video(path, times_s, frame_at, size, codec=codec, rate=rate, gop=gop, options=options)
    return path


class SlowEngine(Engine):
    """A real engine that takes at least `delay_s` per call: inference slower than the stream."""

    def __init__(self, model_path: Path, delay_s: float) -> None:
        super().__init__(model_path, "cpu")
        self.delay_s = delay_s
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        time.sleep(self.delay_s)
        return super().predict(images)


def mjpeg_parts(url: str, seconds: float, connect_s: float = 20.0) -> list[tuple[float, bytes]]:
    """Read an MJPEG stream (`multipart/x-mixed-replace`) for `seconds` after its first part: each
    part's arrival time and JPEG bytes, parsed by hand from the wire (no library in between)."""
    import urllib.request

    parts: list[tuple[float, bytes]] = []
    with urllib.request.urlopen(url, timeout=connect_s) as response:
        kind = response.headers["Content-Type"]
        assert kind.startswith("multipart/x-mixed-replace; boundary="), kind
        boundary = b"--" + kind.split("boundary=", 1)[1].encode()
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            line = response.readline()
            if not line:
                break  # the server ended the stream
            if line.strip() != boundary:
                continue
            headers = {}
            while (header := response.readline().strip()) != b"":
                name, _, value = header.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            assert headers["content-type"] == "image/jpeg"
            data = response.read(int(headers["content-length"]))
            parts.append((time.monotonic(), data))
            if deadline is None:
                deadline = time.monotonic() + seconds
    return parts


def decode_jpeg(data: bytes) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


INSTALL_HINT = "bash scripts/install-system-deps.sh (Debian packages mosquitto and prometheus)"


def promtool_check(exposition: str) -> None:
    """Validate a /metrics exposition with Prometheus's own linter; fail (never skip) without it."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("promtool") is None:
        pytest.fail(f"promtool not found: {INSTALL_HINT}")
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, f"promtool check metrics: {result.stdout}{result.stderr}"


def make_presence_model(path: Path, classes: Sequence[str] = CLASSES, size: tuple[int, int] = (32, 32)) -> Path:
    """A multi-label ONNX model (independent sigmoids): class k's probability rises with one colour
    channel of the frame's mean (neither: green, jerry: red, tom: blue), 0.5 at 40 % of full scale.
    Grey shows all three at once, magenta jerry and tom, black none: every branch of the verdict."""
    channel = {0: 1, 1: 2, 2: 0}  # class -> BGR channel
    weight = np.zeros((3, len(classes)), np.float32)
    for k in range(len(classes)):
        weight[channel[k], k] = 10.0 / 255.0
    bias = np.full(len(classes), -4.0, np.float32)
    nodes = [
        helper.make_node("Cast", ["frames"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["mean", "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "b"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probs"]),
    ]
    graph = helper.make_graph(
        nodes,
        "presence",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", size[1], size[0], 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", len(classes)])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    card = ModelCard(
        classes=tuple(classes), input_width=size[0], input_height=size[1], multi_label=True, screentime_version="test"
    )
    for key, value in card.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


class ScriptedSource(CaptureBase):
    """A file-like source played from a script in memory: (t_s, colour label) per picture, no
    decoder and no sleeps. With `gate`, it holds before picture `hold_at` until the gate is set
    (a run's state at that point is then known to the test)."""

    live = False
    reconnectable = False

    def __init__(
        self,
        name: str,
        script: Sequence[tuple[float, int]],
        size: tuple[int, int] = (64, 48),
        gate: threading.Event | None = None,
        hold_at: int = 0,
    ) -> None:
        self.name = name
        self.script = list(script)
        self.size = size
        self.gate, self.hold_at = gate, hold_at
        self._next = 0
        self.closed = False

    def open(self) -> VideoInfo:
        return VideoInfo(self.size[0], self.size[1], None, len(self.script), live=False)

    def grab(self) -> float | None:
        if self.gate is not None and self._next == self.hold_at:
            self.gate.wait()
        if self._next >= len(self.script):
            return None
        self._next += 1
        return self.script[self._next - 1][0]

    def retrieve(self) -> np.ndarray:
        return color_frame(self.script[self._next - 1][1], self.size)

    def clock(self) -> float:
        return 0.0

    def close(self) -> None:
        self.closed = True


def script(scenes: Sequence[tuple[int, float, float]], fps: float) -> list[tuple[float, int]]:
    """Pictures at `fps` through scenes (label, start_s, end_s)."""
    return [(round(i / fps, 6), label) for label, a, b in scenes for i in range(round(a * fps), round(b * fps))]


def sampled(source, every_s: float, skip: bool = True) -> list[tuple[float, np.ndarray]]:
    """What the reader takes from `source`: (time, image) of each sample; with `skip`, telling the
    source the next due time after each, as the reader does."""
    source.open()
    sampler, out = Sampler(every_s), []
    try:
        while (t := source.grab()) is not None:
            if sampler.due(t):
                out.append((t, source.retrieve()))
                if skip:
                    source.skip_to(sampler.next_due_s)
    finally:
        source.close()
    return out


def write_labelled_frames(
    directory: Path, count: int, label_of: Callable[[int], int], size: tuple[int, int], noise: int = 40
) -> Path:
    """`count` noisy colour frames `frameI.jpg` and their labels.csv in `directory`, as `extract`
    and a person labelling would leave them."""
    import cv2

    rows = ["Image_ID,Class"]
    for i in range(count):
        cv2.imwrite(str(directory / f"frame{i}.jpg"), color_frame(label_of(i), size, noise=noise, seed=i))
        rows.append(f"frame{i}.jpg,{label_of(i)}")
    (directory / "labels.csv").write_text("\n".join(rows) + "\n")
    return directory
