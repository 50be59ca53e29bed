"""How many 720p 25 fps RTSP cameras, each sampled once a second, one `watch` process holds.

For each N (default 1, 2, 4, 8, 16) and each RTSP backend (pyav: decodes only the frames samples
need, keyframes only here; opencv: decodes every frame), one run of

    screentime watch rtsp://.../cam1 ... rtsp://.../camN --every 1 --no-dashboard --duration D \\
        --rtsp-backend B --model M

in its own process (this script's `child` command: the CLI's own parser and `Watch`, plus a record
of each prediction's latency), against one GStreamer RTSP server process on loopback serving N
mount points. The server sends a pre-encoded clip as it is (no encoding, so 16 cameras cost it
little; its CPU is measured): 1280x720, 25 fps, H.264 with a keyframe every second and no
B-frames (a typical camera), made once from the Tom and Jerry frames (a slow pan across each
picture, 2.5 Mbit/s) and looped by remuxing, long enough for a run.

Measured over the steady part of each run (after `--warmup` seconds: connected, keyframe spacing
learnt), all cameras together: CPU of the watch process (100% = one core) and of the server,
the whole machine's busy share, pictures decoded per second, frames received per camera per
second (25 = keeping up with the cameras), samples per second achieved against asked (N),
capture-to-count latency p95, and dropped samples (sampled frames replaced by newer ones because
inference was busy). A run "holds" N when nothing is dropped, p95 < 1 s, samples >= 95% of asked
and every camera is read at >= 97% of its rate.

The backend `serve` runs the same cameras through `screentime serve` instead (issue 23): one
service over a config naming N cameras (`every: 1`, PyAV, day files written as the service
writes them), its HTTP port up; the same measures, read from the service's run (latency p95 as
the upper bound of its Prometheus histogram bucket).

Usage: python benchmarks/cameras.py [--model M.onnx] [--counts 1 2 4 8 16] [--duration 40]
       [--backends pyav opencv serve]
Without --model the tiny colour model (tests/helpers.py): inference is then nearly free and the
table shows what decoding alone costs. With MODEL.onnx, MODEL.int8.onnx beside it is used on CPU
(`--precision auto`), as `watch` does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "live")]

FPS = 25
SIZE = (1280, 720)
FRAMES = ROOT.parent / "shared" / "data" / "tom-and-jerry" / "train"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- the clip ----------------------------------------------------------------------------------


def make_clip(path: Path, frames_dir: Path, seconds: int, loops: int) -> Path:
    """`seconds` of 720p 25 fps H.264 (keyframe every second, no B-frames) encoded once, then
    remuxed `loops` times into one MP4 (no re-encoding)."""
    import av
    import cv2
    import numpy as np

    if path.exists():
        return path
    unit = path.with_suffix(".unit.mp4")
    pictures = sorted(frames_dir.glob("frame*.jpg"), key=lambda p: int(p.stem.removeprefix("frame")))[:seconds]
    if len(pictures) < seconds:
        raise SystemExit(f"{frames_dir}: need {seconds} frames*.jpg")
    say(f"encoding {seconds} s of {SIZE[0]}x{SIZE[1]} H.264 from {frames_dir} ...")
    with av.open(str(unit), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.bit_rate = 2_500_000
        stream.options = {
            "preset": "veryfast",
            "tune": "zerolatency",  # no B-frames, no lookahead: as cameras encode
            "x264-params": f"keyint={FPS}:min-keyint={FPS}:scenecut=0:vbv-maxrate=2500:vbv-bufsize=2500",
        }
        for picture in pictures:
            big = cv2.resize(cv2.imread(str(picture)), (SIZE[0] * 9 // 8, SIZE[1] * 9 // 8))
            for i in range(FPS):  # a slow pan across the picture: motion in every frame
                x = round((big.shape[1] - SIZE[0]) * i / FPS)
                y = round((big.shape[0] - SIZE[1]) * i / (2 * FPS))
                crop = np.ascontiguousarray(big[y : y + SIZE[1], x : x + SIZE[0]])
                for packet in stream.encode(av.VideoFrame.from_ndarray(crop, format="bgr24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(unit)) as source, av.open(str(path), "w") as out:
        inp = source.streams.video[0]
        stream = out.add_stream_from_template(inp)
        packets = [p for p in source.demux(inp) if p.size]
        span = max(p.pts for p in packets) - min(p.pts for p in packets) + packets[1].duration
        for k in range(loops):
            for packet in packets:
                packet.pts += span if k else 0
                packet.dts += span if k else 0
                packet.stream = stream
                out.mux(packet)
    unit.unlink()
    say(f"clip: {path} ({path.stat().st_size / 1e6:.0f} MB, {seconds * loops} s)")
    return path


# -- one run -----------------------------------------------------------------------------------


def mark(args: argparse.Namespace, stats: list) -> dict:
    """The counters of a run's sources (their RunStats) and the CPU clocks, at one moment."""
    return {
        "t": time.monotonic(),
        "cpu": time.process_time(),
        "server_cpu": process_cpu_s(args.server_pid),
        "machine": machine_cpu(),
        "decoded": sum(s.decoded for s in stats),
        "read": sum(s.frames_read for s in stats),
        "samples": sum(s.samples for s in stats),
        "dropped": sum(s.dropped for s in stats),
    }


