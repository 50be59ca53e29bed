"""The CLI as a user meets it: bad input gives one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import av
import numpy as np
import onnx
import pytest

from stream.model.card import METADATA_KEY, ModelCard
from tests.helpers import write_color_video

ENV = {**os.environ, "SCREENTIME_CACHE": "/nonexistent-cache-not-needed"}


def screentime(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("screentime: error:") and fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_color_video(
        tmp_path_factory.mktemp("v") / "clip.mp4", [(1, 0, 2), (2, 2, 5)], [i / 10 for i in range(50)]
    )


def test_version_and_help():
    assert screentime("--version").stdout.startswith("screentime ")
    out = screentime("--help").stdout
    for command in ("extract", "train", "export", "evaluate", "watch", "plot", "demo"):
        assert command in out


def test_stream_side_never_imports_tensorflow():
    code = (
        "import sys, stream, stream.cli, stream.api; sys.exit('tensorflow' in sys.modules or 'tf2onnx' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_watch_prints_summary_and_writes_report(clip, color_model, tmp_path):
    result = screentime("watch", str(clip), "--model", str(color_model), "--report", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    assert "jerry" in result.stdout and "tom" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["screen_time_s"] == pytest.approx({"neither": 0.0, "jerry": 2.0, "tom": 3.0})


@pytest.mark.parametrize(
    ("make_args", "fragment"),
    [
        (lambda d, clip, model: ["watch", str(d / "missing.mp4"), "--model", model], "no such file"),
        (lambda d, clip, model: ["watch", str(d / "junk.mp4"), "--model", model], "not a video"),
        (lambda d, clip, model: ["watch", str(d / "empty.mp4"), "--model", model], "is empty"),
        (lambda d, clip, model: ["watch", str(d / "zero.mp4"), "--model", model], "no video frames"),
        (lambda d, clip, model: ["watch", clip, "--model", str(d / "missing.onnx")], "no such model"),
        (lambda d, clip, model: ["watch", clip, "--model", str(d / "junk.mp4")], "not a readable ONNX"),
        (lambda d, clip, model: ["watch", clip, "--model", str(d / "foreign.onnx")], "not a screentime model"),
        (
            lambda d, clip, model: ["watch", clip, "--model", str(d / "four.onnx")],
            "lists 4 classes but the graph outputs 3",
        ),
        (
            lambda d, clip, model: ["watch", clip, "--model", model, "--report", str(d / "no" / "r.json")],
            "cannot write",
        ),
        (lambda d, clip, model: ["watch", clip, "--model", model, "--output", str(d)], "must be .mp4"),
        (lambda d, clip, model: ["watch", "97", "--model", model], "no camera at index 97"),
        (lambda d, clip, model: ["extract", str(d / "junk.mp4"), "-o", str(d / "out")], "not a video"),
        (lambda d, clip, model: ["watch", clip, "--model", model, "--mqtt", "ftp://op:secret@b"], "op:***@b"),
        (lambda d, clip, model: ["watch", clip, "--model", model, "--name", "a,b"], "2 names for 1 sources"),
    ],
    ids=[
        "missing-video",
        "corrupt-video",
        "empty-file",
        "zero-frames",
        "missing-model",
        "not-onnx",
        "foreign-onnx",
        "card-mismatch",
        "unwritable-report",
        "bad-output",
        "no-webcam",
        "extract-corrupt",
        "bad-mqtt-url",
        "names-per-source",
    ],
)
def test_bad_input_is_one_line(tmp_path, clip, color_model, make_args, fragment):
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (tmp_path / "empty.mp4").write_bytes(b"")
    with av.open(str(tmp_path / "zero.mp4"), "w") as container:  # a valid MP4 with no frames at all
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    foreign = onnx.load(str(color_model))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    four = ModelCard(classes=("neither", "jerry", "tom", "spike"), input_width=32, input_height=32)
    foreign.metadata_props.add(key=METADATA_KEY, value=four.to_metadata()[METADATA_KEY])
    onnx.save(foreign, str(tmp_path / "four.onnx"))  # a card that does not describe its graph
    assert_one_line_error(screentime(*make_args(tmp_path, str(clip), str(color_model))), fragment)


@pytest.mark.parametrize(
    ("csv_text", "fragment"),
    [
        ("Image_ID,Class\nframe7.jpg,1\n", "frame7.jpg does not exist"),
        ("Image_ID,Class\nframe0.jpg,5\n", "outside"),
        ("", "empty label file"),
        ("frame0.jpg,1\n", "header"),
    ],
)
def test_train_label_errors_are_one_line(tmp_path, csv_text, fragment):
    (tmp_path / "frame0.jpg").write_bytes(b"x")
    (tmp_path / "labels.csv").write_text(csv_text)
    result = screentime(
        "train",
        "--frames",
        str(tmp_path),
        "--labels",
        str(tmp_path / "labels.csv"),
        "-o",
        str(tmp_path / "m.keras"),
        "--backbone-weights",
        "random",
    )
    assert_one_line_error(result, fragment)


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [(["--tune-rate", "-1"], "--tune-rate -1: must be above 0"), (["--tune-epochs", "0"], "--tune-epochs must be")],
)
def test_train_tuning_settings_are_checked_before_anything_runs(tmp_path, flags, fragment):
    (tmp_path / "frame0.jpg").write_bytes(b"x")
    (tmp_path / "labels.csv").write_text("Image_ID,Class\nframe0.jpg,1\n")
    frames = ["--frames", str(tmp_path), "-o", str(tmp_path / "m.keras"), "--backbone-weights", "random"]
    assert_one_line_error(screentime("train", *frames, "--tune", "conv3", *flags), fragment)
    assert not (tmp_path / "m.keras").exists()


def test_sigterm_mid_run_leaves_a_complete_report(tmp_path, color_model):
    # Long enough (with the overlay encode) that the run is still going when the signal arrives.
    long_clip = write_color_video(
        tmp_path / "long.mp4", [(1, 0, 600), (2, 600, 1200)], [i / 10 for i in range(12000)], size=(320, 240)
    )
    report_path = tmp_path / "r.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "watch",
            str(long_clip),
            "--model",
            str(color_model),
            "--every",
            "0",
            "--report",
            str(report_path),
            "--output",
            str(tmp_path / "o.mp4"),
            "--no-dashboard",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    time.sleep(4)
    assert proc.poll() is None, "finished before the signal; make the clip longer"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    report = json.loads(report_path.read_text())
    assert report["ended"] == "interrupted"
    assert 0 < report["samples"] < 12000
    assert sum(report["screen_time_s"].values()) == pytest.approx(report["duration_s"], abs=1e-6)
    assert len(report["timeline"]) == report["samples"]
    import av

    with av.open(str(tmp_path / "o.mp4")) as container:  # finalised, playable
        assert sum(1 for _ in container.decode(video=0)) > 0


@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_verbose_stream_errors_never_show_the_password(color_model, backend):
    """With -v FFmpeg's own lines are shown too; none may carry the URL's password."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"rtsp://admin:topsecret@127.0.0.1:{port}/cam"
    result = screentime(
        "-v", "watch", url, "--model", str(color_model), "--no-dashboard", "--no-retry", "--rtsp-backend", backend
    )
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "topsecret" not in result.stderr + result.stdout and "admin:***@127.0.0.1" in result.stderr


