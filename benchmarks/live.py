"""Live-source benchmarks against a real RTSP server on loopback (GStreamer, see tests/live).

  faults   N server kills and restarts (every other one at a different frame size) in one run:
           reconnects achieved, time from the server being back to frames flowing (median, max),
           samples lost outside outages (goal 0).
  latency  a 25 fps stream with an engine slower than the stream, for M minutes: capture-to-count
           latency p50/p95 per minute (goal p95 <= 250 ms, no upward trend).
  soak     M minutes of live stream with report and overlay video: resident memory at start
           (after one minute) and end (goal growth < 50 MB).

Usage: python benchmarks/live.py faults|latency|soak [--minutes M] [--kills N] [--model X.onnx]
Without --model a tiny colour-classifier ONNX model (tests/helpers.py) is used; `latency` wraps
the engine so each inference takes at least --delay seconds (default 0.1 s: 10/s < 25 fps).
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "live")]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from rtsp_control import RtspServer  # noqa: E402

from stream.engine import Engine  # noqa: E402
from stream.logs import quiet_native_logs  # noqa: E402
from stream.pipeline import Pipeline  # noqa: E402
from stream.reconnect import ReconnectPolicy  # noqa: E402
from stream.sampler import Sampler  # noqa: E402
from stream.sinks.overlay import OverlaySink  # noqa: E402
from stream.sinks.report_sink import ReportSink  # noqa: E402
from stream.sources import NetworkSource  # noqa: E402
from tests.helpers import SlowEngine, make_color_model  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Run:
    """A pipeline on a NetworkSource, consumed in a thread; predictions kept with their wall time."""

    def __init__(self, url: str, engine: Engine, every_s: float, sinks=()) -> None:
        self.source = NetworkSource(url, timeout_s=2.0)
        self.stop = threading.Event()
        policy = ReconnectPolicy(initial_s=0.25, max_s=2.0)
        self.pipeline = Pipeline(self.source, engine, Sampler(every_s), list(sinks), stop=self.stop, reconnect=policy)
        self.predictions: list = []
        self.thread = threading.Thread(target=self._consume, daemon=True)

    def _consume(self) -> None:
        for p in self.pipeline.run():
            self.predictions.append((time.monotonic(), p))

    def __enter__(self) -> Run:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def faults(args, console: Console, tmp: Path) -> Table:
    server = RtspServer(tmp)
    url = server.start()
    engine = Engine(args.model, "cpu")
    every = 0.2
    back_at: list[float] = []
    with Run(url, engine, every) as run:
        time.sleep(5)
        for k in range(args.kills):
            server.stop()
            time.sleep(args.down)
            size = (320, 240) if k % 2 else (352, 288)
            server.start(width=size[0], height=size[1])
            back_at.append(time.monotonic())
            time.sleep(args.up)
        time.sleep(2)
    report = run.pipeline.report
    reader_t0 = run.source._t0 or 0.0
    ends = [reader_t0 + o["end_s"] for o in report.outages]
    to_reconnect = []
    for t_back in back_at:  # first outage end after the server came back
        later = [e - t_back for e in ends if e >= t_back - 0.05]
        if later:
            to_reconnect.append(max(0.0, min(later)))
    times = [e.t_s for e in report.timeline]
    spans = [(o["start_s"], o["end_s"]) for o in report.outages]
    lost = 0
    for a, b in itertools.pairwise(times):
        if any(a <= s <= b for s, _ in spans):
            continue  # an outage lies between: not a loss
        lost += max(0, round((b - a) / every) - 1)
    table = Table(
        title=f"faults: {args.kills} server kills/restarts ({args.up:g} s up, {args.down:g} s down)",
        caption="lost: samples missing between consecutive samples with no outage between them (goal 0)",
    )
    for col in (
        "kills",
        "reconnects",
        "reconnect s (median)",
        "reconnect s (max)",
        "samples",
        "lost outside outages",
        "outage s",
    ):
        table.add_column(col, justify="right")
    table.add_row(
        str(args.kills),
        str(report.reconnects),
        f"{statistics.median(to_reconnect):.2f}" if to_reconnect else "-",
        f"{max(to_reconnect):.2f}" if to_reconnect else "-",
        str(report.samples),
        str(lost),
        f"{sum(b - a for a, b in spans):.1f}",
    )
    server.stop()
    return table


def latency(args, console: Console, tmp: Path) -> Table:
    server = RtspServer(tmp)
    url = server.start(fps=25)
    engine = SlowEngine(args.model, args.delay)
    with Run(url, engine, 0.0) as run:
        time.sleep(args.minutes * 60)
    server.stop()
    start = run.predictions[0][0] if run.predictions else 0.0
    table = Table(title=f"latency: 25 fps RTSP, engine >= {args.delay * 1000:.0f} ms per frame, {args.minutes:g} min")
    for col in ("minute", "samples", "p50 ms", "p95 ms", "max ms"):
        table.add_column(col, justify="right")
    minutes = int(args.minutes)
    all_lat = []
    for m in range(minutes):
        lat = [p.latency_s * 1000 for t, p in run.predictions if m * 60 <= t - start < (m + 1) * 60]
        all_lat += lat
        table.add_row(
            str(m + 1), str(len(lat)), f"{pct(lat, 0.5):.0f}", f"{pct(lat, 0.95):.0f}", f"{max(lat, default=0):.0f}"
        )
    table.add_row(
        "all",
        str(len(all_lat)),
        f"{pct(all_lat, 0.5):.0f}",
        f"{pct(all_lat, 0.95):.0f}",
        f"{max(all_lat, default=0):.0f}",
    )
    table.caption = f"dropped (newest-frame policy): {run.pipeline.report.dropped}"
    return table


def soak(args, console: Console, tmp: Path) -> Table:
    server = RtspServer(tmp)
    url = server.start(fps=25)
    engine = Engine(args.model, "cpu")
    sinks = [ReportSink(tmp / "soak.json", tmp / "soak.csv"), OverlaySink(tmp / "soak.mp4", live=True)]
    readings: list[tuple[float, float]] = []
    with Run(url, engine, 0.2, sinks) as run:
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < args.minutes * 60:
            readings.append((elapsed, rss_mb()))
            time.sleep(min(30, args.minutes * 60 - elapsed))
    server.stop()
    report = run.pipeline.report
    after_warmup = [r for t, r in readings if t >= 60] or [readings[0][1]]
    table = Table(title=f"soak: {args.minutes:g} min of 25 fps RTSP, every 0.2 s, report + overlay video")
    for col in ("samples", "RSS at 1 min MB", "RSS at end MB", "growth MB", "max MB", "dropped"):
        table.add_column(col, justify="right")
    table.add_row(
        str(report.samples),
        f"{after_warmup[0]:.1f}",
        f"{readings[-1][1]:.1f}",
        f"{readings[-1][1] - after_warmup[0]:+.1f}",
        f"{max(r for _, r in readings):.1f}",
        str(report.dropped),
    )
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["faults", "latency", "soak"])
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--up", type=float, default=4.0, help="seconds the server runs between kills")
    parser.add_argument("--down", type=float, default=1.0, help="seconds the server stays down")
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    console = Console(width=140)
    quiet_native_logs()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            args.model = make_color_model(Path(tmp) / "color.onnx")
        if args.minutes is None:
            args.minutes = {"latency": 10, "soak": 60}.get(args.mode, 0)
        started = time.monotonic()
        table = {"faults": faults, "latency": latency, "soak": soak}[args.mode](args, console, Path(tmp))
    console.print(table)
    console.print(
        f"{platform.machine()}, {__import__('os').cpu_count()} CPUs, {time.monotonic() - started:.0f} s; "
        f"command: python {' '.join(sys.argv)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
