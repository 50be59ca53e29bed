"""What monitoring costs the analysis: samples per second with `--metrics-port` and `--mqtt` on vs off.

A synthetic colour file (scenes change every few seconds, so segment events flow) is analysed
with `--every 0` (every frame a sample) and the tiny colour-classifier ONNX model (tests/helpers.py),
so the pipeline, not the model, is the bottleneck and any per-sample cost of the sinks shows.
"on" runs publish to a real Mosquitto broker started here on a free loopback port and serve
/metrics, scraped once a second by a thread, as Prometheus would (more often than it does).
Runs alternate off/on so a drifting machine load hits both alike; the median of N runs each is
compared. The rate is samples over the time from the first sample to the last; the whole run's
seconds (model load, broker connection, the final messages and closing included) are shown apart.
Goal: "on" within 2% of "off".

Usage: python benchmarks/monitoring.py [--runs 3] [--seconds 600] [--fps 25] [--size 160x120]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from stream.api import watch  # noqa: E402
from stream.logs import quiet_native_logs  # noqa: E402
from tests.helpers import make_color_model, write_color_video  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def start_broker(directory: Path) -> tuple[subprocess.Popen, int]:
    if shutil.which("mosquitto") is None:
        sys.exit("mosquitto not found: bash scripts/install-system-deps.sh")
    port = free_port()
    config = directory / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("mosquitto did not start")


def one_run(clip: Path, model: Path, broker_port: int | None) -> tuple[float, int, int, float]:
    """(samples per second from the first sample to the last, samples, MQTT messages sent, seconds
    of the whole run: opening, connecting and closing included) of one run over the file."""
    monitoring = {} if broker_port is None else {"metrics_port": 0, "mqtt": f"mqtt://127.0.0.1:{broker_port}/bench"}
    run = watch(clip, model, every_s=0, name="bench" if monitoring else None, **monitoring)
    stop = threading.Event()
    scraper = None
    if run.monitoring.metrics is not None:
        url = f"http://127.0.0.1:{run.monitoring.metrics.port}/metrics"

        def scrape() -> None:
            while not stop.wait(1.0):
                with urllib.request.urlopen(url, timeout=5) as response:
                    response.read()

        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
    started = time.perf_counter()
    first = last = None
    for _ in run:
        last = time.perf_counter()
        first = first or last
    whole = time.perf_counter() - started
    stop.set()
    if scraper is not None:
        scraper.join()
    assert run.report is not None and first is not None and last is not None
    sent = sum(s.outbox.sent for s in run.monitoring.senders)
    return (run.report.samples - 1) / (last - first), run.report.samples, sent, whole


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode (median)")
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the synthetic file")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--size", default="160x120", help="WIDTHxHEIGHT of the file")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    quiet_native_logs()
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}; "
        f"command: python {' '.join(sys.argv)}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        model = make_color_model(directory / "color.onnx")
        scenes = [(1 + (i % 2), i * 3.0, (i + 1) * 3.0) for i in range(int(args.seconds // 3) + 1)]
        times = [i / args.fps for i in range(int(args.seconds * args.fps))]
        clip = write_color_video(directory / "clip.mp4", scenes, times, size=(width, height), rate=args.fps)
        broker, port = start_broker(directory)
        results: dict[str, list[tuple[float, int, int, float]]] = {"off": [], "on": []}
        try:
            one_run(clip, model, None)  # warm-up: caches, onnxruntime's first session
            for i in range(args.runs):
                for mode in ("off", "on"):
                    result = one_run(clip, model, port if mode == "on" else None)
                    results[mode].append(result)
                    print(f"run {i + 1} {mode:3}: {result[0]:8.1f} samples/s, {result[1]} samples", flush=True)
        finally:
            broker.kill()
            broker.wait()
    off = statistics.median(r[0] for r in results["off"])
    table = Table(title=f"analysis rate, {args.seconds:g} s {width}x{height} {args.fps:g} fps file, --every 0")
    for column in ("monitoring", "runs (samples/s)", "median", "vs off", "whole run (s, median)", "MQTT messages"):
        table.add_column(column, justify="right" if column != "monitoring" else "left")
    for mode, label in (("off", "off"), ("on", "--metrics-port + --mqtt")):
        rates = [r[0] for r in results[mode]]
        median = statistics.median(rates)
        table.add_row(
            label,
            ", ".join(f"{r:.0f}" for r in rates),
            f"{median:.0f}",
            f"{(median / off - 1) * 100:+.1f}%",
            f"{statistics.median(r[3] for r in results[mode]):.2f}",
            str(results[mode][-1][2]) if mode == "on" else "-",
        )
    Console(width=140).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
