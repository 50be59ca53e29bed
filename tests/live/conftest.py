"""A real RTSP server on loopback (gst-rtsp-server, run by the system Python) for the live tests.

GStreamer's Python bindings are Debian packages for /usr/bin/python3, not wheels in the venv, so
the server is a subprocess. A machine without them FAILS these tests rather than skipping them:
a skip would quietly hide that the RTSP path is untested.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_control import Broker
from rtsp_control import APT_PACKAGES, SERVER_SCRIPT, SYSTEM_PYTHON, RtspServer


@pytest.fixture(scope="session")
def gst_rtsp_available() -> None:
    """Fail (not skip) with the install line for .ci/run when the system GStreamer is incomplete."""
    hint = f"the live RTSP tests need GStreamer for the system Python; .ci/run must `apt-get install -y {APT_PACKAGES}`"
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail(f"{SYSTEM_PYTHON} not found: {hint}")
    check = subprocess.run(
        [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    if check.returncode != 0:
        detail = (check.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.fail(f"{hint} ({detail})")


@pytest.fixture
def rtsp_server(gst_rtsp_available: None, tmp_path: Path) -> Iterator[RtspServer]:
    server = RtspServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto broker on a free loopback port (fails with the install line without it)."""
    broker = Broker(tmp_path)
    try:
        yield broker.start()
    finally:
        broker.kill()
