"""Every kind of source declares the same members (stream.sources.capture), so the reader never probes one."""

from __future__ import annotations

import pytest

from stream.sources.capture import Capture, CaptureBase
from stream.sources.file import FileSource
from stream.sources.network import PyAVNetworkSource
from stream.sources.open import NetworkSource, WebcamSource
from tests.helpers import ScriptedSource


@pytest.mark.parametrize(
    "source",
    [
        FileSource("clip.mp4", sparse_every_s=1.0),
        PyAVNetworkSource("rtsp://127.0.0.1:1/x"),
        NetworkSource("http://127.0.0.1:1/x"),
        WebcamSource(0),
        ScriptedSource("scripted", [(0.0, 0)]),
    ],
    ids=lambda s: type(s).__name__,
)
def test_every_source_is_a_capture(source) -> None:
    assert isinstance(source, Capture)
    assert source.open_timeout_s >= 0 and source.timeout_s >= 0 and source.early_s >= 0


def test_a_source_without_capabilities_decodes_every_frame_and_lasts_one_interval() -> None:
    plain = CaptureBase()
    assert plain.picture_ready and plain.decoded is None and list(plain.discontinuities) == []
    plain.skip_to(5.0)  # nothing to skip
    assert plain.end_after_s(9.0, 0.5) == 9.5
    assert plain.end_after_s(9.0, None) == 9.0


def test_network_sources_declare_their_timeouts() -> None:
    pyav = PyAVNetworkSource("rtsp://127.0.0.1:1/x", timeout_s=3.0, open_timeout_s=7.0)
    assert (pyav.timeout_s, pyav.open_timeout_s) == (3.0, 7.0)
    assert pyav.reconnectable and pyav.live and pyav.decoded == 0
