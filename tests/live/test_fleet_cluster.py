"""`screentime serve --address` on a real Ray cluster on loopback (a head and two worker nodes,
`ray.cluster_utils.Cluster`) with real RTSP cameras: the cameras spread over the nodes, a node
killed and its camera placed again with the outage in the day file, the front door killed with
kill -9 and restarted, a camera added through the API placed on a node, and an earlier worker's
late records refused. One cluster for the module: starting one costs seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import decode_jpeg, make_color_model, mjpeg_parts, write_color_video
from ray_nodes import RayNodes
from rtsp_control import RtspServer, free_port
from serve_control import EVERY_S, Serve, assert_carried_on, day_file, write_config

from stream.model.engine import file_sha256

ray = pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")

MOVE_GOAL_S = 30.0  # node loss -> a sample on another node (the keyframe interval here is 1 s, plus Ray's notice)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head with no CPUs for cameras and two worker nodes of two CPUs each, on 127.0.0.1, with a
    token (`ray start`, as the README says); a dead node is noticed within seconds."""
    nodes = RayNodes(tmp_path_factory.mktemp("ray"), head_cpus=0, fast_failure=True)
    try:
        nodes.add("n1", cpus=2)
        nodes.add("n2", cpus=2)
        yield nodes
    finally:
        nodes.stop()


def _serve(config: Path, port: int, nodes: RayNodes) -> Serve:
    return Serve(config, port, env=nodes.env, args=("--address", nodes.address))


def _node(serve: Serve, name: str) -> str | None:
    return serve.cameras()[name]["node"]["id"]


def _workers() -> int:
    """Camera worker processes on this machine (Ray titles an actor's process after its class)."""
    found = 0
    for entry in Path("/proc").iterdir():
        try:
            found += entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::CameraWorker")
        except OSError:
            continue
    return found


def test_cameras_spread_move_off_a_dead_node_and_count_once(cluster, rtsp_server: RtspServer, tmp_path: Path):
    cam_b = RtspServer(tmp_path, "/b")
    try:
        make_color_model(tmp_path / "m.onnx")
        url_a, url_b = rtsp_server.start(pattern="red"), cam_b.start(pattern="blue")
        config, port = tmp_path / "fleet.yaml", free_port()
        write_config(config, port, {"a": {"url": url_a}, "b": {"url": url_b}})
        serve = _serve(config, port, cluster)
        try:
            serve.wait(lambda: serve.samples("a") >= 3 and serve.samples("b") >= 3, 90)
            serve.wait(lambda: _node(serve, "a") and _node(serve, "b"), 30)
            where = {name: _node(serve, name) for name in ("a", "b")}
            assert where["a"] != where["b"], where  # spread over the two worker nodes
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            host = socket.gethostname()  # the nodes are this machine
            assert f'screentime_camera_node_info{{host="{host}",node="{where["a"]}",source="a"}} 1.0' in metrics
            assert where["a"] in metrics and 'screentime_samples_total{source="a"}' in metrics
            # the node running a dies: a is placed on the other node, its samples go on
            names = cluster.names()
            assert {names[where["a"]], names[where["b"]]} == {"n1", "n2"}
            lost = names[where["a"]]
            lost_at = cluster.kill(lost)
            serve.wait(lambda: serve.cameras()["a"]["node"]["epoch"] == 2, 60)  # the loss noticed, placed again
            placed_s, carried = time.monotonic() - lost_at, serve.samples("a")  # the lost worker's, carried on
            serve.wait(lambda: serve.samples("a") > carried, 60)
            moved_s = time.monotonic() - lost_at
            listed = serve.cameras()["a"]
            print(f"node lost -> placed again {placed_s:.1f} s -> first sample there {moved_s:.1f} s: {listed['node']}")
            assert listed["node"]["id"] == where["b"] and listed["node"]["moves"] == 1
            assert moved_s <= MOVE_GOAL_S
            serve.wait(lambda: serve.samples("a") >= carried + 4, 30)
            assert serve.stop() == 0
        finally:
            if serve.proc.poll() is None:
                serve.proc.kill()
    finally:
        cam_b.stop()
        for name in ("n1", "n2"):  # two worker nodes again for the next test
            if name not in cluster.names().values():
                cluster.add(name, cpus=2)
    a = json.loads(day_file(tmp_path, "a").read_text())
    b = json.loads(day_file(tmp_path, "b").read_text())
    # the time a was down is one outage, listed and not counted; every other second counted once
    assert len(a["outages"]) == 1, a["outages"]
    outage = a["outages"][0]
    assert 0.5 < outage["end_s"] - outage["start_s"] < MOVE_GOAL_S + 5
    assert a["duration_s"] == pytest.approx(sum(a["screen_time_s"].values()), abs=0.01)
    assert a["screen_time_s"]["jerry"] == pytest.approx(a["duration_s"], abs=2 * EVERY_S)
    assert b["outages"] == [] and b["duration_s"] == pytest.approx(sum(b["screen_time_s"].values()), abs=0.01)
    assert a["reconnects"] >= 1 and a["ended"] == "interrupted" and b["ended"] == "interrupted"
    span = a["end_s"] - a["start_s"]
    assert a["duration_s"] == pytest.approx(span - (outage["end_s"] - outage["start_s"]), abs=0.05)