def test_audit_draw_label_and_correct(tmp_path, clip, color_model):
    report = tmp_path / "r.json"
    assert screentime("watch", str(clip), "--model", str(color_model), "--report", str(report)).returncode == 0
    assert json.loads(report.read_text())["crop"]["mode"] == "auto"
    drawn = screentime("audit", str(report), "--draw", str(tmp_path / "a"), "-n", "4", "--seed", "1")
    assert drawn.returncode == 0 and "screentime label" in drawn.stdout
    # Nothing labelled yet: a one-line refusal, not an audit.
    assert_one_line_error(screentime("audit", str(report), "--frames", str(tmp_path / "a")), "have no label")
    stamps = (tmp_path / "a" / "frames.csv").read_text().splitlines()[1:]
    rows = [f"{line.split(',')[0]},{1 if float(line.split(',')[1]) < 2 else 2}" for line in stamps]
    (tmp_path / "a" / "labels.csv").write_text("Image_ID,Class\n" + "\n".join(rows) + "\n")
    done = screentime("audit", str(report), "--frames", str(tmp_path / "a"))
    assert done.returncode == 0, done.stderr
    assert "audited s (n=4)" in done.stdout
    assert json.loads(report.read_text())["audit"]["n"] == 4
    assert_one_line_error(screentime("audit", str(tmp_path / "none.json"), "--frames", "x"), "no such report")
    bad = screentime("watch", str(clip), "--model", str(color_model), "--crop", "9x9")
    assert bad.returncode == 2 and "--crop takes auto, none or W:H:X:Y" in bad.stderr and "Traceback" not in bad.stderr
