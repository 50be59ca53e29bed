"""The overlay video written for real with PyAV: a live file survives SIGKILL, a file is faststart,
a write failure becomes one OutputError line without stalling the producer, live runs can be segmented."""

from __future__ import annotations

import itertools
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from stream.counting.stats import RunStats
from stream.errors import OutputError
from stream.model.card import ModelCard
from stream.outputs import events as ev
from stream.outputs.overlay import OverlaySink
from stream.records import Frame, VideoInfo

REPO = Path(__file__).resolve().parents[2]
CARD = ModelCard(classes=("neither", "jerry"), input_width=32, input_height=32, screentime_version="test")

# Feeds a live sink 320x240 frames at ~25 fps, on the monotonic clock, until it is killed.
# The size is unknown at start (0 x 0), as for a camera that has not connected yet. The picture is
# mostly still (a few KB/s, like a quiet camera), so FFmpeg's 32 KiB write buffer would hold whole
# fragments back for seconds if the sink did not flush them.
LIVE_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from stream.model.card import ModelCard
    from stream.records import Frame, VideoInfo
    from stream.counting.stats import RunStats
    from stream.outputs import events as ev
    from stream.outputs.overlay import OverlaySink

    TAG, STATS = ev.SourceTag(0, "cam", "cam", True), RunStats("cam", True, ["neither", "jerry"], ["jerry"])
    sink = OverlaySink(Path(sys.argv[1]), live=True)
    sink.handle(ev.Started(TAG, VideoInfo(0, 0, 25.0, None, True), ModelCard(("neither", "jerry"), 32, 32), STATS))
    still = np.full((240, 320, 3), 90, np.uint8)
    t0 = time.monotonic()
    print("started", flush=True)
    i = 0
    while True:
        image = still.copy()
        image[:, (i * 4) % 320] = 255
        sink.handle(ev.Pictured(TAG, Frame(image, time.monotonic(), i), None))
        i += 1
        time.sleep(max(0.0, t0 + i / 25 - time.monotonic()))
    """
)


TAG = ev.SourceTag(0, "cam", "cam", True)
STATS = RunStats("cam", True, ["neither", "jerry"], ["jerry"])


def boxes(path: Path) -> list[str]:
    """Top-level MP4 box types, in file order (a truncated last box is listed too)."""
    data, found, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        found.append(kind.decode("latin-1"))
        if size < 8:
            break
        at += size
    return found


def decoded_times(path: Path) -> list[float]:
    """Every decodable frame's time. A packet the demuxer flags as truncated (a kill in the middle of
    writing a fragment) is skipped, as players skip it; any other decode error fails the test."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(f.time) for p in container.demux(stream) if not p.is_corrupt for f in p.decode()]


def colour_frames(n: int, size: tuple[int, int] = (64, 48), fps: float = 10.0) -> list[Frame]:
    return [Frame(np.full((size[1], size[0], 3), (i * 7) % 256, np.uint8), i / fps, i) for i in range(n)]


def test_live_video_is_on_disk_while_running_and_plays_after_sigkill(tmp_path):
    out = tmp_path / "live.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", LIVE_CHILD, str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "started"
        time.sleep(3.0)
        assert out.stat().st_size > 3_000  # fragments reach the file as they complete, not at close
        time.sleep(1.0)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    kinds = boxes(out)
    assert kinds[:2] == ["ftyp", "moov"] and "moof" in kinds  # fragmented: the index is up front
    times = decoded_times(out)
    assert len(times) >= 50
    assert all(b > a for a, b in itertools.pairwise(times))
    assert times[-1] > 2.5  # at most about one fragment (~1 s) of the ~4 s is lost
    with av.open(str(out)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (320, 240)


def test_file_video_is_faststart_with_every_frame(tmp_path):
    out = tmp_path / "file.mp4"
    with OverlaySink(out, live=False) as sink:
        sink.handle(ev.Started(TAG, VideoInfo(64, 48, 10.0, 30, False), CARD, STATS))
        for frame in colour_frames(30):
            sink.handle(ev.Pictured(TAG, frame, None))
    kinds = boxes(out)
    assert "moof" not in kinds and kinds.index("moov") < kinds.index("mdat")
    assert decoded_times(out) == pytest.approx([i / 10 for i in range(30)], abs=1e-3)
    assert sink.written == 30 and sink.dropped == 0


def test_size_from_first_frame_and_later_sizes_resized_to_it(tmp_path):
    out = tmp_path / "sized.mp4"
    with OverlaySink(out, live=False) as sink:
        sink.handle(
            ev.Started(TAG, VideoInfo(0, 0, 0.0, None, False), CARD, STATS)
        )  # size and rate unknown: first frame, 25 fps
        frames = colour_frames(10, size=(81, 61)) + colour_frames(10, size=(160, 120))[5:]
        for i, frame in enumerate(frames):
            sink.handle(ev.Pictured(TAG, Frame(frame.image, i / 10, i), None))
    with av.open(str(out)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 15
    assert {(f.width, f.height) for f in decoded} == {(82, 62)}  # the source's size, padded to even


def _full_disk(tmp_path: Path) -> Path:
    link = tmp_path / "full.mp4"
    link.symlink_to("/dev/full")  # every write fails with ENOSPC
    return link


def _gone_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "gone"
    folder.mkdir()
    folder.rmdir()
    return folder / "out.mp4"


@pytest.mark.parametrize(
    ("make_path", "live", "reason"),
    [
        (_full_disk, False, "[Errno 28] No space left on device"),
        (_full_disk, True, "[Errno 28] No space left on device"),
        (_gone_dir, False, "[Errno 2] No such file or directory"),
        (_gone_dir, True, "[Errno 2] No such file or directory"),
    ],
)
def test_write_failure_is_one_line_at_close_and_never_blocks_the_producer(tmp_path, make_path, live, reason):
    path = make_path(tmp_path)
    sink = OverlaySink(path, live=live, queue_size=4)
    sink.handle(ev.Started(TAG, VideoInfo(320, 240, 25.0, None, live), CARD, STATS))
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(4)]  # large packets: fails early
    feeder = threading.Thread(
        target=lambda: [sink.handle(ev.Pictured(TAG, Frame(noise[i % 4], i / 25, i), None)) for i in range(200)],
        daemon=True,
    )
    feeder.start()
    feeder.join(timeout=60)
    assert not feeder.is_alive(), "frame() blocked after the write failure"
    with pytest.raises(OutputError) as caught:
        sink.handle(ev.Ended(TAG, None, STATS))
    assert str(caught.value) == f"overlay video {path}: {reason}"
    assert caught.value.exit_code == 4
    if not live:  # a file's producer waits for the writer, so the failure comes mid-feed; then frames are let go
        assert sink.discarded > 0


def test_live_segments_each_play(tmp_path):
    out = tmp_path / "cam.mp4"
    with OverlaySink(out, live=True, queue_size=200, segment_minutes=1 / 60) as sink:  # 1 s segments
        sink.handle(ev.Started(TAG, VideoInfo(64, 48, 25.0, None, True), CARD, STATS))
        for frame in colour_frames(70, fps=25.0):  # 2.8 s
            sink.handle(ev.Pictured(TAG, frame, None))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["cam-0001.mp4", "cam-0002.mp4", "cam-0003.mp4"]
    assert sink.paths == [tmp_path / n for n in names]
    counts = []
    for name in names:
        times = decoded_times(tmp_path / name)
        assert times[0] == 0.0  # each segment plays from its own start
        counts.append(len(times))
    assert counts == [25, 25, 20] and sink.dropped == 0
