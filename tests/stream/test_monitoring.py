"""Monitoring's edges without a broker: flags checked once, source names, the bounded outbox, and
the webhook (a real HTTP server on loopback) getting the same events MQTT gets."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from stream import watch
from stream.errors import BadInputError
from stream.outputs.event_sink import topic_name
from stream.outputs.monitoring import MonitorConfig, source_names, split_names
from stream.outputs.outbox import Message, Outbox
from tests.helpers import write_color_video


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (MonitorConfig(names=("a", "b")), "2 names for 1 sources"),
        (MonitorConfig(names=("a/b",)), "no '/'"),
        (MonitorConfig(metrics_port=70000), "0-65535"),
        (MonitorConfig(mqtt="http://broker"), "expected mqtt://"),
        (MonitorConfig(mqtt="ftp://u:secret@broker"), "u:***@broker"),
        (MonitorConfig(mqtt="mqtt://broker/a/+"), "'+'"),
        (MonitorConfig(mqtt_update_s=-1), "--mqtt-update"),
        (MonitorConfig(min_segment_s=-1), "--min-segment"),
        (MonitorConfig(webhook="ftp://x"), "http://"),
    ],
)
def test_bad_flags_are_refused_with_credentials_masked(config: MonitorConfig, fragment: str):
    with pytest.raises(BadInputError) as caught:
        config.validate(1)
    assert fragment in str(caught.value) and "secret" not in str(caught.value)


def test_mqtt_urls():
    from stream.outputs.mqtt import MqttTarget

    target = MqttTarget.parse("mqtt://user:p%40ss@broker.lan:1884/site/cams")
    assert (target.host, target.port, target.prefix, target.username, target.password) == (
        "broker.lan",
        1884,
        "site/cams",
        "user",
        "p@ss",
    )
    assert target.shown == "mqtt://user:***@broker.lan:1884/site/cams"
    assert MqttTarget.parse("mqtt://broker").prefix == "screentime"
    assert MqttTarget.parse("mqtts://broker").port == 8883


def test_names_come_from_flags_or_masked_urls_and_file_names():
    assert split_names(["a,b", "c"]) == ("a", "b", "c")
    urls = ["rtsp://admin:***@10.0.0.5/live", "/media/one/clip.mp4", "/media/two/clip.mp4"]
    assert source_names((), urls, [True, False, False]) == [urls[0], "clip.mp4", "clip.mp4-2"]
    assert source_names(("door", "yard", "hall"), urls, [True, False, False]) == ["door", "yard", "hall"]
    assert topic_name("rtsp://admin:***@10.0.0.5/live") == "rtsp:_admin:***@10.0.0.5_live"
    assert topic_name("Front door") == "Front_door"


def test_a_full_outbox_drops_its_oldest_and_counts_it():
    outbox = Outbox(capacity=3)
    for i in range(5):
        outbox.put(Message("t", str(i)))
    assert outbox.dropped == 2 and len(outbox) == 3
    assert [outbox.get(0).payload for _ in range(3)] == ["2", "3", "4"]
    assert outbox.get(0.01) is None
    outbox.close()
    outbox.put(Message("t", "late"))
    assert outbox.dropped == 3


class Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict]] = []
    auth: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.bodies.append(json.loads(self.rfile.read(length)))
        self.auth.append(self.headers["Authorization"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_webhook_gets_each_event_in_order(tmp_path, color_model):
    clip = write_color_video(
        tmp_path / "c.mp4", [(1, 0, 3), (2, 3, 3.2), (1, 3.2, 5), (2, 5, 8)], [i / 10 for i in range(80)]
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://user:secret@127.0.0.1:{server.server_port}/hook"
        report = watch(clip, color_model, every_s=0.5, webhook=url, mqtt_update_s=100, name="ep").run()
        deadline = time.monotonic() + 5
        while len(Receiver.bodies) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
        server.server_close()
    seen = [(b["type"], b["after"]["class"], b["after"]["start_s"], b["after"]["end_s"]) for b in Receiver.bodies]
    # The tom flicker at 3.0 (one sample) is a segment of the report but makes no event (it still
    # splits jerry's time in two, as in the report).
    assert ("tom", 3.0, 3.5) in [(s.label, s.start_s, s.end_s) for s in report.segments]
    assert seen == [
        ("new", "jerry", 0.0, None),
        ("end", "jerry", 0.0, 3.0),
        ("new", "jerry", 3.5, None),
        ("end", "jerry", 3.5, 5.0),
        ("new", "tom", 5.0, None),
        ("end", "tom", 5.0, 8.0),
    ]
    assert all(b["source"] == "ep" and b["after"]["mean_confidence"] > 0.9 for b in Receiver.bodies)
    assert set(Receiver.auth) == {"Basic dXNlcjpzZWNyZXQ="}  # user:secret, sent as a header


def test_monitoring_libraries_load_only_when_asked_for():
    code = (
        "import sys, stream, stream.cli, stream.api; sys.exit(bool({'paho', 'prometheus_client'} & set(sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_taken_metrics_port_is_bad_input_before_any_work(tmp_path, color_model):
    clip = write_color_video(tmp_path / "c.mp4", [(1, 0, 1)], [i / 10 for i in range(10)])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(BadInputError, match="--metrics-port"):
            watch(clip, color_model, metrics_port=taken.getsockname()[1])
