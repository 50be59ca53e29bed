"""What monitoring costs the analysis: samples per second with `--metrics-port` and `--mqtt` on vs off.

A synthetic colour file (scenes change every few seconds, so segment events flow) is analysed
with `--every 0` (every frame a sample) and the tiny colour-classifier ONNX model (tests/helpers.py),
so the pipeline, not the model, is the bottleneck and any per-sample cost of the sinks shows.
"on" runs publish to a real Mosquitto broker started here on a free loopback port and serve
/metrics, scraped once a second by another process, as Prometheus would (more often than it does).
Runs alternate off/on so a drifting machine load hits both alike; the median of N runs each is
compared. The rate is samples over the time from the first sample to the last (wall clock: on a
shared machine other load moves it by tens of percent). CPU time per sample is steadier, and is
split by thread (Linux /proc): the pipeline thread and the caller's (the sinks' calls are made
in the first, so this is what the analysis itself pays) and the monitoring threads (paho's network thread, the MQTT
sender, the metrics server and its scrape handlers). The whole run's seconds (model load, broker
connection, the final messages and closing included) are shown apart. Last, the sinks' calls are
timed alone (the minimum of repeats, which other load can only raise): the direct cost per sample.
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
from dataclasses import dataclass
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


SCRAPER = """
import sys, time, urllib.request
while True:
    time.sleep(1.0)
    try:
        urllib.request.urlopen(sys.argv[1], timeout=5).read()
    except OSError:
        pass