def test_front_door_killed_restarted_and_a_camera_added(cluster, rtsp_server: RtspServer, tmp_path: Path):
    make_color_model(tmp_path / "m.onnx")
    url = rtsp_server.start(pattern="red")
    config, port = tmp_path / "fleet.yaml", free_port()
    write_config(config, port, {"a": {"url": url}})
    first = _serve(config, port, cluster)
    try:
        first.wait(
            lambda: (
                day_file(tmp_path, "a").exists() and json.loads(day_file(tmp_path, "a").read_text())["samples"] >= 4
            ),
            90,
        )
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    left = json.loads(day_file(tmp_path, "a").read_text())
    again = _serve(config, port, cluster)
    try:
        again.wait(lambda: again.samples("a") >= 4, 90)
        # the live view: pictures cross from the node only while someone watches, and then they do
        parts = mjpeg_parts(f"http://127.0.0.1:{port}/view/a.mjpg", 2.0)
        assert parts and decode_jpeg(parts[-1][1]).shape == (240, 320, 3)
        # a camera added through the API: placed on a node of the cluster
        status, body = again.api("POST", "/api/cameras", {"name": "c", "url": url, "every": EVERY_S})
        assert status == 201 and body["changes"]["added"] == ["c"], body
        again.wait(lambda: again.samples("c") >= 2 and _node(again, "c"), 90)
        # the killed front door's worker went with it (Ray ends a dead driver's actors): a and c run, once each
        again.wait(lambda: _workers() == 2, 60)
        alive = cluster.names()
        assert alive.get(_node(again, "c")) in ("n1", "n2") and alive.get(_node(again, "a")) in ("n1", "n2")
        # the model swapped: shipped to the running workers, which count with it from then on
        old_sha = again.cameras()["a"]["model_sha256"]
        make_color_model(tmp_path / "new.onnx", sharpness=5.0)
        os.replace(tmp_path / "new.onnx", tmp_path / "m.onnx")
        new_sha = file_sha256(tmp_path / "m.onnx")
        again.wait(lambda: again.cameras()["a"]["model_sha256"] == new_sha, 30)
        swapped_at = again.samples("a")
        again.wait(lambda: again.samples("a") >= swapped_at + 4, 30)
        assert again.cameras()["a"]["node"]["epoch"] == 1  # swapped in place, not placed again
        assert again.stop() == 0
    finally:
        if again.proc.poll() is None:
            again.proc.kill()
    today = json.loads(day_file(tmp_path, "a").read_text())
    assert_carried_on(left, today)
    assert [m["model_sha256"] for m in today["models"]][-2:] == [old_sha, new_sha]  # the worker said which counted


def test_an_earlier_workers_late_records_are_refused(cluster, tmp_path: Path):
    """Two workers of one camera, as when the front door gave up on a silent one: the first one's
    records, taken late, are refused and counted; the worker itself refuses a take under the new
    lease. A driver of its own joins the cluster (Ray reads its token settings when imported)."""
    make_color_model(tmp_path / "m.onnx")
    write_color_video(tmp_path / "v.mp4", [(1, 0.0, 4.0)], [i / 10 for i in range(40)])
    script = Path(__file__).with_name("stale_records.py")
    done = subprocess.run(
        [sys.executable, str(script), cluster.address, str(tmp_path)],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["late"] > 0 and found["refused"] == found["late"]  # every late record refused, counted
    assert found["dispatched_late"] == 0  # none reached an output
    assert "lease 2 is not this worker's (1)" in found["stale_take"]
    assert found["fresh"] > 0 and found["dispatched_fresh"] > 0  # the current worker's records pass