def measured(start: dict, end: dict, cameras: int) -> dict:
    """What happened between two marks, per second and per core."""
    window = end["t"] - start["t"]
    busy = (end["machine"][0] - start["machine"][0]) / (end["machine"][1] - start["machine"][1])
    return {
        "window_s": window,
        "cpu_pct": 100 * (end["cpu"] - start["cpu"]) / window,
        "server_cpu_pct": 100 * (end["server_cpu"] - start["server_cpu"]) / window,
        "machine_busy_pct": 100 * busy,
        "decoded_fps": (end["decoded"] - start["decoded"]) / window,
        "read_fps_per_camera": (end["read"] - start["read"]) / window / cameras,
        "samples_per_s": (end["samples"] - start["samples"]) / window,
        "dropped": end["dropped"] - start["dropped"],
    }


def child(args: argparse.Namespace) -> int:
    """One `screentime watch URL... --every 1 --no-dashboard --duration D` run; one JSON line of
    what happened between `--warmup` and one second before the end."""
    from stream.api import Watch
    from stream.cli import build_parser
    from stream.logs import quiet_native_logs
    from stream.options import from_args

    quiet_native_logs()
    argv = ["watch", *args.urls, "--model", str(args.model), "--every", "1", "--no-dashboard"]
    argv += ["--duration", str(args.duration), "--rtsp-backend", args.backend]
    run = Watch(from_args(build_parser().parse_args(argv), terminal=False))
    marks: dict[str, dict] = {}

    def snapshot(name: str) -> None:
        marks[name] = mark(args, run.stats)

    timers = [
        threading.Timer(args.warmup, snapshot, ["start"]),
        threading.Timer(args.duration - 1.0, snapshot, ["end"]),
    ]
    arrivals: list[tuple[float, float]] = []  # (monotonic, latency_s)
    for timer in timers:
        timer.start()
    for prediction in run:
        arrivals.append((time.monotonic(), prediction.latency_s))
    start, end = marks["start"], marks["end"]
    latencies = [lat for t, lat in arrivals if start["t"] <= t <= end["t"]]
    result = measured(start, end, len(args.urls)) | {
        "p95_latency_s": pct(latencies, 0.95),
        "inference_s": statistics.mean(s.inference_s for s in run.stats),
        "reconnects": sum(s.reconnects for s in run.stats),
        "model": str(run.engine.path),
    }
    print(json.dumps(result), flush=True)
    return 0


def serve_child(args: argparse.Namespace) -> int:
    """One `screentime serve` over N cameras (the service in this process, as the CLI runs it);
    one JSON line of what happened between `--warmup` and one second before `--duration`."""

    from rtsp_control import free_port

    from stream.fleet.config import load_config
    from stream.fleet.http import HttpServer
    from stream.fleet.service import Service, run_service
    from stream.logs import quiet_native_logs

    quiet_native_logs()
    work = Path(tempfile.mkdtemp(prefix="cameras-serve-"))
    cameras = {f"cam{i}": {"url": url} for i, url in enumerate(args.urls, 1)}
    config_path = work / "fleet.yaml"
    config_path.write_text(
        json.dumps(  # JSON is YAML
            {
                "http": {"port": free_port()},
                "defaults": {"model": str(args.model), "every": 1.0, "reports": str(work / "reports")},
                "cameras": cameras,
            }
        )
    )
    config = load_config(config_path)
    service = Service(config)
    server = HttpServer(service, config.host, config.port)
    stop = threading.Event()
    marks: dict[str, dict] = {}

    def snapshot(name: str) -> None:
        stats = [service.run.pipeline(m.tag).stats for m in service.members.values()]
        counts: dict[str, float] = {}  # cumulative counts per upper bound, all cameras together
        for family in service.metrics.latency.collect():
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    counts[s.labels["le"]] = counts.get(s.labels["le"], 0.0) + s.value
        marks[name] = mark(args, stats) | {
            "inference_s": [s.inference_s for s in stats],
            "reconnects": sum(s.reconnects for s in stats),
            "latency": counts,
        }
        if name == "end":
            stop.set()
            service.run.stop()

    timers = [
        threading.Timer(args.warmup, snapshot, ["start"]),
        threading.Timer(args.duration - 1.0, snapshot, ["end"]),
    ]
    for timer in timers:
        timer.start()
    run_service(service, server, stop)
    start, end = marks["start"], marks["end"]
    bounds = sorted((float(le), end["latency"][le] - start["latency"].get(le, 0.0)) for le in end["latency"])
    total = bounds[-1][1] if bounds else 0.0
    p95 = next((le for le, count in bounds if total and count >= 0.95 * total), float("nan"))
    result = measured(start, end, len(args.urls)) | {
        "p95_latency_s": p95,
        "inference_s": statistics.mean(end["inference_s"]),
        "reconnects": end["reconnects"],
        "model": str(args.model),
    }
    print(json.dumps(result), flush=True)
    return 0


