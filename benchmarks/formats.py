"""Any video, any stream: one row per container of the corpus (tests/corpus.py: colour segments
of known truth, encoded by the Debian ffmpeg) and per web link or live protocol on loopback
(tests/servers.py), each analysed by `watch` with the tests' colour model, as a user would.

Columns: samples expected (files: media duration / interval; live: the span of media time the
samples cover / interval, so bursts that collapsed samples show) / taken; the worst per-class
error against the truth (s); duration_s minus the media duration (s; live: n/a, a live run's
length is the wall clock's); pictures the decoder produced; wall time; the exit code the CLI
would give (0 ok, 2 bad input, 3 source).
Files are sampled every 1 s (sparse decoding), live streams every 0.5 s for 6 s.

    nice -n 10 python benchmarks/formats.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream import watch
from stream.errors import ScreentimeError
from tests import corpus
from tests.helpers import make_color_model
from tests.servers import ffmpeg_sending, free_port, http_server, live_input, mjpeg_server

FILE_EVERY_S = 1.0
LIVE_EVERY_S = 0.5
LIVE_S = 6.0


def measure(name: str, spec: str, model: Path, every_s: float, truth: Callable | None, media_s: float | None, **kw):
    """One row: run `watch` on `spec`; `truth(report)` gives the true seconds per class."""
    started = time.monotonic()
    code, report, decoded, times = 0, None, None, []
    try:
        run = watch(spec, model, every_s=every_s, **kw)
        times = [p.t_s for p in run]
        report = run.report
        decoded = getattr(run.runner.pipeline(0).source, "decoded", None)
    except ScreentimeError as exc:
        code = exc.exit_code
        print(f"  {name}: {exc}", file=sys.stderr)
    wall = time.monotonic() - started
    row = {"input": name, "exit": code, "wall_s": f"{wall:.2f}", "decoded": decoded if decoded is not None else "-"}
    if report is None:
        return row | {"samples": "- / -", "worst_class_err_s": "-", "duration_err_s": "-"}
    # Files: one sample per interval of their media; live: per interval of the media time sampled.
    span = media_s if media_s is not None else (times[-1] - times[0] + every_s if times else 0.0)
    expected = round(span / every_s)
    true = truth(report) if truth else {}
    worst = max((abs(report.screen_time_s.get(k, 0.0) - v) for k, v in true.items()), default=0.0)
    duration_err = f"{report.duration_s - media_s:+.3f}" if media_s is not None else "n/a"
    return row | {
        "samples": f"{expected} / {report.samples}",
        "worst_class_err_s": f"{worst:.3f}",
        "duration_err_s": duration_err,
    }


def all_red(report) -> dict[str, float]:
    return {"jerry": report.duration_s, "tom": 0.0, "neither": 0.0}


def live_rows(model: Path, folder: Path, only: set[str]) -> list[dict]:
    rows = []
    want = lambda n: not only or n in only  # noqa: E731
    web = folder / "web"
    web.mkdir()
    mp4 = corpus.make(corpus.CLIPS["mp4"], web)
    ts = corpus.make(corpus.CLIPS["ts-short-gop"], web)
    import subprocess

    (web / "vod").mkdir()
    hls_vod = ["-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"]
    subprocess.run(
        [corpus.ffmpeg(), "-loglevel", "error", "-i", str(ts), *hls_vod, str(web / "vod" / "index.m3u8")], check=True
    )
    live_kw = {"duration_s": LIVE_S, "timeout_s": 5}
    file_truth = lambda r: corpus.TRUTH  # noqa: E731
    with http_server(web) as url:
        if want("http-file"):
            rows.append(measure("http-file (mp4)", f"{url}/{mp4.name}", model, 1.0, file_truth, 10.0))
        if want("http-file-no-retry"):
            rows.append(
                measure("http-file --no-retry", f"{url}/{ts.name}", model, 1.0, file_truth, 10.0, max_reconnects=0)
            )
        if want("hls-vod"):
            rows.append(measure("hls-vod (ENDLIST)", f"{url}/vod/index.m3u8", model, 1.0, file_truth, 10.0))
        if want("http-404"):
            rows.append(measure("http-404", f"{url}/missing.mp4", model, 1.0, None, None))
    if want("hls-live"):
        hls = folder / "live"
        hls.mkdir()
        args = [*live_input(LIVE_S + 8), "-f", "hls", "-hls_time", "2", "-hls_list_size", "3", str(hls / "x.m3u8")]
        with ffmpeg_sending(args), http_server(hls) as url:
            deadline = time.monotonic() + 15
            while not (hls / "x.m3u8").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            rows.append(measure("hls-live", f"{url}/x.m3u8", model, LIVE_EVERY_S, all_red, None, **live_kw))
    if want("udp-ts"):
        udp = f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
        with ffmpeg_sending([*live_input(LIVE_S + 4), "-f", "mpegts", f"{udp}?pkt_size=1316"]):
            rows.append(measure("udp-ts", udp, model, LIVE_EVERY_S, all_red, None, **live_kw))
    if want("rtmp"):
        rtmp = f"rtmp://127.0.0.1:{free_port()}/live/x"
        with ffmpeg_sending([*live_input(LIVE_S + 4), "-f", "flv", "-listen", "1", rtmp]):
            time.sleep(0.5)
            rows.append(measure("rtmp (ffmpeg -listen 1)", rtmp, model, LIVE_EVERY_S, all_red, None, **live_kw))
    if want("mjpeg-http"):
        with mjpeg_server(LIVE_S + 4) as base:
            rows.append(measure("mjpeg-http", f"{base}/cam.mjpg", model, LIVE_EVERY_S, all_red, None, **live_kw))
    if want("srt"):
        rows.append(measure("srt (not in the wheel)", "srt://127.0.0.1:9000", model, 1.0, None, None))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=[], help="corpus entries or protocols to run")
    args = parser.parse_args()
    only = set(args.only)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = make_color_model(folder / "color.onnx")
        rows = []
        for name, clip in corpus.CLIPS.items():
            if only and name not in only:
                continue
            path = corpus.make(clip, folder)
            rows.append(measure(name, str(path), model, FILE_EVERY_S, lambda r, c=clip: c.truth, clip.duration_s))
        rows += live_rows(model, folder, only)
    columns = ["input", "samples", "worst_class_err_s", "duration_err_s", "decoded", "wall_s", "exit"]
    heads = ["input", "samples exp / taken", "worst class err s", "duration_s err s", "decoded", "wall s", "exit"]
    widths = [max(len(h), *(len(str(r[c])) for r in rows)) for h, c in zip(heads, columns, strict=True)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
