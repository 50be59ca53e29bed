"""benchmarks/gpu.py's CPU path, as CI runs it: no GPU, no torch needed.

The GPU backends are skipped here with their reason; what must hold everywhere is that the
script measures onnxruntime CPU on a real ONNX model and prints the table, machine and command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
    )


def cpu_rows(out_json: Path) -> list[dict]:
    return [row for row in json.loads(out_json.read_text())["rows"] if row["backend"] == "ort-cpu"]


def test_cpu_rows_on_a_tiny_model(color_model, tmp_path):
    out = tmp_path / "gpu.json"
    done = bench("--model", str(color_model), "--batches", "1,2", "--seconds", "0.2", "--json", str(out))
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if "onnxruntime CPU EP" in line]
    assert [line.split("│")[4].strip() for line in table] == ["1", "2"]  # the batch column
    assert all(float(line.split("│")[7].replace(",", "")) > 0 for line in table)  # images/s
    rows = cpu_rows(out)
    assert [r["batch"] for r in rows] == [1, 2]
    assert all(r["images_per_s"] > 0 and r["first_s"] > 0 for r in rows)
    assert rows[0]["max_diff"] == 0.0  # the CPU backend is its own reference
    assert "machine:" in done.stdout and "command: python benchmarks/gpu.py --model" in done.stdout


def test_missing_backends_are_named_with_a_reason(color_model):
    done = bench(
        "--model", str(color_model), "--batches", "1", "--seconds", "0.1", "--backends", "ort-trt-fp16,ort-cpu"
    )
    assert done.returncode == 0, done.stderr
    if "TensorRT EP" not in done.stdout:  # no GPU here, as in CI
        assert "not run: ort-trt-fp16: " in done.stdout


@pytest.mark.parametrize(
    "source",
    [
        ["--synthetic", "32x32"],  # the VGG16-shaped graph, random weights
        ["--input-size", "48x40"],  # the tiny model's weights at another input size
    ],
)
def test_synthetic_and_resized_models_run(source, color_model, tmp_path):
    model = [] if source[0] == "--synthetic" else ["--model", str(color_model)]
    out = tmp_path / "gpu.json"
    done = bench(*model, *source, "--backends", "ort-cpu", "--batches", "2", "--seconds", "0.1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    (row,) = cpu_rows(out)
    assert row["images_per_s"] > 0
    assert row["input_size"] == ("32x32" if source[0] == "--synthetic" else "48x40")


def test_bad_arguments_are_refused(color_model):
    done = bench("--model", str(color_model), "--backends", "tensorrt")
    assert done.returncode == 2 and "unknown backend" in done.stderr
