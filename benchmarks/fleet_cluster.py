"""`benchmarks/fleet.py --cluster`: one `serve` against `serve --address` on a loopback Ray cluster.

See fleet.py's docstring for what is measured. CPU is read from /proc (utime + stime of every
process of interest, before and after a phase), so it counts what each process did, whatever
else the machine runs.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "live")]
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(session id, CPU seconds) of a process, None if it has gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return int(fields[3]), (int(fields[11]) + int(fields[12])) / TICK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu(front: int, sessions: set[int]) -> dict[str, float]:
    """CPU seconds so far: the front door, the camera workers, and Ray's other processes."""
    found = {"front door": 0.0, "workers": 0.0, "ray daemons": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None:
            continue
        session, seconds = stat
        if pid == front:
            found["front door"] += seconds
        elif session in sessions:
            found["workers" if "CameraWorker" in _cmdline(pid) else "ray daemons"] += seconds
    return found


def api(port: int, path: str):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as response:
        return json.loads(response.read())


def cameras(port: int) -> dict[str, dict]:
    return {c["name"]: c for c in api(port, "/api/cameras")}


def wait(what, timeout_s: float, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            got = what()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(0.2)
    raise SystemExit(f"timed out:\n{log.read_text()[-3000:]}")


def phase(
    work: Path, urls: list[str], model: Path, seconds: float, nodes=None
) -> tuple[dict[str, float], float, dict | None]:
    """One serve over the cameras: (CPU per camera-second by part, samples/s per camera, node loss)."""
    from rtsp_control import free_port

    port = free_port()
    config = {
        "http": {"port": port},
        "defaults": {"model": str(model), "every": 1.0, "resources": {"cpus": 0.5}},
        "cameras": {f"cam{i}": {"url": url} for i, url in enumerate(urls)},
    }
    (work / "fleet.yaml").write_text(json.dumps(config))  # JSON is YAML
    env = {**(nodes.env if nodes else os.environ), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", "stream.cli", "serve", str(work / "fleet.yaml")]
    command += ["--address", nodes.address] if nodes else []
    log = work / f"serve-{'cluster' if nodes else 'single'}.log"
    proc = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    sessions = {p.pid for _, p in nodes.nodes} if nodes else set()
    lost = None
    try:
        wait(
            lambda: len(cameras(port)) == len(urls) and all(c["samples"] >= 3 for c in cameras(port).values()),
            120,
            proc,
            log,
        )
        time.sleep(2)
        before, at, started = cpu(proc.pid, sessions), cameras(port), time.monotonic()
        time.sleep(seconds)
        after, then, took = cpu(proc.pid, sessions), cameras(port), time.monotonic() - started
        per = {k: (after[k] - before[k]) / took / len(urls) for k in before}
        rate = sum(then[n]["samples"] - at[n]["samples"] for n in at) / took / len(urls)
        if nodes:
            lost = node_loss(port, nodes, proc, log)
        proc.terminate()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return per, rate, lost


def node_loss(port: int, nodes, proc: subprocess.Popen, log: Path) -> dict:
    """Kill the node running cam0; seconds until each of its cameras samples on another node."""
    names = nodes.names()
    listed = cameras(port)
    victim = names[listed["cam0"]["node"]["id"]]
    moved = [n for n, c in listed.items() if names.get(c["node"]["id"]) == victim]
    killed = nodes.kill(victim)
    placed, first = {}, {}
    while len(first) < len(moved):
        if time.monotonic() - killed > 120:
            raise SystemExit(f"cameras not back in 120 s:\n{log.read_text()[-3000:]}")
        now = cameras(port)
        for name in moved:
            node = now[name]["node"]
            if name not in placed and node["epoch"] >= 2 and node["id"]:
                placed[name] = (time.monotonic() - killed, now[name]["samples"])
            if name in placed and name not in first and now[name]["samples"] > placed[name][1]:
                first[name] = time.monotonic() - killed
        time.sleep(0.05)
    return {
        "node": victim,
        "cameras": len(moved),
        "placed_s": max(p for p, _ in placed.values()),
        "first_s": max(first.values()),
    }


def compare(count: int, worker_nodes: int, seconds: float, model: Path | None) -> int:
    from rich.console import Console
    from rich.table import Table
    from rtsp_control import RtspServer

    from tests.helpers import make_color_model
    from tests.ray_nodes import RayNodes

    work = Path(tempfile.mkdtemp(prefix="fleet-cluster-"))
    model = model.resolve() if model else make_color_model(work / "m.onnx")
    servers = [RtspServer(work, f"/cam{i}") for i in range(count)]
    nodes = None
    try:
        urls = [s.start() for s in servers]
        single, single_rate, _ = phase(work, urls, model, seconds)
        nodes = RayNodes(work, head_cpus=0, fast_failure=True)
        for i in range(worker_nodes):
            nodes.add(f"n{i + 1}", cpus=2)
        clustered, cluster_rate, lost = phase(work, urls, model, seconds, nodes)
    finally:
        if nodes is not None:
            nodes.stop()
        for s in servers:
            s.stop()
    flags = sorted(set(re.findall(r"\bavx\w*", Path("/proc/cpuinfo").read_text())))
    title = f"serve alone vs serve --address ({count} cameras, 1 sample/s, {platform.node()}, {os.cpu_count()} CPUs)"
    table = Table(title=title)
    for col in ("", "samples/s/camera", "front door CPU", "camera workers CPU", "Ray daemons CPU", "total CPU"):
        table.add_column(col, justify="right")
    for label, per, rate in (
        ("one serve", single, single_rate),
        (f"{worker_nodes}-node cluster", clustered, cluster_rate),
    ):
        total = sum(per.values())
        table.add_row(label, f"{rate:.2f}", *(f"{per[k] * 100:.1f}%" for k in per), f"{total * 100:.1f}%")
    console = Console(width=160)
    console.print(table)
    print("CPU: share of one core per camera, over the phase; CPU flags:", " ".join(flags))
    assert lost is not None
    print(
        f"node loss: {lost['node']} killed with {lost['cameras']} cameras; "
        f"placed again after {lost['placed_s']:.1f} s, "
        f"first sample on another node after {lost['first_s']:.1f} s (goal: keyframe 1 s + 5 s)"
    )
    door = clustered["front door"]
    print(
        f"front door: {door * 100:.2f}% of a core per camera -> about {1 / door:.0f} cameras per core"
        if door > 0
        else "front door: no CPU measured"
    )
    print(f"model {model.name}; work dir {work}")
    return 0
