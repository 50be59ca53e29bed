"""A real Mosquitto broker on loopback for the live tests, and a paho subscriber that records what it gets.

The broker is a subprocess on a free port with a config file written here (anonymous, no
persistence: a restart forgets retained messages, the hard case for a publisher). A machine
without mosquitto FAILS these tests with the install line rather than skipping them.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from rtsp_control import free_port

INSTALL_HINT = "bash scripts/install-system-deps.sh (Debian packages mosquitto and prometheus)"


class Broker:
    """Start, SIGKILL and restart one Mosquitto broker on the same port."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("mosquitto") is None:
            pytest.fail(f"mosquitto not found: {INSTALL_HINT}")
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._starts = 0

    def url(self, prefix: str = "", credentials: str = "") -> str:
        return f"mqtt://{credentials}127.0.0.1:{self.port}/{prefix}"

    def start(self) -> Broker:
        config = self.directory / "mosquitto.conf"
        config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self._starts += 1
        log = (self.directory / f"mosquitto_{self._starts}.log").open("w")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited with {self.proc.returncode}; see {log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        pytest.fail("mosquitto did not listen within 10 s")

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a goodbye, as when its machine loses power."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() when it arrived
    topic: str
    payload: str
    retain: bool

    def json(self) -> dict:
        return json.loads(self.payload)


class Subscriber:
    """Subscribes to `topic` (again after every reconnect) and keeps everything it receives."""

    def __init__(self, port: int, topic: str = "#") -> None:
        self.messages: list[Received] = []
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._topic = topic
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.reconnect_delay_set(0.1, 0.5)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *args: self.connected.clear()
        client.on_message = self._on_message
        client.on_subscribe = lambda *args: self.connected.set()
        client.connect_async("127.0.0.1", port)
        client.loop_start()
        self._client = client
        if not self.connected.wait(10):
            pytest.fail("the test's MQTT subscriber could not connect")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe(self._topic, qos=1)  # connected once the broker acknowledges it (on_subscribe)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append(Received(time.monotonic(), message.topic, message.payload.decode(), message.retain))

    def received(self, topic: str | None = None) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def wait_for(self, match: Callable[[Received], bool], timeout_s: float, what: str) -> Received:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in self.received():
                if match(message):
                    return message
            time.sleep(0.05)
        seen = "\n".join(f"{m.topic} {m.payload[:120]}" for m in self.received()[-20:])
        pytest.fail(f"no MQTT message {what} within {timeout_s:.0f} s; the last ones:\n{seen}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def event(kind: str, label: str) -> Callable[[Received], bool]:
    """Matches a segment event of one type and class."""

    def match(message: Received) -> bool:
        if not message.topic.endswith("/events"):
            return False
        data = message.json()
        return data["type"] == kind and data["after"]["class"] == label

    return match
