"""The service's config file: each mistake one line naming the key, exit 2; secrets stay unexpanded."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream.cli import main
from stream.errors import BadInputError
from stream.fleet.config import load_config

GOOD = """
timezone: Europe/Paris
http: {port: 0}
defaults: {model: m.onnx, every: 1, reports: out}
cameras:
  door: {url: "rtsp://cam:${DOOR_PASSWORD}@127.0.0.1:8554/door"}
  yard: {url: "rtsp://127.0.0.1:8554/yard", every: 2.5, collect: {dir: hard, per_hour: 3}}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "m.onnx").write_bytes(b"")  # existence is all the config checks; the service loads it
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


def serve_check(path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "serve", "--check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_good_config_resolves_defaults_paths_and_keeps_secrets_unexpanded(tmp_path):
    config = load_config(write(tmp_path, GOOD), environ={"DOOR_PASSWORD": "s3cret"})
    door, yard = config.cameras["door"], config.cameras["yard"]
    assert config.timezone.key == "Europe/Paris" and config.loopback and config.host == "127.0.0.1"
    assert door.every_s == 1.0 and yard.every_s == 2.5
    assert door.model == yard.model == tmp_path / "m.onnx"  # relative to the file, not the cwd
    assert door.reports == tmp_path / "out"
    assert door.collect is None and yard.collect.per_hour == 3 and yard.collect.dir == str(tmp_path / "hard")
    assert door.shown_url == "rtsp://cam:***@127.0.0.1:8554/door"
    assert door.source({"DOOR_PASSWORD": "s3cret"}) == "rtsp://cam:s3cret@127.0.0.1:8554/door"
    assert config.secrets({"DOOR_PASSWORD": "s3cret"}) == {"s3cret"}


def test_no_cameras_yet_is_a_valid_service(tmp_path):
    assert load_config(write(tmp_path, "cameras:\n")).cameras == {}
    assert load_config(write(tmp_path, "")).cameras == {}


def test_check_prints_one_line_without_the_secret(tmp_path):
    result = serve_check(write(tmp_path, GOOD), DOOR_PASSWORD="s3cret")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ") and "2 cameras" in result.stdout and "s3cret" not in result.stdout


BAD = {
    "missing url": ("cameras:\n  door: {model: m.onnx}\n", "cameras.door.url: missing"),
    "bad interval": (
        "defaults: {model: m.onnx}\ncameras:\n  yard: {url: x, every: 0}\n",
        "cameras.yard.every: must be > 0",
    ),
    "unknown key": (
        "defaults: {model: m.onnx}\ncameras:\n  door: {url: x, colour: red}\n",
        "cameras.door.colour: unknown key",
    ),
    "unknown top key": ("camras: {}\n", "camras: unknown key"),
    "duplicate names": (
        "defaults: {model: m.onnx}\ncameras:\n  door: {url: x}\n  door: {url: y}\n",
        "fleet.yaml:4: door: duplicate key",
    ),
    "string interval": ("defaults: {model: m.onnx}\ncameras:\n  yard: {url: x, every: '2'}\n", "cameras.yard.every:"),
    "no model": ("cameras:\n  door: {url: x}\n", "cameras.door.model: missing"),
    "model not there": ("cameras:\n  door: {url: x, model: gone.onnx}\n", "cameras.door.model: no such file"),
    "bad name": ("defaults: {model: m.onnx}\ncameras:\n  'a/b': {url: x}\n", "cameras.a/b: a name is"),
    "unset secret": (
        "defaults: {model: m.onnx}\ncameras:\n  door: {url: 'rtsp://u:${NOPE_UNSET}@h/'}\n",
        "NOPE_UNSET is not set",
    ),
    "bad mqtt url": (
        "defaults: {model: m.onnx, mqtt: 'ftp://h'}\ncameras:\n  door: {url: x}\n",
        "cameras.door.mqtt: expected",
    ),
    "bad zone": ("timezone: Mars/Olympus\n", "timezone: unknown time zone"),
    "wide without token": ("http: {host: 0.0.0.0}\n", "http.token: required"),
    "literal token": ("http: {host: 0.0.0.0, token: abc}\n", "http.token: must come from the environment"),
    "not yaml": ("cameras: [\n", "not YAML"),
    "not a mapping": ("- a\n- b\n", "expected a mapping"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_config_is_one_line_exit_2(tmp_path, case, capsys):
    text, fragment = BAD[case]
    assert main(["serve", "--check", str(write(tmp_path, text))]) == 2  # in-process: the CLI's own error path
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("screentime: error: ") and fragment in lines[0], lines[0]


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "dir.yaml").mkdir()  # cannot be read as a file (a permission test fails to fail as root)
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00cameras")
    for name, fragment in [
        ("dir.yaml", "cannot read"),
        ("binary.yaml", "cannot read"),
        ("nope.yaml", "no such config file"),
    ]:
        result = serve_check(tmp_path / name)
        assert result.returncode == 2 and fragment in result.stderr and len(result.stderr.splitlines()) == 1, (
            result.stderr
        )


def test_a_secret_never_reaches_the_error(tmp_path, caplog):
    text = "defaults: {model: m.onnx}\ncameras:\n  door: {url: 'rtsp://u:${PW}@h/', every: -1}\n"
    with caplog.at_level(logging.DEBUG), pytest.raises(BadInputError) as err:
        load_config(write(tmp_path, text), environ={"PW": "hunter2"})
    assert "hunter2" not in str(err.value) and "cameras.door.every" in str(err.value)
