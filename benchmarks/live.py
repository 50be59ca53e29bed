"""Live-source benchmarks of `watch` against a real RTSP server on loopback (GStreamer, see tests/live).

  first-sample  time from starting `watch` (default flags) to its first prediction, for keyframe
                intervals of 1, 2, 5 and 10 s (25 fps: keyint 25, 50, 125, 250). Each trial joins
                a running camera mid-GOP, as a real viewer does: a "holder" client (PyAV, demuxing
                without decoding, noting when each keyframe arrives) keeps the server's shared media
                running, and `watch` starts (0.3, 0.55, 0.8 ...) x interval + 1 s after the holder's
                first keyframe. Goal: within one interval + 3 s.
  soak          M minutes (default 120) of a 640x360 25 fps stream at 5 samples/s with report
                (checkpoints every 10 s), timeline CSV and live overlay video, through `watch`
                in-process: resident memory at 1 min, 10 min and the end (goal: growth from 10 min
                to the end < 20 MB), checkpoints written, samples counted against expected (goal:
                none lost), dropped frames, outages (goal 0), totals against duration. A progress
                line every minute.
  faults        N server kills (SIGKILL, default 20), each restarted after 0.5-2 s (every other one
                at a different frame size), in one `watch` run with report: reconnects, outage
                seconds, time from the server being back to frames flowing, and the seconds the
                final report leaves unaccounted for: (end_s - start_s) - (sum of screen time + sum
                of outages), goal 0.0; the same for every checkpoint read during the run.
  latency       a 25 fps stream with an engine slower than the stream, for M minutes (default 10):
                capture-to-count latency p50/p95 per minute (goal p95 <= 250 ms, no upward trend).

Usage: python benchmarks/live.py first-sample|soak|faults|latency [options]; see --help.
Without --model a tiny colour-classifier ONNX model (tests/helpers.py) is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "live")]

import av  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from rtsp_control import RtspServer  # noqa: E402

from stream.api import Watch, watch  # noqa: E402
from stream.counting.report import Report  # noqa: E402
from stream.logs import quiet_native_logs  # noqa: E402
from stream.model.engine import Engine  # noqa: E402
from stream.outputs.overlay import OverlaySink  # noqa: E402
from stream.records import Prediction  # noqa: E402
from stream.run.pipeline import Pipeline  # noqa: E402
from stream.settings import SourceSettings  # noqa: E402
from stream.sources.open import NetworkSource  # noqa: E402
from stream.sources.reconnect import ReconnectPolicy  # noqa: E402
from tests.helpers import SlowEngine, make_color_model  # noqa: E402

FPS = 25


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def header() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}; "
        f"command: python {' '.join(sys.argv)}"
    )


def mb(value: float | None, sign: bool = False) -> str:
    if value is None or value != value:  # not measured (a run shorter than the mark)
        return "-"
    return f"{value:+.1f}" if sign else f"{value:.1f}"


def say(text: str) -> None:
    print(text, flush=True)


def unaccounted_s(report: dict) -> float:
    """Seconds between the report's start and end given neither to a class nor to an outage."""
    outages = sum(o["end_s"] - o["start_s"] for o in report["outages"])
    return (report["end_s"] - report["start_s"]) - (sum(report["screen_time_s"].values()) + outages)


def exact_unaccounted_s(report: Report) -> float:
    """The same from the in-memory report, before times are rounded to the millisecond for writing."""
    outages = sum(o["end_s"] - o["start_s"] for o in report.outages)
    return (report.end_s - report.start_s) - (sum(report.screen_time_s.values()) + outages)


def totals_minus_duration_s(report: dict) -> float:
    return sum(report["screen_time_s"].values()) - report["duration_s"]


class Consumer(threading.Thread):
    """Iterates a `Watch` in a thread; predictions kept with the monotonic time they arrived."""

    def __init__(self, run: Watch, on_prediction: Callable[[Prediction], None] | None = None) -> None:
        super().__init__(name="consumer", daemon=True)
        self.run_ = run
        self.on_prediction = on_prediction
        self.arrivals: list[tuple[float, float]] = []  # (monotonic, prediction t_s)
        self.first = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for p in self.run_:
                self.arrivals.append((time.monotonic(), p.t_s))
                self.first.set()
                if self.on_prediction is not None:
                    self.on_prediction(p)
        except BaseException as exc:  # reported by the caller
            self.error = exc

    def finish(self, timeout_s: float = 60.0) -> None:
        self.run_.stop()
        self.join(timeout=timeout_s)
        if self.is_alive():
            raise RuntimeError(f"watch did not stop within {timeout_s:.0f} s")
        if self.error is not None:
            raise self.error


