"""A corpus of small recordings the way broadcast, archive and camera tools write them, made by
the Debian `ffmpeg` (scripts/install-system-deps.sh) from colour segments of known truth.

Every clip shows grey (neither) 0-2 s, red (jerry) 2-5 s, blue (tom) 5-8 s, grey 8-10 s at
25 fps, 320x180, so the colour model of `tests.helpers` must find jerry 3 s and tom 3 s in each;
clips spliced from two copies show it twice (20 s). Shared by tests/stream/test_formats.py and
benchmarks/formats.py.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SIZE = (320, 180)
RATE = 25
# RGB hex of the colours of tests.helpers.COLORS (which are BGR): grey, red (jerry), blue (tom).
_SEGMENTS = [("0x808080", 2), ("0xDC0000", 3), ("0x0000DC", 3), ("0x808080", 2)]
TRUTH = {"neither": 4.0, "jerry": 3.0, "tom": 3.0}


@dataclass(frozen=True)
class Clip:
    name: str
    suffix: str
    encode: tuple[str, ...]  # ffmpeg output options
    copies: int = 1  # the clip is this many copies of the 10 s segments, spliced
    splice: str = ""  # "concat": bytes appended (timestamps start over); "offset": the second part 90 s later
    size: tuple[int, int] = SIZE
    rate: int = RATE
    filters: str = ""  # appended to the source graph (after the segments are joined)

    @property
    def truth(self) -> dict[str, float]:
        return {k: v * self.copies for k, v in TRUTH.items()}

    @property
    def duration_s(self) -> float:
        return 10.0 * self.copies


H264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p")
VP9 = ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k")
CLIPS = {
    c.name: c
    for c in [
        Clip("mp4", ".mp4", (*H264, "-g", "12")),
        Clip("ts-short-gop", ".ts", (*H264, "-g", "12", "-f", "mpegts")),
        Clip("ts-long-gop", ".ts", (*H264, "-g", "250", "-f", "mpegts")),
        Clip("ps-mpeg2", ".mpg", ("-c:v", "mpeg2video", "-g", "12", "-b:v", "1M", "-f", "vob")),
        # Timestamps pass 2^33 ticks of 90 kHz (26.5 h) 6 s in: the demuxer unwraps them.
        Clip("ts-pts-wrap", ".ts", (*H264, "-g", "25", "-output_ts_offset", "95437.7", "-f", "mpegts")),
        Clip("mkv-vp9", ".mkv", (*VP9, "-g", "25")),
        Clip("webm-vp9", ".webm", (*VP9, "-g", "50")),
        Clip("mp4-hevc", ".mp4", ("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error")),
        Clip("mkv-av1", ".mkv", ("-c:v", "libsvtav1", "-preset", "12", "-g", "50")),
        Clip("mov-prores", ".mov", ("-c:v", "prores_ks", "-profile:v", "0")),
        Clip("avi-mjpeg", ".avi", ("-c:v", "mjpeg", "-q:v", "5")),
        Clip("mp4-10bit", ".mp4", ("-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-g", "25")),
        Clip("gif", ".gif", ("-c:v", "gif", "-pix_fmt", "rgb8"), rate=10),
        Clip("mkv-odd-size", ".mkv", ("-c:v", "ffv1", "-pix_fmt", "yuv444p"), size=(321, 179)),
        # 25 fps, but one frame in five from 3 to 6 s: variable frame rate, timestamps kept.
        Clip(
            "mp4-vfr",
            ".mp4",
            (*H264, "-vsync", "vfr"),
            filters="select='not(between(t\\,3\\,6))+not(mod(n\\,5))'",
        ),
        Clip("mp4-nonzero-start", ".mp4", (*H264, "-output_ts_offset", "30")),
        Clip(
            "ts-interlaced-mpeg2", ".ts", ("-c:v", "mpeg2video", "-flags", "+ilme+ildct", "-b:v", "1M", "-f", "mpegts")
        ),
        Clip("ts-interlaced-h264", ".ts", (*H264, "-flags", "+ilme+ildct", "-x264opts", "tff=1", "-f", "mpegts")),
        Clip("ts-concat", ".ts", (*H264, "-g", "25", "-f", "mpegts"), copies=2, splice="concat"),
        Clip("ts-forward-jump", ".ts", (*H264, "-g", "25", "-f", "mpegts"), copies=2, splice="offset"),
    ]
}


def ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if found is None:
        raise RuntimeError("ffmpeg not found: bash scripts/install-system-deps.sh (Debian package ffmpeg)")
    return found


def _source_graph(size: tuple[int, int], rate: int, filters: str = "") -> str:
    w, h = size
    parts = [f"color=c={c}:s={w}x{h}:r={rate}:d={d}[s{i}]" for i, (c, d) in enumerate(_SEGMENTS)]
    inputs = "".join(f"[s{i}]" for i in range(len(_SEGMENTS)))
    return ";".join(parts) + f";{inputs}concat=n={len(_SEGMENTS)}:v=1:a=0" + (f",{filters}" if filters else "")


def _run(args: list[str]) -> None:
    subprocess.run([ffmpeg(), "-loglevel", "error", "-y", *args], check=True, timeout=120)


def make(clip: Clip, folder: Path) -> Path:
    """Encode `clip` into `folder` (once: an existing file is reused)."""
    path = folder / f"{clip.name}{clip.suffix}"
    if path.exists():
        return path
    graph = ["-filter_complex", _source_graph(clip.size, clip.rate, clip.filters)]
    if clip.copies == 1:
        _run([*graph, *clip.encode, str(path)])
        return path
    first, second = folder / f"{clip.name}.1{clip.suffix}", folder / f"{clip.name}.2{clip.suffix}"
    _run([*graph, *clip.encode, str(first)])
    offset = ["-output_ts_offset", "100"] if clip.splice == "offset" else []
    _run([*graph, *clip.encode, *offset, str(second)])
    path.write_bytes(first.read_bytes() + second.read_bytes())
    first.unlink()
    second.unlink()
    return path
