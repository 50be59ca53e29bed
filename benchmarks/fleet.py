"""`screentime serve` while cameras come and go: time from `POST /api/cameras` to the new camera's
first sample, time for `DELETE` to finish (its day file final), and the samples per second of the
cameras already running before, while and after others are added and removed.

One `screentime serve` process (this checkout's CLI) over a config with `--base` cameras, each a
loopback gst-rtsp-server process (tests/live) sending a 320x240 25 fps test pattern, H.264 with a
keyframe every second, sampled once a second (`every: 1`). Then `--added` more cameras are added
over the API one by one (each timed to its first sample, polled every 50 ms on
`GET /api/cameras/NAME`), run for `--hold` seconds, and are deleted one by one. The base cameras'
rate is read from their `samples` counters over each phase (asked: 1 per second each).
Goal (issue 23): first sample within one keyframe interval + 2 s = 3 s here.

Usage: nice python benchmarks/fleet.py [--base 2] [--added 2] [--phase 10] [--model M.onnx]
Without --model the tiny colour model (tests/helpers.py): inference is then nearly free.

`--cluster`: the same cameras counted by one `serve` process, then by `serve --address` on a
loopback Ray cluster (`ray start` processes: a head without CPUs for cameras and `--nodes` worker
nodes, as tests/ray_nodes.py starts them). For each: the samples per second per camera and the CPU
seconds per camera-second, split into the front door (the serve process), the camera workers
(`ray::CameraWorker` processes) and Ray's own daemons (everything else in the nodes' sessions),
read from /proc. Then one node is killed outright and the time to its cameras' first sample on
another node is measured (goal: keyframe interval + 5 s = 6 s here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "live")]


def api(port: int, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"null")


def samples(port: int) -> dict[str, int]:
    return {c["name"]: c["samples"] for c in api(port, "GET", "/api/cameras")}


def rate(port: int, names: list[str], seconds: float) -> float:
    """Samples per second per camera of `names` over `seconds`."""
    before, started = samples(port), time.monotonic()
    time.sleep(seconds)
    after, took = samples(port), time.monotonic() - started
    return sum(after[n] - before[n] for n in names) / took / len(names)


def main() -> int:
    from rich.console import Console
    from rich.table import Table
    from rtsp_control import RtspServer, free_port

    from tests.helpers import make_color_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=int, default=2)
    parser.add_argument("--added", type=int, default=2)
    parser.add_argument("--phase", type=float, default=10.0, help="seconds each rate is measured over")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--cluster", action="store_true", help="single serve vs serve --address (see above)")
    parser.add_argument("--cameras", type=int, default=4, help="--cluster: cameras counted")
    parser.add_argument("--nodes", type=int, default=3, help="--cluster: worker nodes")
    args = parser.parse_args()
    if args.cluster:
        from fleet_cluster import compare

        return compare(args.cameras, args.nodes, args.phase, args.model)

    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    model = args.model.resolve() if args.model else make_color_model(work / "m.onnx")
    servers = [RtspServer(work, f"/cam{i}") for i in range(args.base + args.added)]
    port = free_port()
    proc = None
    try:
        urls = [s.start() for s in servers]
        base = {f"base{i}": {"url": urls[i]} for i in range(args.base)}
        config = {"http": {"port": port}, "defaults": {"model": str(model), "every": 1.0}, "cameras": base}
        (work / "fleet.yaml").write_text(json.dumps(config))  # JSON is YAML
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = (work / "serve.log").open("w")
        cmd = [sys.executable, "-m", "stream.cli", "serve", str(work / "fleet.yaml")]
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if all(n >= 3 for n in samples(port).values()) and len(samples(port)) == args.base:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        names = list(base)
        before = rate(port, names, args.phase)
        first_sample, during_started = [], time.monotonic()
        base_at = samples(port)
        for i in range(args.added):
            name = f"added{i}"
            posted = time.monotonic()
            api(port, "POST", "/api/cameras", {"name": name, "url": urls[args.base + i]})
            while api(port, "GET", f"/api/cameras/{name}")["samples"] < 1:
                time.sleep(0.05)
            first_sample.append(time.monotonic() - posted)
        time.sleep(args.phase)
        removal = []
        for i in range(args.added):
            started = time.monotonic()
            api(port, "DELETE", f"/api/cameras/added{i}")
            removal.append(time.monotonic() - started)
        took = time.monotonic() - during_started
        base_after = samples(port)
        during = sum(base_after[n] - base_at[n] for n in names) / took / len(names)
        after = rate(port, names, args.phase)
        proc.terminate()
        code = proc.wait(60)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        for s in servers:
            s.stop()

    table = Table(title=f"screentime serve: cameras coming and going ({platform.node()}, {os.cpu_count()} CPUs)")
    for col in ("base cameras", "added", "POST -> first sample s", "DELETE s", "base samples/s/camera"):
        table.add_column(col, justify="right")
    table.add_row(
        str(args.base),
        str(args.added),
        " ".join(f"{t:.2f}" for t in first_sample),
        " ".join(f"{t:.2f}" for t in removal),
        f"{before:.2f} before / {during:.2f} during / {after:.2f} after (asked 1.00)",
    )
    Console(width=160).print(table)
    print(f"serve exited {code}; model {model.name}; work dir {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
