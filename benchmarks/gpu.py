"""Images per second of one exported screentime ONNX model, per backend and batch size.

Backends (`--backends auto` runs every one this machine can; a missing one is named with why):
  ort-trt-fp16  onnxruntime, TensorrtExecutionProvider with FP16 (needs onnxruntime-gpu + TensorRT)
  ort-cuda      onnxruntime, CUDAExecutionProvider (needs onnxruntime-gpu + CUDA/cuDNN libraries)
  ort-cpu       onnxruntime, CPUExecutionProvider on every core (fp32)
  torch-fp16    the SAME ONNX graph converted to PyTorch by onnx2torch, on CUDA, autocast fp16
  torch-tf32    the same in fp32 with TF32 matrix units allowed (what CUDA libraries do by default)
  torch-fp32    the same in strict fp32 (TF32 off)
  torch-fp16-graphs  torch-fp16 replayed as one CUDA graph per batch size (no launch gaps)
The torch rows exist because onnxruntime's GPU providers cannot always be installed where a GPU
is (the onnxruntime-gpu wheel is ~250 MB); they are labelled as what they are, never as TensorRT.

Per row: `load s` (session creation or conversion + upload, once per backend), `first s` (the first
call at that batch: TensorRT builds its engine here, cuDNN autotunes), images/s (median of
`--repeats` timed slices filling `--seconds`), and, on the backend's first row, the largest
difference of its probabilities from onnxruntime CPU on the same frames. Every call goes from a
host uint8 batch to host probabilities, as `session.run` does, so copies are counted.

Inputs are random uint8 frames (never zeros). `--synthetic WxH` builds a VGG16-shaped screentime
graph (Cast, caffe mean, 13 convs, global max pools of blocks 4 and 5, five dense heads averaged)
with random weights: a speed figure only, labelled so. `--input-size WxH` runs a model's weights at
another input size by rewriting its input's height and width (convolutions don't care).

Usage: python benchmarks/gpu.py --model MODEL.onnx [--batches 1,8,32,64] [--seconds 3] [--json OUT.json]
       python benchmarks/gpu.py --synthetic 224x224 --backends torch-fp16,ort-cpu
Needs only onnx, onnxruntime and numpy (rich, torch and onnx2torch when present); it imports
nothing from screentime, so it runs from a bare checkout on a GPU machine.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

BACKENDS = ("ort-trt-fp16", "ort-cuda", "ort-cpu", "torch-fp16", "torch-tf32", "torch-fp32", "torch-fp16-graphs")
LABELS = {
    "ort-trt-fp16": ("onnxruntime TensorRT EP", "fp16"),
    "ort-cuda": ("onnxruntime CUDA EP", "fp32"),
    "ort-cpu": ("onnxruntime CPU EP", "fp32"),
    "torch-fp16": ("torch CUDA (ONNX graph via onnx2torch)", "fp16 autocast"),
    "torch-tf32": ("torch CUDA (ONNX graph via onnx2torch)", "tf32"),
    "torch-fp32": ("torch CUDA (ONNX graph via onnx2torch)", "fp32"),
    "torch-fp16-graphs": ("torch CUDA graphs (ONNX graph via onnx2torch)", "fp16 autocast"),
}
_ORT_PROVIDER = {"ort-trt-fp16": "TensorrtExecutionProvider", "ort-cuda": "CUDAExecutionProvider"}
MEAN_BGR = (103.939, 116.779, 123.68)  # the caffe means the real graph subtracts (training/model.py)
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
CHECK_FRAMES = 8


@dataclass
class Row:
    backend: str
    label: str
    precision: str
    input_size: str
    batch: int
    load_s: float
    first_s: float
    images_per_s: float
    ms_per_batch: float
    max_diff: float | None = None  # vs onnxruntime CPU, on the backend's first row only


@dataclass
class Runner:
    """One backend, ready: `run` maps a host uint8 batch to host probabilities."""

    key: str
    run: Callable[[np.ndarray], np.ndarray]
    load_s: float
    note: str = ""


@dataclass
class Skipped:
    key: str
    why: str


@dataclass
class Results:
    machine: str
    command: str
    model: str
    rows: list[Row] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 224x224") from None
    if width < 32 or height < 32:
        raise argparse.ArgumentTypeError(f"{text}: VGG16 needs at least 32x32")
    return width, height


def parse_batches(text: str) -> list[int]:
    try:
        batches = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected batch sizes like 1,8,32,64") from None
    if not batches or min(batches) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes must be positive")
    return batches


# ---------------------------------------------------------------- the model


def synthetic_model(size: tuple[int, int], classes: int = 3, heads: int = 5, seed: int = 0) -> onnx.ModelProto:
    """A VGG16-shaped screentime graph with random (He) weights: uint8 BGR (N, H, W, 3) in, probabilities out.

    Operator for operator what `screentime export` writes (tf2onnx), so that speeds compare.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    nodes.append(helper.make_node("Cast", ["frames"], ["f"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Sub", ["f", const("mean", np.asarray(MEAN_BGR))], ["centred"]))
    nodes.append(helper.make_node("Transpose", ["centred"], ["x0"], perm=[0, 3, 1, 2]))
    x, channels, pooled = "x0", 3, []
    for b, block in enumerate(VGG16_BLOCKS, 1):
        for c, out in enumerate(block, 1):
            name = f"block{b}_conv{c}"
            w = rng.normal(0, np.sqrt(2 / (9 * channels)), (out, channels, 3, 3))
            nodes.append(
                helper.make_node(
                    "Conv", [x, const(f"{name}_w", w), const(f"{name}_b", np.zeros(out))], [name], pads=[1] * 4
                )
            )
            nodes.append(helper.make_node("Relu", [name], [f"{name}_relu"]))
            x, channels = f"{name}_relu", out
        nodes.append(helper.make_node("MaxPool", [x], [f"block{b}_pool"], kernel_shape=[2, 2], strides=[2, 2]))
        x = f"block{b}_pool"
        if b >= 4:
            nodes.append(helper.make_node("GlobalMaxPool", [x], [f"gmp{b}"]))
            nodes.append(helper.make_node("Squeeze", [f"gmp{b}", "hw_axes"], [f"feat{b}"]))
            pooled.append(f"feat{b}")
    inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), "hw_axes"))
    nodes.append(helper.make_node("Concat", pooled, ["features"], axis=1))
    total = ""
    for h in range(heads):
        p = f"head{h}"
        nodes.append(
            helper.make_node("Mul", ["features", const(f"{p}_scale", rng.uniform(0.5, 1.5, 1024))], [f"{p}_s"])
        )
        nodes.append(helper.make_node("Add", [f"{p}_s", const(f"{p}_shift", rng.normal(0, 0.1, 1024))], [f"{p}_n"]))
        x = f"{p}_n"
        for layer, (n_in, n_out) in enumerate(((1024, 256), (256, classes))):
            w = const(f"{p}_w{layer}", rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out)))
            nodes.append(helper.make_node("MatMul", [x, w], [f"{p}_m{layer}"]))
            nodes.append(
                helper.make_node("Add", [f"{p}_m{layer}", const(f"{p}_b{layer}", np.zeros(n_out))], [f"{p}_z{layer}"])
            )
            x = f"{p}_z{layer}"
            if layer == 0:
                nodes.append(helper.make_node("Relu", [x], [f"{p}_r"]))
                x = f"{p}_r"
        nodes.append(helper.make_node("Softmax", [x], [f"{p}_p"], axis=1))
        if total:
            nodes.append(helper.make_node("Add", [total, f"{p}_p"], [f"sum{h}"]))
        total = f"sum{h}" if total else f"{p}_p"
    nodes.append(helper.make_node("Mul", [total, const("one_over_heads", np.asarray(1 / heads))], ["probs"]))
    graph = helper.make_graph(
        nodes,
        "synthetic_vgg16",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", height, width, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def input_size_of(model: onnx.ModelProto) -> tuple[int, int]:
    """(width, height) of a screentime graph's (N, H, W, 3) input."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") for d in dims[1:]):
        raise SystemExit("the model's input is not (N, H, W, 3) with a fixed size: pass --input-size WxH")
    return dims[2].dim_value, dims[1].dim_value


def probs_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph answering class probabilities alone: exported models also output `features`
    (for `suggest`), which every backend here would otherwise return first or second."""
    kept = [o for o in model.graph.output if o.name == "probs"]
    if kept and len(kept) < len(model.graph.output):
        del model.graph.output[:]
        model.graph.output.extend(kept)
    return model


def resize_input(model: onnx.ModelProto, size: tuple[int, int]) -> onnx.ModelProto:
    """The same graph and weights with its input's height and width rewritten; batch made symbolic.

    Shapes inferred from the old size are dropped so every runtime infers them again.
    """
    resized = onnx.ModelProto()
    resized.CopyFrom(model)
    dims = resized.graph.input[0].type.tensor_type.shape.dim
    dims[0].Clear()
    dims[0].dim_param = "N"
    dims[1].dim_value, dims[2].dim_value = size[1], size[0]
    del resized.graph.value_info[:]
    return resized


# ---------------------------------------------------------------- backends


def cuda_driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def ort_runner(key: str, model_bytes: bytes, workdir: Path) -> Runner | Skipped:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if key == "ort-cpu":
        options.intra_op_num_threads = os.cpu_count() or 0
        providers: list = ["CPUExecutionProvider"]
    else:
        name = _ORT_PROVIDER[key]
        available = ort.get_available_providers()
        if name not in available:
            return Skipped(key, f"onnxruntime {ort.__version__} here offers {', '.join(available)}, not {name}")
        if not cuda_driver_present():
            return Skipped(key, "no NVIDIA driver (libcuda.so.1) on this machine")
        if key == "ort-trt-fp16":
            # A fresh cache folder: the engine is built inside the first call, which `first s` shows.
            cache = workdir / "trt"
            cache.mkdir(exist_ok=True)
            opts = {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}
            providers = [(name, opts), "CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = [name, "CPUExecutionProvider"]
    started = time.perf_counter()
    try:
        session = ort.InferenceSession(model_bytes, options, providers=providers)
    except Exception as exc:  # onnxruntime raises several types; the reason is what matters here
        return Skipped(key, f"session failed: {str(exc).strip().splitlines()[0][:200]}")
    load_s = time.perf_counter() - started
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if session.get_providers()[0] != wanted:
        return Skipped(
            key, f"{wanted} did not load (libraries missing?); session fell back to {session.get_providers()}"
        )
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: batch})[0]

    return Runner(key, run, load_s)


