"""The service's config file: each mistake one line naming the key, exit 2; secrets stay unexpanded."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.cli import main
from stream.defaults import CONFIG_READ_MAX_BYTES
from stream.errors import BadInputError
from stream.fleet.config import check_api_camera, check_config, load_config, parse_raw
from stream.settings import SourceSettings

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


def test_a_cluster_and_each_cameras_share_of_a_node(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DOOR_PASSWORD", "s3cret")
    text = GOOD.replace("timezone:", "cluster: {address: '10.0.0.1:6379'}\ntimezone:")
    text = text.replace("every: 2.5,", "every: 2.5, resources: {cpus: 0.5, gpus: 0.25, custom: {site-a: 1}},")
    config = load_config(write(tmp_path, text), environ={"DOOR_PASSWORD": "s3cret"})
    door, yard = config.cameras["door"], config.cameras["yard"]
    assert config.cluster == "10.0.0.1:6379"
    assert (door.resources.cpus, door.resources.gpus, door.resources.custom) == (1.0, 0.0, {})  # the defaults
    assert (yard.resources.cpus, yard.resources.gpus, yard.resources.custom) == (0.5, 0.25, {"site-a": 1.0})
    path = write(tmp_path, text.replace("cluster: {address: '10.0.0.1:6379'}\n", ""))
    assert main(["serve", "--check", str(path), "--address", "127.0.0.1:1"]) == 0  # checked, never joined
    assert "cameras on the Ray cluster at 127.0.0.1:1" in capsys.readouterr().out


def test_an_address_where_no_cluster_answers_is_one_line(tmp_path):
    path = write(tmp_path, "cameras: {}\n")
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "serve", str(path), "--address", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert lines[-1].startswith("screentime: error: cluster address 127.0.0.1:1: no Ray cluster answers there")
    assert main(["serve", "--check", str(path), "--address", "no-port"]) == 2  # checked like cluster.address


def test_serve_without_an_address_never_imports_ray(tmp_path):
    script = (
        "import sys; from stream.fleet.service import Service; from stream.fleet.cli import serve; "
        "print('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"


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
    "infinite interval": (
        "defaults: {model: m.onnx}\ncameras:\n  yard: {url: x, every: .inf}\n",
        "cameras.yard.every:",
    ),
    "nan interval": ("defaults: {model: m.onnx}\ncameras:\n  yard: {url: x, every: .nan}\n", "cameras.yard.every:"),
    "interval past a day": (
        "defaults: {model: m.onnx}\ncameras:\n  yard: {url: x, every: 100000.0}\n",
        "cameras.yard.every: must be <= 86400",
    ),
    "port out of range": (
        "defaults: {model: m.onnx}\ncameras:\n  yard: {url: 'rtsp://127.0.0.1:99999/x'}\n",
        "cameras.yard.url: port out of range",
    ),
    "port zero": ("defaults: {model: m.onnx}\ncameras:\n  yard: {url: 'rtsp://h:0/x'}\n", "cameras.yard.url: port 0"),
    "no host": ("defaults: {model: m.onnx}\ncameras:\n  yard: {url: 'rtsp:///x'}\n", "cameras.yard.url: no host"),
    "unknown scheme": ("defaults: {model: m.onnx}\ncameras:\n  yard: {url: 'gopher://h/x'}\n", "cameras.yard.url:"),
    "space in url": ("defaults: {model: m.onnx}\ncameras:\n  yard: {url: 'rtsp://h/a b'}\n", "spaces or control"),
    "too many cameras": (
        "limits: {cameras: 1}\ndefaults: {model: m.onnx}\ncameras:\n  a: {url: x}\n  b: {url: y}\n",
        "more than limits.cameras (1)",
    ),
    "limit out of bounds": ("limits: {body_bytes: 10}\n", "limits.body_bytes: must be >= 1024"),
    "bad proxy name": ("http: {hosts: ['evil.example:80']}\n", "http.hosts"),
    "http port range": ("http: {port: 70000}\n", "http.port: must be <= 65535"),
    "yaml alias": (
        "defaults: &d {model: m.onnx}\ncameras:\n  a: {url: x}\nx: *d\n",
        "YAML aliases (*name) are not allowed",
    ),
    "bad crop": ("defaults: {model: m.onnx}\ncameras:\n  yard: {url: x, crop: bars}\n", "cameras.yard.crop:"),
    "negative smoothing": (
        "defaults: {model: m.onnx}\ncameras:\n  yard: {url: x, smoothing: -1}\n",
        "cameras.yard.smoothing: must be >= 0",
    ),
    "bad cluster address": ("cluster: {address: 'head'}\n", "cluster.address: the Ray head's HOST:PORT"),
    "cluster address port": ("cluster: {address: 'head:99999'}\n", "cluster.address: the Ray head's HOST:PORT"),
    "negative cpus": (
        "defaults: {model: m.onnx, resources: {cpus: -1}}\ncameras:\n  a: {url: x}\n",
        "defaults.resources.cpus: must be >= 0",
    ),
    "custom resource named CPU": (
        "defaults: {model: m.onnx}\ncameras:\n  a: {url: x, resources: {custom: {CPU: 1}}}\n",
        "cameras.a.resources.custom: 'CPU': a custom resource is",
    ),
    "bad transport": (
        "defaults: {model: m.onnx}\ncameras:\n  a: {url: x, rtsp_transport: pigeon}\n",
        "cameras.a.rtsp_transport: must be one of tcp, udp",
    ),
    "negative timeout": (
        "defaults: {model: m.onnx, timeout_s: -1}\ncameras:\n  a: {url: x}\n",
        "cameras.a.timeout_s: must be > 0",
    ),
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


def test_a_config_file_is_not_read_past_its_limit(tmp_path):
    big = write(tmp_path, "cameras:\n" + "# padding\n" * 200_000)  # 2 MB: over limits.config_bytes (1 MB)
    result = serve_check(big)
    assert result.returncode == 2 and "limits.config_bytes" in result.stderr, result.stderr
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as fh:  # past what is ever read: refused from its size, not parsed for a minute
        fh.truncate(CONFIG_READ_MAX_BYTES + 1)
    result = serve_check(huge)
    assert result.returncode == 2 and "more than a config file may be" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"url": "http://127.0.0.1:1/leak?h=${HOME}"},
            "cameras.c.url: ${VARIABLE} is expanded only in the config file",
        ),
        ({"url": "x", "mqtt": "mqtt://h/${TOKEN}"}, "cameras.c.mqtt"),
        ({"url": "x", "collect": {"dir": "${HOME}"}}, "cameras.c.collect.dir"),
        ({"url": "x", "reports": "/etc"}, "cameras.c.reports: through the API a path stays inside"),
        ({"url": "x", "model": "../../m.onnx"}, "cameras.c.model"),
        ({"url": "x", "overlay": {"dir": "~root"}}, "cameras.c.overlay.dir"),
    ],
)
def test_the_api_takes_literal_values_and_paths_inside_the_config(body, fragment):
    with pytest.raises(BadInputError) as err:
        check_api_camera("c", body)
    assert fragment in str(err.value)


def test_the_api_refuses_a_bad_name_without_quoting_it():
    with pytest.raises(BadInputError) as err:
        check_api_camera("../x" * 1000, {"url": "x"})
    assert str(err.value).startswith("name: ") and len(str(err.value)) < 80


# -- any camera the API accepts, a restart accepts: the file written is read back the same ---------

_NUMBER = st.one_of(
    st.floats(min_value=0.001, max_value=1e5),
    st.integers(0, 10**6),
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
_URL = st.one_of(
    st.text(max_size=40),
    st.builds(
        "{}://{}{}{}".format,
        st.sampled_from(["rtsp", "rtsps", "http", "https", "rtmp", "udp", "file", "ftp", "mqtt", ""]),
        st.sampled_from(["127.0.0.1", "cam.example", "", "[::1]", "user:pw@h", "h h"]),
        st.one_of(st.just(""), st.integers(-5, 70000).map(":{}".format), st.sampled_from([":x", ":"])),
        st.one_of(st.from_regex(r"(/[a-z0-9?=&%.]{0,8}){0,3}", fullmatch=True), st.text(max_size=12)),
    ),
)
_CAMERA = st.fixed_dictionaries(
    {"url": _URL},
    optional={
        "every": _NUMBER,
        "device": st.sampled_from(["auto", "cpu", "cuda", "gpu", 3]),
        "model": st.sampled_from(["m.onnx", "gone.onnx", "/abs/m.onnx"]),
        "reports": st.text(max_size=10),
        "mqtt": _URL,
        "webhook": _URL,
        "collect": st.fixed_dictionaries(
            {"dir": st.text(max_size=10)},
            optional={"per_hour": _NUMBER, "per_day": _NUMBER, "max_mb": _NUMBER, "max_margin": _NUMBER},
        ),
        "overlay": st.fixed_dictionaries({"dir": st.text(max_size=10)}, optional={"segment_minutes": _NUMBER}),
        "colour": st.just("red"),
    },
)


@pytest.fixture(scope="module")
def api_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    (folder / "m.onnx").write_bytes(b"")
    return folder


_NAME = st.one_of(st.sampled_from(["door", "yard-2"]), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,8}", fullmatch=True))
_LIKELY = st.fixed_dictionaries(  # mostly good values, so that many examples are accepted and read back
    {"url": st.builds("rtsp://127.0.0.1:{}/{}".format, st.integers(1, 65535), st.text(max_size=12))},
    optional={
        "every": st.floats(min_value=0.001, max_value=86400.0),
        "reports": st.from_regex(r"[a-z0-9_. -]{1,10}", fullmatch=True),
        "collect": st.fixed_dictionaries(
            {"dir": st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)},
            optional={"per_hour": st.integers(0, 10**6), "max_margin": st.floats(0.001, 1.0)},
        ),
        "webhook": st.builds("http://h.example:{}/{}".format, st.integers(1, 65535), st.text(max_size=8)),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(_NAME, st.text(max_size=12)), body=st.one_of(_LIKELY, _CAMERA))
def test_any_camera_the_api_accepts_a_restart_accepts(api_dir, name, body):
    path = api_dir / "fleet.yaml"
    raw = {"http": {"port": 0}, "defaults": {"model": "m.onnx"}, "cameras": {name: dict(body)}}
    try:
        check_api_camera(name, body)
        text = yaml.safe_dump(raw, sort_keys=False)
        accepted = check_config(parse_raw(text, path), path, environ={})
    except BadInputError:
        return  # refused with one line: nothing is written
    path.write_text(text)
    again = load_config(path, environ={})  # what `serve --check` and a restart run
    assert again.cameras == accepted.cameras


def test_a_camera_sets_what_watch_sets_for_a_source(tmp_path):
    """crop and smoothing, as `watch --crop/--smooth`: the same SourceSettings reaches the reader."""
    text = "defaults: {model: m.onnx, crop: none}\ncameras:\n  a: {url: x, smoothing: 3, overlay: {dir: o}}\n  b: {url: y, crop: '320:240:0:0'}\n"
    config = load_config(write(tmp_path, text))
    a, b = (config.cameras[n].settings(config.checkpoint_s) for n in ("a", "b"))
    assert a == SourceSettings(every_s=1.0, crop="none", smoothing=3, checkpoint_s=10.0, every_frame=True)
    assert a.sparse_every_s is None and b.sparse_every_s == 1.0  # an overlay decodes every frame
    assert b.crop == SourceSettings(crop="320:240:0:0").crop and b.smoothing is None


def test_every_per_source_option_watch_marks_for_cameras_reaches_the_source(tmp_path):
    """Declared once (stream.options, `camera=True`): the same key, the same record, no fleet code."""
    from stream.fleet.config import CAMERA_OPTIONS

    values = {"crop": "none", "smoothing": 2, "skip_similar": 0.0, "rtsp_transport": "udp"}
    values |= {"rtsp_backend": "opencv", "timeout_s": 7.5, "open_timeout_s": 3.0}
    assert {o.name for o in CAMERA_OPTIONS} == set(values)
    cameras = {"a": {"url": "x", **values}}
    path = write(tmp_path, yaml.safe_dump({"defaults": {"model": "m.onnx"}, "cameras": cameras}))
    config = load_config(path)
    got = config.cameras["a"].settings(config.checkpoint_s)
    assert got == SourceSettings(every_s=1.0, checkpoint_s=config.checkpoint_s, **values)