class ReportPoller:
    """Counts rewrites of the report file (each atomic replace is a new inode/mtime) and checks
    the accounting of every version it reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key: tuple[int, int] | None = None
        self.writes: list[float] = []  # monotonic time each rewrite was seen
        self.worst_unaccounted_s = 0.0
        self.worst_totals_s = 0.0
        self.last: dict | None = None

    def poll(self) -> None:
        try:
            st = self.path.stat()
            key = (st.st_ino, st.st_mtime_ns)
            if key == self.key:
                return
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return  # not written yet, or replaced between stat and read: next poll
        self.key = key
        self.writes.append(time.monotonic())
        self.last = data
        self.worst_unaccounted_s = max(self.worst_unaccounted_s, abs(unaccounted_s(data)))
        self.worst_totals_s = max(self.worst_totals_s, abs(totals_minus_duration_s(data)))

    @property
    def longest_gap_s(self) -> float:
        return max((b - a for a, b in zip(self.writes, self.writes[1:], strict=False)), default=float("nan"))


def vertical(title: str, rows: list[tuple[str, str, str]], caption: str | None = None) -> Table:
    table = Table(title=title, caption=caption)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    for row in rows:
        table.add_row(*row)
    return table


# -- first-sample ------------------------------------------------------------------------------


class Holder(threading.Thread):
    """A viewer already watching the camera, so the server's shared media runs and a new client
    joins mid-GOP. It demuxes with PyAV without decoding, and notes when each keyframe arrives."""

    def __init__(self, url: str) -> None:
        super().__init__(name="holder", daemon=True)
        self.url = url
        self.keyframes: list[float] = []  # monotonic arrival times
        self.got_first = threading.Event()
        self.halt = threading.Event()

    def run(self) -> None:
        with av.open(self.url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
            for packet in container.demux(video=0):
                if self.halt.is_set():
                    return
                if packet.is_keyframe:
                    self.keyframes.append(time.monotonic())
                    self.got_first.set()

    def next_keyframe_after(self, t: float) -> float:
        return min((k for k in self.keyframes if k >= t), default=float("nan")) - t

    def missed(self, start: float, picture: float) -> int:
        """Keyframes that reached the holder after `start` but before the one `picture` came from."""
        return sum(start <= k < picture - 0.1 for k in self.keyframes)


def first_sample(args, console: Console, tmp: Path) -> Table:
    table = Table(
        title=f"first-sample: `watch` (default flags) joining a running {args.width}x{args.height} {FPS} fps "
        f"RTSP camera mid-GOP, {args.trials} trial(s) per interval",
        caption="next keyframe: the first keyframe the holder received after `watch` started; missed: keyframes "
        "the holder received after that start and > 0.1 s before `watch`'s first picture; first picture: "
        "`watch` start to the picture its source opened on; first sample: to the first prediction",
    )
    for col in (
        "keyframe every",
        "keyint",
        "next keyframe s",
        "missed",
        "first picture s",
        "first sample s",
        "median s",
        "max s",
        "goal <= s",
        "met",
    ):
        table.add_column(col, justify="right", no_wrap=True)
    for interval in args.intervals:
        keyint = round(interval * FPS)
        dues, pictures, firsts, missed = [], [], [], []
        for trial in range(args.trials):
            server = RtspServer(tmp)
            url = server.start(width=args.width, height=args.height, fps=FPS, keyint=keyint)
            holder = Holder(url)
            holder.start()
            try:
                if not holder.got_first.wait(30):
                    raise RuntimeError("the holder client got no picture within 30 s")
                phase = (0.3 + 0.25 * trial) * interval + 1.0
                time.sleep(max(0.0, holder.keyframes[0] + phase - time.monotonic()))
                started = time.monotonic()
                run = watch(url, args.model)
                consumer = Consumer(run)
                consumer.start()
                consumer.first.wait(interval + 40)
                source = run.runner.pipeline(0).source  # its clock: a measurement of the internals
                if consumer.arrivals:
                    arrived = consumer.arrivals[0][0]
                    t0 = time.monotonic() - source.clock()  # the monotonic time of the source's first picture
                    firsts.append(arrived - started)
                    pictures.append(t0 - started)
                else:
                    firsts.append(float("inf"))
                    pictures.append(float("inf"))
                consumer.finish()
                dues.append(holder.next_keyframe_after(started))
                missed.append(holder.missed(started, started + pictures[-1]))
            finally:
                holder.halt.set()
                holder.join(timeout=10)
                server.stop()
            say(
                f"  keyframe every {interval:g} s, trial {trial + 1}: next keyframe {dues[-1]:.2f} s, "
                f"keyframes missed {missed[-1]}, first picture {pictures[-1]:.2f} s, first sample {firsts[-1]:.2f} s"
            )
        goal = interval + 3.0
        table.add_row(
            f"{interval:g} s",
            str(keyint),
            "/".join(f"{d:.2f}" for d in dues),
            "/".join(str(m) for m in missed),
            "/".join(f"{p:.2f}" for p in pictures),
            "/".join(f"{f:.2f}" for f in firsts),
            f"{statistics.median(firsts):.2f}",
            f"{max(firsts):.2f}",
            f"{goal:g}",
            "yes" if max(firsts) <= goal else "NO",
        )
    return table


# -- soak --------------------------------------------------------------------------------------


def count_video_frames(path: Path) -> int:
    """Frames in a (fragmented) MP4, by demuxing its packets without decoding them."""
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def soak(args, console: Console, tmp: Path) -> Table:
    out = args.out or tmp
    out.mkdir(parents=True, exist_ok=True)
    every = 0.2
    server = RtspServer(tmp)
    url = server.start(width=args.width, height=args.height, fps=FPS)
    report_path, csv_path, video_path = out / "soak.json", out / "soak.csv", out / "soak.mp4"
    duration = args.minutes * 60
    say(f"soak: {args.minutes:g} min; outputs in {out}")
    started = time.monotonic()
    run = watch(
        url, args.model, every_s=every, report=report_path, csv=csv_path, output=video_path, duration_s=duration
    )
    consumer = Consumer(run)
    poller = ReportPoller(report_path)
    rss: dict[str, float] = {}
    next_minute = 1
    try:
        consumer.start()
        while consumer.is_alive():
            consumer.join(timeout=1.0)
            poller.poll()
            elapsed = time.monotonic() - started
            if consumer.is_alive():
                rss["end"] = rss_mb()
            if elapsed >= next_minute * 60 and consumer.is_alive():
                if next_minute == 1:
                    rss["1 min"] = rss["end"]
                if next_minute == 10:
                    rss["10 min"] = rss["end"]
                now = run.stats[0]  # the latest snapshot
                say(
                    f"[{elapsed / 60:6.1f} min] samples {len(consumer.arrivals)}, RSS {rss['end']:.1f} MB, "
                    f"report rewrites {len(poller.writes)}, dropped {now.dropped}, outages {now.outages}, "
                    f"state {now.state}"
                )
                next_minute += 1
        consumer.finish()
        poller.poll()
    finally:
        run.stop()
        server.stop()
    wall = time.monotonic() - started
    report = json.loads(report_path.read_text())
    with csv_path.open() as fh:
        csv_rows = sum(1 for _ in fh) - 1
    overlay = next(s for s in run.runner.source_outputs(run.runner.tags[0]) if isinstance(s, OverlaySink))
    video_frames = count_video_frames(video_path)
    counted = len(consumer.arrivals)
    expected = report["duration_s"] / every
    lost = expected - counted
    growth = rss["end"] - rss["10 min"] if "10 min" in rss else None
    growth_1 = rss["end"] - rss["1 min"] if "1 min" in rss else None
    frames_read = report["frames_read"]
    rows = [
        ("wall time of the run s", f"{wall:.1f}", f"{duration:g} (--duration)"),
        ("analysed duration_s (report)", f"{report['duration_s']:.3f}", ""),
        ("samples counted (yielded / report / CSV rows)", f"{counted} / {report['samples']} / {csv_rows}", "equal"),
        ("samples expected (duration_s / 0.2)", f"{expected:.1f}", ""),
        ("samples lost (expected - counted)", f"{lost:.1f}", "0 (+-2 at the edges)"),
        ("frames dropped (buffer, newest-frame policy)", str(report["dropped"]), "0"),
        ("overlay: frames written / read (dropped)", f"{video_frames} / {frames_read} ({overlay.dropped})", "equal"),
        ("outages / reconnects", f"{len(report['outages'])} / {report['reconnects']}", "0 / 0"),
        ("report rewrites seen (polled every 1 s)", str(len(poller.writes)), f"~{duration / 10:.0f} (every 10 s)"),
        ("longest gap between rewrites s", f"{poller.longest_gap_s:.1f}", "~10"),
        ("worst |not accounted| over checkpoints s", f"{poller.worst_unaccounted_s:.3f}", "0.000"),
        ("final: (end_s - start_s) - (totals + outages) s", f"{unaccounted_s(report):+.3f}", "0.000"),
        ("the same, in-memory report (unrounded) s", f"{exact_unaccounted_s(run.report):+.6f}", "0.000"),
        ("final: sum(totals) - duration_s s", f"{totals_minus_duration_s(report):+.3f}", "0.000"),
        ("RSS at 1 min MB", mb(rss.get("1 min")), ""),
        ("RSS at 10 min MB", mb(rss.get("10 min")), ""),
        ("RSS at end MB", mb(rss["end"]), ""),
        ("RSS growth 1 min -> end MB", mb(growth_1, sign=True), ""),
        ("RSS growth 10 min -> end MB", mb(growth, sign=True), "< 20"),
    ]
    return vertical(
        f"soak: {args.minutes:g} min of {args.width}x{args.height} {FPS} fps RTSP, every 0.2 s, report + CSV + "
        "live overlay video, watch() in-process",
        rows,
    )


# -- faults ------------------------------------------------------------------------------------


def faults(args, console: Console, tmp: Path) -> Table:
    rng = random.Random(args.seed)
    sizes = [(320, 240), (352, 288)]
    server = RtspServer(tmp)
    url = server.start(width=sizes[0][0], height=sizes[0][1], fps=FPS)
    report_path = tmp / "faults.json"
    run = watch(url, args.model, every_s=args.every, report=report_path)
    consumer = Consumer(run)
    poller = ReportPoller(report_path)
    kills: list[dict] = []
    chaos_error: list[BaseException] = []

    def chaos() -> None:
        try:
            if not consumer.first.wait(60):
                raise RuntimeError("no first sample within 60 s")
            time.sleep(args.up)
            for k in range(args.kills):
                killed = time.monotonic()
                server.stop()
                down = rng.uniform(0.5, 2.0)
                time.sleep(down)
                size = sizes[(k + 1) % 2]
                server.start(width=size[0], height=size[1], fps=FPS)
                kills.append({"killed": killed, "back": time.monotonic(), "size": size})
                time.sleep(args.up)
        except BaseException as exc:
            chaos_error.append(exc)
        finally:
            run.stop()

    offset = 0.0
    started = time.monotonic()
    consumer.start()
    chaos_thread = threading.Thread(target=chaos, name="chaos", daemon=True)
    chaos_thread.start()
    try:
        while chaos_thread.is_alive() or consumer.is_alive():
            chaos_thread.join(timeout=0.5)
            poller.poll()
            if consumer.first.is_set() and consumer.is_alive():
                offset = time.monotonic() - run.runner.pipeline(0).source.clock()  # source time 0, monotonic
        consumer.finish()
        poller.poll()
    finally:
        run.stop()
        server.stop()
    if chaos_error:
        raise chaos_error[0]
    report = json.loads(report_path.read_text())
    outages = [(o["start_s"] + offset, o["end_s"] + offset) for o in report["outages"]]
    to_frames, matched = [], set()
    for kill in kills:  # the outage this kill caused: down when the server came back
        for i, (a, b) in enumerate(outages):
            if a <= kill["back"] and b >= kill["back"] - 0.05 and i not in matched:
                matched.add(i)
                to_frames.append(b - kill["back"])
                break
    outage_s = sum(b - a for a, b in outages)
    down_s = sum(k["back"] - k["killed"] for k in kills)
    rows = [
        ("server kills", str(len(kills)), ""),
        ("reconnects achieved", str(report["reconnects"]), str(len(kills))),
        ("outages in the report (matched to a kill)", f"{len(outages)} ({len(matched)})", str(len(kills))),
        ("server down s (kill -> READY), total", f"{down_s:.1f}", ""),
        ("outage s, total", f"{outage_s:.1f}", ""),
        (
            "server back -> frames flowing s, median / max",
            f"{statistics.median(to_frames):.2f} / {max(to_frames):.2f}" if to_frames else "-",
            "",
        ),
        ("samples", str(report["samples"]), ""),
        ("analysed duration_s", f"{report['duration_s']:.3f}", ""),
        ("report rewrites read during the run", str(len(poller.writes)), ""),
        ("worst |not accounted| over those checkpoints s", f"{poller.worst_unaccounted_s:.3f}", "0.000"),
        ("final: seconds not accounted for", f"{unaccounted_s(report):+.3f}", "0.000"),
        ("the same, in-memory report (unrounded) s", f"{exact_unaccounted_s(run.report):+.6f}", "0.000"),
        ("final: sum(totals) - duration_s s", f"{totals_minus_duration_s(report):+.3f}", "0.000"),
        ("wall time s", f"{time.monotonic() - started:.0f}", ""),
    ]
    caption = (
        "not accounted for = (end_s - start_s) - (sum of screen_time_s + sum of outage lengths), "
        "from the report (times rounded to 1 ms)"
    )
    if args.per_kill:
        for n, kill in enumerate(kills, 1):
            t = to_frames[n - 1] if n <= len(to_frames) else float("nan")
            down = kill["back"] - kill["killed"]
            say(f"  kill {n}: down {down:.2f} s, back -> frames {t:.2f} s, size {kill['size']}")
    return vertical(
        f"faults: {len(kills)} server kills (SIGKILL, back after 0.5-2 s, every other one at 352x288), "
        f"{args.up:g} s up between, watch --every {args.every:g} with report",
        rows,
        caption,
    )


# -- latency -----------------------------------------------------------------------------------


class Run:
    """A pipeline on a NetworkSource with an injected engine, consumed in a thread."""

    def __init__(self, url: str, engine: Engine, every_s: float) -> None:
        self.source = NetworkSource(url, timeout_s=2.0)
        self.stop = threading.Event()
        policy = ReconnectPolicy(initial_s=0.25, max_s=2.0)
        self.pipeline = Pipeline(
            self.source, engine, SourceSettings(every_s=every_s, skip_similar=0.0), stop=self.stop, reconnect=policy
        )
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


def latency(args, console: Console, tmp: Path) -> Table:
    server = RtspServer(tmp)
    url = server.start(fps=FPS)
    engine = SlowEngine(args.model, args.delay)
    with Run(url, engine, 0.0) as run:
        time.sleep(args.minutes * 60)
    server.stop()
    start = run.predictions[0][0] if run.predictions else 0.0
    table = Table(title=f"latency: 25 fps RTSP, engine >= {args.delay * 1000:.0f} ms per frame, {args.minutes:g} min")
    for col in ("minute", "samples", "p50 ms", "p95 ms", "max ms"):
        table.add_column(col, justify="right")
    all_lat = []
    for m in range(int(args.minutes)):
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


MODES = {"first-sample": first_sample, "soak": soak, "faults": faults, "latency": latency}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=list(MODES))
    parser.add_argument("--minutes", type=float, default=None, help="soak (default 120), latency (default 10)")
    parser.add_argument("--kills", type=int, default=20, help="faults: server kills")
    parser.add_argument("--up", type=float, default=6.0, help="faults: seconds the server runs between kills")
    parser.add_argument("--every", type=float, default=0.2, help="faults: seconds between samples")
    parser.add_argument("--seed", type=int, default=12, help="faults: seed of the down times")
    parser.add_argument("--per-kill", action="store_true", help="faults: a line per kill")
    parser.add_argument("--trials", type=int, default=3, help="first-sample: trials per keyframe interval")
    parser.add_argument("--intervals", type=float, nargs="+", default=[1.0, 2.0, 5.0, 10.0])
    parser.add_argument("--width", type=int, default=640, help="first-sample, soak: frame width")
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--delay", type=float, default=0.1, help="latency: minimum seconds per inference")
    parser.add_argument("--out", type=Path, default=None, help="soak: keep the report, CSV and video here")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    console = Console(width=140)
    quiet_native_logs()
    say(header())
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            args.model = make_color_model(Path(tmp) / "color.onnx")
        if args.minutes is None:
            args.minutes = {"latency": 10, "soak": 120}.get(args.mode, 0)
        started = time.monotonic()
        table = MODES[args.mode](args, console, Path(tmp))
    console.print(table)
    say(f"took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