def without_global_max_pool(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same function with each GlobalMaxPool written as a ReduceMax over H and W.

    onnx2torch 1.5 has no GlobalMaxPool converter, and its Squeeze (opset 13+) reads the axes
    tensor on every call, a host sync that also breaks CUDA-graph capture; so a GlobalMaxPool
    whose only reader is Squeeze(axes=[2, 3]) becomes one ReduceMax(axes=[2, 3], keepdims=0).
    (Axes as an attribute: opset 17, what tf2onnx writes; onnx2torch converts ReduceMax up to 13-17.)
    """
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    fused: dict[str, onnx.NodeProto] = {}  # Squeeze output -> the ReduceMax that replaces the pair
    plain: dict[str, onnx.NodeProto] = {}  # GlobalMaxPool output -> ReduceMax keeping H and W
    for node in model.graph.node:
        if node.op_type != "GlobalMaxPool":
            continue
        found = readers.get(node.output[0], [])
        reader = found[0] if len(found) == 1 else None
        squeezes = (
            reader is not None
            and reader.op_type == "Squeeze"
            and len(reader.input) == 2
            and reader.input[1] in consts
            and sorted(consts[reader.input[1]].tolist()) == [2, 3]
        )
        if squeezes:
            fused[reader.output[0]] = helper.make_node(
                "ReduceMax", [node.input[0]], list(reader.output), axes=[2, 3], keepdims=0
            )
        plain[node.output[0]] = helper.make_node(
            "ReduceMax", [node.input[0]], list(node.output), axes=[2, 3], keepdims=1
        )
    nodes = []
    for node in model.graph.node:
        if node.op_type == "GlobalMaxPool":
            if not any(n.input[0] == node.input[0] for n in fused.values()):
                nodes.append(plain[node.output[0]])
        elif node.op_type == "Squeeze" and node.output[0] in fused:
            nodes.append(fused[node.output[0]])
        else:
            nodes.append(node)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    del rewritten.graph.node[:]
    rewritten.graph.node.extend(nodes)
    return rewritten


def torch_runner(key: str, model: onnx.ModelProto, device_name: str = "cuda") -> Runner | Skipped:
    """`device_name` is "cuda" but for checking the conversion on a machine without a GPU."""
    try:
        import torch
    except ImportError:
        return Skipped(key, "PyTorch is not installed")
    if device_name == "cuda" and not torch.cuda.is_available():
        return Skipped(key, f"torch {torch.__version__} sees no CUDA device")
    try:
        from onnx2torch import convert
    except ImportError:
        return Skipped(key, "onnx2torch is not installed (pip install onnx2torch: it converts the ONNX graph)")
    started = time.perf_counter()
    try:
        module = convert(without_global_max_pool(model))
    except Exception as exc:  # an operator onnx2torch lacks, say
        return Skipped(key, f"onnx2torch could not convert the graph: {str(exc).strip()[:200]}")
    device = torch.device(device_name)
    module = module.eval().to(device).to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.cuda.synchronize()
    load_s = time.perf_counter() - started
    torch.backends.cudnn.benchmark = True  # autotuning happens in each batch size's first call
    tf32 = key == "torch-tf32"
    fp16 = key in ("torch-fp16", "torch-fp16-graphs")

    def precision():
        # Set per call: the torch backends share one process.
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        return torch.autocast(device.type, dtype=torch.float16, enabled=fp16, cache_enabled=False)

    @torch.inference_mode()
    def run(batch: np.ndarray) -> np.ndarray:
        frames = torch.from_numpy(batch).to(device)
        with precision():
            probs = module(frames)
        return probs.float().cpu().numpy()  # .cpu() waits for the GPU: the timing is synchronised

    graphs: dict[int, tuple] = {}

    @torch.inference_mode()
    def run_graph(batch: np.ndarray) -> np.ndarray:
        """One CUDA graph per batch size, captured on its first call: no per-kernel launch cost."""
        if len(batch) not in graphs:
            static_in = torch.from_numpy(batch).to(device)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), precision():
                for _ in range(3):  # cuDNN autotuning and allocations happen outside the capture
                    module(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), precision():
                static_out = module(static_in).float()
            graphs[len(batch)] = graph, static_in, static_out
        graph, static_in, static_out = graphs[len(batch)]
        static_in.copy_(torch.from_numpy(batch))
        graph.replay()
        return static_out.cpu().numpy()

    if key == "torch-fp16-graphs":
        if device.type != "cuda":
            return Skipped(key, "CUDA graphs need a CUDA device")
        return Runner(key, run_graph, load_s)
    return Runner(key, run, load_s)


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [
        f"{os.cpu_count()} CPUs ({cpu})",
        f"onnxruntime {ort.__version__} [{', '.join(ort.get_available_providers())}]",
    ]
    gpu = "no GPU"
    try:
        query = "--query-gpu=name,memory.total,driver_version"
        out = subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        if out.returncode == 0 and out.stdout.strip():
            name, memory, driver = (v.strip() for v in out.stdout.strip().splitlines()[0].split(","))
            gpu = f"{name} ({memory}, driver {driver})"
    except (OSError, subprocess.TimeoutExpired, ValueError):
        pass
    try:
        import torch

        cuda = (
            f", CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}" if torch.cuda.is_available() else ""
        )
        parts.append(f"torch {torch.__version__}{cuda}")
        if gpu == "no GPU" and torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{gpu}; {'; '.join(parts)}; Python {platform.python_version()}"


# ---------------------------------------------------------------- timing


def measure(run: Callable[[np.ndarray], np.ndarray], batches: list[np.ndarray], seconds: float, repeats: int):
    """(first call s, median images/s, median ms per batch): one untimed warm-up after the first
    call, then `repeats` slices of `seconds / repeats`, each at least one call, over alternating inputs."""
    started = time.perf_counter()
    run(batches[0])
    first_s = time.perf_counter() - started
    run(batches[1 % len(batches)])
    rates, per_call = [], []
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        while True:
            run(batches[calls % len(batches)])
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds / repeats:
                break
        rates.append(calls * len(batches[0]) / elapsed)
        per_call.append(elapsed / calls * 1000)
    return first_s, statistics.median(rates), statistics.median(per_call)


def frames(rng: np.random.Generator, n: int, size: tuple[int, int]) -> np.ndarray:
    return rng.integers(0, 256, (n, size[1], size[0], 3), dtype=np.uint8)


def benchmark(args: argparse.Namespace) -> Results:
    if args.synthetic:
        model = synthetic_model(args.synthetic)
        described = (
            f"synthetic VGG16-shaped graph, RANDOM weights (speed only), {args.synthetic[0]}x{args.synthetic[1]}"
        )
    else:
        model = probs_only(onnx.load(str(args.model)))
        described = f"{args.model} ({args.model.stat().st_size / 1e6:.1f} MB)"
    if args.input_size:
        model = resize_input(model, args.input_size)
        described += f", input rewritten to {args.input_size[0]}x{args.input_size[1]} (same weights)"
    size = input_size_of(model)
    model_bytes = model.SerializeToString()
    command = "python benchmarks/gpu.py " + shlex.join(sys.argv[1:])
    results = Results(machine=machine_line(), command=command, model=described)
    rng = np.random.default_rng(0)
    check = frames(rng, CHECK_FRAMES, size)
    reference = None
    keys = list(BACKENDS) if args.backends == ["auto"] else args.backends
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        for key in keys:
            runner = ort_runner(key, model_bytes, Path(tmp)) if key.startswith("ort-") else torch_runner(key, model)
            if isinstance(runner, Skipped):
                results.skipped.append(runner)
                print(f"skipped {key}: {runner.why}", file=sys.stderr, flush=True)
                continue
            label, precision = LABELS[key]
            rows = []
            try:
                for batch in args.batches:
                    inputs = [frames(rng, batch, size) for _ in range(2)]
                    first_s, rate, ms = measure(runner.run, inputs, args.seconds, args.repeats)
                    shape = f"{size[0]}x{size[1]}"
                    rows.append(Row(key, label, precision, shape, batch, runner.load_s, first_s, rate, ms))
                    print(
                        f"{key} batch {batch}: {rate:,.1f} img/s (first {first_s:.2f} s)", file=sys.stderr, flush=True
                    )
                # After the timings, so that each batch's first call really is the first.
                if reference is None:
                    cpu = runner if key == "ort-cpu" else ort_runner("ort-cpu", model_bytes, Path(tmp))
                    if isinstance(cpu, Skipped):
                        raise SystemExit(f"onnxruntime CPU, the reference, cannot run this model: {cpu.why}")
                    reference = cpu.run(check)
                rows[0].max_diff = float(np.abs(runner.run(check) - reference).max())
            except Exception as exc:  # one backend failing (a CUDA graph capture, say) must not lose the others
                why = f"failed after {len(rows)} batch sizes: {type(exc).__name__}: {str(exc).strip()[:200]}"
                results.skipped.append(Skipped(key, why))
                print(f"{key} {why}", file=sys.stderr, flush=True)
            results.rows.extend(rows)
    return results


# ---------------------------------------------------------------- output

COLUMNS = ("backend", "precision", "input", "batch", "load s", "first s", "images/s", "ms/batch", "max |Δp| vs CPU")


def cells(row: Row) -> tuple[str, ...]:
    diff = "" if row.max_diff is None else f"{row.max_diff:.1e}"
    return (
        row.label, row.precision, row.input_size, str(row.batch), f"{row.load_s:.2f}", f"{row.first_s:.2f}",
        f"{row.images_per_s:,.1f}", f"{row.ms_per_batch:.2f}", diff,
    )  # fmt: skip


def print_results(results: Results) -> None:
    title = f"images/s, {results.model}"
    footer = [f"machine: {results.machine}", f"command: {results.command}"]
    footer += [f"not run: {s.key}: {s.why}" for s in results.skipped]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(c), *(len(cells(r)[i]) for r in results.rows)) for i, c in enumerate(COLUMNS)]
        print(title)
        print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
        for row in results.rows:
            print("  ".join(c.ljust(w) for c, w in zip(cells(row), widths, strict=True)))
        print("\n".join(footer))
        return
    table = Table(title=title)
    for i, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if i < 3 else "right")
    for row in results.rows:
        table.add_row(*cells(row))
    console = Console(width=max(140, Console().width))
    console.print(table)
    for line in footer:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="an exported screentime ONNX model")
    source.add_argument("--synthetic", type=parse_size, metavar="WxH", help="a VGG16-shaped graph, random weights")
    parser.add_argument("--input-size", type=parse_size, metavar="WxH", help="rewrite the model's input size")
    parser.add_argument("--batches", type=parse_batches, default=[1, 8, 32, 64], help="default 1,8,32,64")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per cell (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="timed slices per cell; the median is shown")
    parser.add_argument(
        "--backends",
        type=lambda s: s.split(","),
        default=["auto"],
        help=f"comma-separated from {', '.join(BACKENDS)}; auto (default) tries all",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    unknown = set(args.backends) - {*BACKENDS, "auto"}
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(sorted(unknown))}; choose from {', '.join(BACKENDS)}")
    if args.model and not args.model.is_file():
        parser.error(f"{args.model}: no such file")
    results = benchmark(args)
    print_results(results)
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=1))
    return 0 if results.rows else 1


if __name__ == "__main__":
    sys.exit(main())
