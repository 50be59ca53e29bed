import os

import pytest

from stream.errors import BadInputError, SourceConnectionError
from stream.settings import SourceSettings
from stream.sources.open import (
    FileSource,
    NetworkSource,
    PyAVNetworkSource,
    SourceKind,
    classify,
    mask_text,
    mask_url,
    open_source,
)


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("0", SourceKind.WEBCAM),
        ("12", SourceKind.WEBCAM),
        ("rtsp://cam/x", SourceKind.NETWORK),
        ("HTTPS://cam/x.m3u8", SourceKind.NETWORK),
        ("clip.mp4", SourceKind.FILE),
        ("C:/videos/a.mp4", SourceKind.FILE),
    ],
)
def test_classify(spec, kind):
    assert classify(spec) is kind


def test_credentials_are_masked():
    assert mask_url("rtsp://admin:s3cr3t@10.0.0.2:554/live") == "rtsp://admin:***@10.0.0.2:554/live"
    assert mask_url("rtsp://token@cam/live") == "rtsp://***@cam/live"
    assert mask_url("rtsp://cam/live") == "rtsp://cam/live"
    assert mask_text("open rtsp://u:p4ss@h/x failed") == "open rtsp://u:***@h/x failed"


@pytest.mark.parametrize(
    ("spec", "backend", "kind"),
    [
        ("rtsp://cam/live", None, PyAVNetworkSource),  # the default: decodes only what samples need
        ("RTSPS://cam/live", "pyav", PyAVNetworkSource),
        ("rtsp://cam/live", "opencv", NetworkSource),
        ("http://127.0.0.1:9/live.mjpg", "opencv", PyAVNetworkSource),  # other schemes: PyAV whatever the flag
        ("udp://127.0.0.1:9", None, PyAVNetworkSource),
        ("clip.mp4", "opencv", FileSource),
        ("file:///videos/clip%201.mp4", None, FileSource),
    ],
)
def test_open_source_picks_the_rtsp_backend(spec, backend, kind):
    source = open_source(spec, SourceSettings(every_s=1.0, **({"rtsp_backend": backend} if backend else {})))
    assert type(source) is kind
    with pytest.raises(BadInputError, match="pyav, opencv"):
        open_source(spec, SourceSettings(rtsp_backend="gstreamer"))


def test_pyav_stream_errors_are_one_line_without_the_password():
    source = PyAVNetworkSource("rtsp://admin:s3cr3t@127.0.0.1:9/none", timeout_s=1.0)
    with pytest.raises(SourceConnectionError) as info:
        source.open()
    message = str(info.value)
    assert message.startswith("rtsp://admin:***@127.0.0.1:9/none: cannot connect (")
    assert "s3cr3t" not in message and "\n" not in message and info.value.__cause__ is None
    assert source.grab() is None  # closed: lost, never a stale frame


def test_stream_options_do_not_leak_into_later_captures():
    with pytest.raises(SourceConnectionError):
        NetworkSource("rtsp://127.0.0.1:9/none", timeout_s=1.0).open()
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ


def test_cpu_prefers_the_int8_twin(tmp_path):
    import shutil

    from stream.errors import ModelError
    from stream.model.engine import choose_model
    from tests.helpers import make_color_model

    fp32 = make_color_model(tmp_path / "m.onnx")
    assert choose_model(fp32, "cpu") == fp32  # no twin: fp32
    with pytest.raises(ModelError, match="export with --int8"):
        choose_model(fp32, "cpu", "int8")
    shutil.copy(fp32, tmp_path / "m.int8.onnx")
    assert choose_model(fp32, "cpu") == tmp_path / "m.int8.onnx"
    assert choose_model(fp32, "cpu", "fp32") == fp32
    assert choose_model(tmp_path / "m.int8.onnx", "cpu") == tmp_path / "m.int8.onnx"