"""


@dataclass(frozen=True)
class Result:
    rate: float  # samples per second from the first sample to the last (wall clock)
    cpu_us: float  # CPU microseconds per sample, the whole process
    pipeline_us: float  # ... on the pipeline thread (the caller's: one source), sinks included
    monitoring_us: float  # ... on the monitoring threads: paho's, the MQTT sender, the metrics server
    samples: int
    sent: int  # MQTT messages delivered
    whole_s: float  # the whole run: opening, connecting and closing included


MONITORING_THREADS = ("paho-mqtt", "mqtt-sender", "metrics", "Thread-")  # Thread-N: a scrape's handler


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process by Python thread name (Linux /proc)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    cpu: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        name = names.get(int(tid), f"native-{tid}")  # onnxruntime's and FFmpeg's own threads
        cpu[name] = cpu.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return cpu


def one_run(clip: Path, model: Path, broker_port: int | None, expected: int) -> Result:
    """One run over the file, monitoring off (`broker_port` None) or on; CPU counted over `expected` samples."""
    monitoring = {} if broker_port is None else {"metrics_port": 0, "mqtt": f"mqtt://127.0.0.1:{broker_port}/bench"}
    run = watch(clip, model, every_s=0, name="bench" if monitoring else None, **monitoring)
    scraper = None
    if run.monitoring.metrics is not None:  # Prometheus is another process: so is the scraper here
        url = f"http://127.0.0.1:{run.monitoring.metrics.port}/metrics"
        scraper = subprocess.Popen([sys.executable, "-c", SCRAPER, url], stderr=subprocess.DEVNULL)
    started = time.perf_counter()
    first = last = None
    window = int(expected * 0.95)  # samples between the two CPU readings, well before the end
    marks: list[tuple[float, dict[str, float]]] = []
    for n, _ in enumerate(run):
        last = time.perf_counter()
        if n in (0, window):
            marks.append((time.process_time(), thread_cpu()))
        first = first or last
    whole = time.perf_counter() - started
    if scraper is not None:
        scraper.kill()
        scraper.wait()
    assert run.report is not None and first is not None and last is not None and len(marks) == 2
    (cpu0, threads0), (cpu1, threads1) = marks

    def spent(match) -> float:
        return sum(v - threads0.get(k, 0.0) for k, v in threads1.items() if match(k)) / window * 1e6

    return Result(
        rate=(run.report.samples - 1) / (last - first),
        cpu_us=(cpu1 - cpu0) / window * 1e6,
        # The source's pipeline thread (the outputs' calls are made there) and the reader of its predictions.
        pipeline_us=spent(lambda name: name == threading.main_thread().name or name.startswith("pipeline:")),
        monitoring_us=spent(lambda name: name.startswith(MONITORING_THREADS)),
        samples=run.report.samples,
        sent=sum(s.outbox.sent for s in run.monitoring.senders),
        whole_s=whole,
    )


def sink_cost_us(model: Path, broker_port: int, calls: int = 20000, repeats: int = 5) -> float:
    """Microseconds per sample that the monitoring sinks' own calls take, measured alone: the real
    EventSink (with a real MQTT sender connected to the broker) and MetricsSink fed synthetic
    samples (a scene change every 75, as in the file). The minimum of several repeats, which other
    load on the machine can only raise."""
    from dataclasses import replace

    from stream.counting.stats import RunState, RunStats
    from stream.model.card import ModelCard
    from stream.model.engine import Engine
    from stream.outputs.event_sink import EventSink
    from stream.outputs.events import Ended, Sampled, SourceTag, Started, Tick
    from stream.outputs.metrics import MetricsSink
    from stream.outputs.mqtt import MqttSender, MqttTarget
    from stream.records import Frame, Prediction, VideoInfo

    card: ModelCard = Engine(model, "cpu").card
    stats = RunStats("bench", False, list(card.classes), list(card.characters), state=RunState.RUNNING)
    tag = SourceTag(0, "bench", "bench", live=False)
    sender = MqttSender(MqttTarget.parse(f"mqtt://127.0.0.1:{broker_port}/cost"))
    events = EventSink([sender], 0.04, 10.0, 0.01)
    metrics = MetricsSink(card, model, "CPU", "127.0.0.1", 0, [sender])
    sender.__enter__()  # as the run opens it
    for output in (events, metrics):  # as the run opens them and a source starts
        output.__enter__()
        output.handle(Started(tag, VideoInfo(0, 0, None, None, False), card, stats))
    frame = Frame(None, 0.0, 0)
    best = float("inf")
    for repeat in range(repeats):
        predictions = []
        for i in range(calls):
            label = card.classes[1 + (i // 75) % 2]
            t_s = (repeat * calls + i) * 0.04
            predictions.append(Prediction(t_s, label, 0.99, {label: 0.99}, (label,)))
        snapshots = []  # the pipeline's, one per sample (skip-similar reuses most results); not timed
        for i in range(calls):
            stats = replace(stats, samples=stats.samples + 1, inferences=stats.inferences + (i % 5 == 0))
            snapshots.append(stats)
        started = time.perf_counter()
        for i, (prediction, stats) in enumerate(zip(predictions, snapshots, strict=True)):
            sampled = Sampled(tag, prediction, frame, stats)
            events.handle(sampled)
            metrics.handle(sampled)
            if i % 25 == 0:  # about once a second of the file
                events.handle(Tick(tag, stats))
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    events.handle(Ended(tag, None, stats))
    for output in (events, metrics):
        output.__exit__(None, None, None)
    sender.close()
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode (median)")
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the synthetic file")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--size", default="160x120", help="WIDTHxHEIGHT of the file")
    parser.add_argument(
        "--sinks-only", type=int, default=0, metavar="N", help="only time the sinks' calls alone, N times (no runs)"
    )
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
        if args.sinks_only:  # the direct cost alone: comparable between two trees run one after the other
            try:
                found = [sink_cost_us(model, port) for _ in range(args.sinks_only)]
            finally:
                broker.kill()
                broker.wait()
            shown = ", ".join(f"{v:.2f}" for v in found)
            print(f"monitoring sinks alone, us per sample (min of 5 x 20000 each): {shown}")
            return 0
        results: dict[str, list[Result]] = {"off": [], "on": []}
        expected = len(times)
        try:
            one_run(clip, model, None, expected)  # warm-up: caches, onnxruntime's first session
            for i in range(args.runs):
                for mode in ("off", "on"):
                    r = one_run(clip, model, port if mode == "on" else None, expected)
                    results[mode].append(r)
                    print(
                        f"run {i + 1} {mode:3}: {r.rate:7.1f} samples/s; CPU per sample {r.cpu_us:.0f} us, "
                        f"pipeline thread {r.pipeline_us:.1f} us, monitoring threads {r.monitoring_us:.1f} us",
                        flush=True,
                    )
            sinks_us = sink_cost_us(model, port)
        finally:
            broker.kill()
            broker.wait()

    def median(mode: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in results[mode])

    def versus(mode: str, field: str) -> str:
        return f"{(median(mode, field) / median('off', field) - 1) * 100:+.1f}%"

    table = Table(title=f"analysis rate, {args.seconds:g} s {width}x{height} {args.fps:g} fps file, --every 0")
    columns = ["monitoring", "samples/s (runs)", "median", "vs off", "CPU us/sample", "vs off"]
    columns += ["pipeline thread us/sample", "vs off", "monitoring threads us/sample", "whole run s", "MQTT"]
    for column in columns:
        table.add_column(column, justify="right" if column != "monitoring" else "left")
    for mode, label in (("off", "off"), ("on", "--metrics-port + --mqtt")):
        table.add_row(
            label,
            ", ".join(f"{r.rate:.0f}" for r in results[mode]),
            f"{median(mode, 'rate'):.0f}",
            versus(mode, "rate"),
            f"{median(mode, 'cpu_us'):.0f}",
            versus(mode, "cpu_us"),
            f"{median(mode, 'pipeline_us'):.1f}",
            versus(mode, "pipeline_us"),
            f"{median(mode, 'monitoring_us'):.1f}",
            f"{median(mode, 'whole_s'):.2f}",
            f"{results[mode][-1].sent} sent" if mode == "on" else "-",
        )
    Console(width=180).print(table)
    share = sinks_us / (1e6 / median("off", "rate")) * 100
    print(
        f"monitoring sinks alone (EventSink + MetricsSink calls, min of 5 x 20000 samples): {sinks_us:.1f} us "
        f"per sample = {share:.2f}% of an analysed sample's time at the 'off' median rate"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