def one_run(args: argparse.Namespace, clip: Path, model: Path, n: int, backend: str, tmp: Path) -> dict:
    from rtsp_control import SERVER_SCRIPT, SYSTEM_PYTHON, free_port

    port = free_port()
    cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(port), "--path", "/cam", "--clip", str(clip)]
    server = subprocess.Popen(
        [*cmd, "--mounts", str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(tmp / "server.log").open("w"),
        text=True,
    )
    try:
        if server.stdout.readline().strip() != "READY":
            raise SystemExit(f"RTSP server did not start: {(tmp / 'server.log').read_text()}")
        path = "/cam" if n == 1 else "/cam{}"
        urls = [f"rtsp://127.0.0.1:{port}{path.format(i)}" for i in range(1, n + 1)]
        kind = "serve-child" if backend == "serve" else "child"
        cmd = [sys.executable, __file__, kind, *urls, "--model", str(model), "--backend", backend]
        cmd += ["--duration", str(args.duration), "--warmup", str(args.warmup), "--server-pid", str(server.pid)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 120, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"watch child failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(lines[-1])
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def holds(r: dict, n: int) -> bool:
    return (
        r["dropped"] == 0
        and r["p95_latency_s"] < 1.0
        and r["samples_per_s"] >= 0.95 * n
        and r["read_fps_per_camera"] >= 0.97 * FPS
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    for kind in ("child", "serve-child"):
        c = sub.add_parser(kind, help=f"one {'serve' if kind == 'serve-child' else 'watch'} run (used by this script)")
        c.add_argument("urls", nargs="+")
        c.add_argument("--model", type=Path, required=True)
        c.add_argument("--backend", required=True)
        c.add_argument("--duration", type=float, required=True)
        c.add_argument("--warmup", type=float, required=True)
        c.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the tiny colour model)")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument(
        "--backends", nargs="+", default=["pyav", "opencv"], help="pyav, opencv (watch) and serve (pyav under serve)"
    )
    parser.add_argument("--duration", type=float, default=40.0, help="seconds per run (--duration of watch)")
    parser.add_argument("--warmup", type=float, default=12.0, help="seconds before measuring")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "screentime-cameras")
    parser.add_argument("--frames", type=Path, default=FRAMES, help="JPEGs the clip is made from")
    args = parser.parse_args()
    if args.command == "child":
        return child(args)
    if args.command == "serve-child":
        return serve_child(args)

    from rich.console import Console
    from rich.table import Table

    from tests.helpers import make_color_model

    args.workdir.mkdir(parents=True, exist_ok=True)
    clip = make_clip(args.workdir / "clip720p25.mp4", args.frames, seconds=10, loops=int(args.duration // 10) + 4)
    model = args.model or make_color_model(args.workdir / "color.onnx")
    results: dict[tuple[str, int], dict] = {}
    for n in args.counts:  # backends side by side, so both see much the same background load
        for backend in args.backends:
            say(f"{backend}, {n} camera(s) ...")
            results[backend, n] = r = one_run(args, clip, model, n, backend, args.workdir)
            say(f"  {json.dumps(r)}")
    used = next(iter(results.values()))["model"]
    table = Table(
        title=f"cameras: {SIZE[0]}x{SIZE[1]} {FPS} fps RTSP (loopback), 1 sample/s each, one watch (or serve) process; "
        f"model {Path(used).name}",
        caption=f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}; "
        f"command: python {' '.join(sys.argv)}. Measured over {args.duration - args.warmup - 1:.0f} s after "
        f"{args.warmup:g} s of warm-up. CPU: 100% = one core; others: every other process on the machine "
        "(the machine is shared). read fps/cam: frames received per camera per second (25: keeping up; more: "
        "catching up a backlog). holds: no sample dropped, p95 latency < 1 s, samples >= 95% of asked, "
        "every camera read at >= 97% of 25 fps.",
    )
    columns = ["cameras", "backend", "process CPU %", "server CPU %", "others CPU %", "decoded fps", "read fps/cam"]
    columns += ["samples/s (asked)", "p95 latency ms", "dropped", "inference ms", "holds"]
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    cores = os.cpu_count() or 1
    for (backend, n), r in sorted(results.items(), key=lambda item: (item[0][1], args.backends.index(item[0][0]))):
        others = r["machine_busy_pct"] * cores - r["cpu_pct"] - r["server_cpu_pct"]
        table.add_row(
            str(n),
            backend,
            f"{r['cpu_pct']:.0f}",
            f"{r['server_cpu_pct']:.0f}",
            f"{others:.0f}",
            f"{r['decoded_fps']:.1f}",
            f"{r['read_fps_per_camera']:.1f}",
            f"{r['samples_per_s']:.2f} ({n})",
            f"{r['p95_latency_s'] * 1000:.0f}",
            str(r["dropped"]),
            f"{r['inference_s'] * 1000:.0f}",
            "yes" if holds(r, n) else "no",
        )
    console = Console(width=180)
    console.print(table)
    for backend in args.backends:
        held = [n for n in args.counts if holds(results[backend, n], n)]
        console.print(f"{backend}: holds up to {max(held) if held else 0} camera(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
