"""`screentime batch` through a real Ray: a local one shared by the module (2 CPUs), and a real
two-node cluster started with `ray start` as the README says, joined by the CLI with --address.

Each video's report must be `watch --report`'s, a corrupt video is a summary row with its error
and never stops the batch, a second run redoes nothing, and a run stopped after its first video
is finished by the next one.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stream import watch
from stream.batch.plan import BatchConfig
from stream.batch.run import run_batch
from stream.batch.summary import Status
from tests.helpers import write_color_video
from tests.ray_nodes import free_port, ray_start, wait_for

ray = pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = {"started_at", "updated_at"}
EVERY_S = 0.5


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module: starting one costs seconds. Its workers inherit this
    process's environment (PYTHONPATH included), so they run this checkout's code."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    (root / "season2").mkdir()
    write_color_video(root / "ep1.mp4", [(0, 0.0, 3.0), (1, 3.0, 7.0), (2, 7.0, 10.0)], [i / 10 for i in range(100)])
    write_color_video(root / "season2" / "ep1.mp4", [(2, 0.0, 2.0), (1, 2.0, 6.0)], [i / 25 for i in range(150)])
    vfr = [i / 30 for i in range(60)] + [2 + i / 5 for i in range(30)]
    write_color_video(root / "season2" / "ep2.mkv", [(1, 0.0, 4.0), (0, 4.0, 8.0)], vfr, noise=25)
    (root / "ep3.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated, corrupt" * 40)
    return root


def config(archive: Path, out: Path, model: Path, **extra) -> BatchConfig:
    return BatchConfig(inputs=(str(archive),), model=model, out=out, every_s=EVERY_S, **extra)


def without_volatile(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in VOLATILE}


def summary(out: Path) -> list[dict[str, str]]:
    with (out / "summary.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_reports_equal_watch_and_a_second_run_redoes_nothing(local_ray, archive, color_model, tmp_path):
    out = tmp_path / "out"
    processed = []
    result = run_batch(config(archive, out, color_model, workers=2), on_video=processed.append)
    assert len(result.outcomes) == len(processed) == 4
    assert sorted(o.status for o in result.outcomes) == [Status.ANALYSED] * 3 + [Status.FAILED]
    for outcome in result.with_status(Status.ANALYSED):
        written = json.loads((out / outcome.video.report_name).read_text())
        expected = watch(outcome.video.source, color_model, every_s=EVERY_S).run().to_dict()
        assert without_volatile(written) == without_volatile(expected), outcome.video.source
        assert outcome.decoded_on and outcome.inferred_on  # Ray node ids, for the summary
    assert len({o.video.report_name for o in result.outcomes}) == 4  # two ep1.mp4, two reports
    (failed,) = result.failed
    assert failed.video.source.endswith("ep3.mp4") and "not a video" in failed.error
    rows = summary(out)
    assert {r["video"] for r in rows} == {o.video.source for o in result.outcomes}
    assert [r["error"] for r in rows if r["status"] == "failed"] == [failed.error]
    assert len(rows) == 3 * 3 + 1  # three classes per analysed video, one row for the failure
    assert (out / "summary.parquet").is_file()

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    processed.clear()
    again = run_batch(config(archive, out, color_model, workers=2), on_video=processed.append)
    assert [o.video.source for o in processed] == [failed.video.source]  # only the failure is retried
    assert sorted(o.status for o in again.outcomes) == [Status.DONE] * 3 + [Status.FAILED]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == stamps  # not rewritten
    assert len(summary(out)) == 10  # the summary still covers the whole archive


def test_a_run_stopped_after_its_first_video_is_finished_by_the_next(local_ray, archive, color_model, tmp_path):
    out = tmp_path / "out"
    first = []

    def stop_after_one(outcome) -> None:
        first.append(outcome)
        raise KeyboardInterrupt  # what Ctrl-C does in the middle of a batch

    with pytest.raises(KeyboardInterrupt):
        run_batch(config(archive, out, color_model), on_video=stop_after_one)
    statuses = [r["status"] for r in summary(out)]
    assert "not run" in statuses  # the summary is written on the way out
    reports_before = {p.name for p in out.glob("*.json")}
    assert len(reports_before) == (1 if first[0].status is Status.ANALYSED else 0)

    processed = []
    result = run_batch(config(archive, out, color_model), on_video=processed.append)
    assert len(processed) == 4 - len(reports_before)  # only what the first run left undone
    assert sorted(o.status for o in result.outcomes) == sorted(
        [Status.DONE] * len(reports_before) + [Status.ANALYSED] * (3 - len(reports_before)) + [Status.FAILED]
    )
    assert len(list(out.glob("*.json"))) == 3


# -- two nodes -------------------------------------------------------------------------------


@pytest.fixture
def two_nodes(tmp_path):
    """A head and a second node (1 CPU each) from `ray start`, with a token of their own; the
    nodes' workers get this checkout on PYTHONPATH, as a real cluster needs screentime installed."""
    port = free_port()
    temp = Path(f"/tmp/st{secrets.token_hex(3)}")  # Ray's socket paths must stay short
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # a test cluster has nothing to drain: stop at once
    }
    head = ray_start(
        env,
        tmp_path / "head.log",
        "--head",
        "--num-cpus=1",
        f"--port={port}",
        "--include-dashboard=false",
        f"--ray-client-server-port={free_port()}",
        f"--temp-dir={temp}",
    )
    nodes = [head]
    try:
        wait_for(tmp_path / "head.log", "Ray runtime started", head)
        nodes.append(
            ray_start(
                env, tmp_path / "node2.log", f"--address=127.0.0.1:{port}", "--num-cpus=1", '--resources={"node2": 1}'
            )
        )
        wait_for(tmp_path / "node2.log", "Ray runtime started", nodes[1])
        yield f"127.0.0.1:{port}", env
    finally:
        for node in reversed(nodes):  # one after the other, the head last: seconds, not half a minute
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=60)
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def test_two_node_cluster_shares_the_work(two_nodes, archive, color_model, tmp_path):
    address, env = two_nodes
    out = tmp_path / "out"
    command = [sys.executable, "-m", "stream.cli", "batch", str(archive), "--model", str(color_model)]
    command += ["--out", str(out), "--every", str(EVERY_S), "--address", address, "--workers", "2"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 101, result.stderr  # 100 + one failed video
    assert "ep3.mp4" in result.stderr and "Traceback" not in result.stderr
    rows = summary(out)
    decoded = {r["decoded_on"] for r in rows}
    inferred = {n for r in rows for n in r["inferred_on"].split(";") if n}
    assert len(decoded | inferred) == 2, rows  # work was placed on both nodes
    ep1 = json.loads((out / next(r["report"] for r in rows if r["video"].endswith("/ep1.mp4"))).read_text())
    source = ep1["source"]
    assert without_volatile(ep1) == without_volatile(watch(source, color_model, every_s=EVERY_S).run().to_dict())


def test_an_address_where_no_cluster_answers_is_one_line_at_once(archive, color_model, tmp_path):
    command = [sys.executable, "-m", "stream.cli", "batch", str(archive), "--model", str(color_model)]
    command += ["--out", str(tmp_path / "out"), "--address", f"127.0.0.1:{free_port()}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("screentime: error: --address 127.0.0.1:")
