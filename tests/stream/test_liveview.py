"""The live view's server on its own: real HTTP on loopback, real JPEGs, frames fed as a run feeds it."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from stream.counting.stats import RunStats
from stream.errors import BadInputError
from stream.model.card import ModelCard
from stream.outputs.events import Pictured, Sampled, SourceTag, Started
from stream.outputs.liveview import LiveView
from stream.records import Frame, Prediction, VideoInfo
from tests.helpers import color_frame, decode_jpeg, mjpeg_parts


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def view_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "liveview" or "process_request" in t.name]


def tag(key: int, name: str = "cam") -> SourceTag:
    return SourceTag(key, name, name, live=True)


CARD = ModelCard(("neither", "jerry", "tom"), 32, 32)


def numbers(**fields) -> RunStats:
    return RunStats("cam", True, list(CARD.classes), ["jerry", "tom"], **fields)


def make_view(names: list[str], **kwargs) -> LiveView:
    """A view with a tile per name, as a run makes it: made, sources started, then opened."""
    view = LiveView(**kwargs)
    for key, name in enumerate(names):
        view.handle(Started(tag(key, name), VideoInfo(0, 0, None, None, True), CARD, numbers()))
    return view


def feed(view: LiveView, label: int, stop: threading.Event, fps: float = 50) -> None:
    """A camera faster than the view: a new frame every 1/fps s, until stopped."""
    t = 0.0
    while not stop.is_set():
        view.handle(Pictured(tag(0), Frame(color_frame(label, (320, 240)), t, int(t * fps)), None))
        t += 1 / fps
        time.sleep(1 / fps)


def test_page_has_a_tile_per_source_and_unknown_paths_are_404():
    view = make_view(["rtsp://user:***@cam/1", "<b>clip</b>.mp4"], port=0)
    try:
        assert view.host == "127.0.0.1"  # not published beyond this machine by default
        view.__enter__()
        status, page = get(view.url)
        text = page.decode()
        assert status == 200
        assert '<img src="/stream/0.mjpg"' in text and '<img src="/stream/1.mjpg"' in text
        assert "rtsp://user:***@cam/1" in text and "&lt;b&gt;clip&lt;/b&gt;.mp4" in text and "<b>clip" not in text
        for path in ("stream/2.mjpg", "stream/x.mjpg", "stream/-1.mjpg", "nothing"):
            assert get(view.url + path)[0] == 404
    finally:
        view.close()


def test_viewer_gets_the_newest_annotated_picture_at_the_capped_rate():
    view = make_view(["cam"], port=0, fps=4)
    view.__enter__()
    view.handle(
        Sampled(
            tag(0),
            Prediction(t_s=0.0, label="jerry", confidence=0.9),
            Frame(None, 0.0, 0),
            numbers(totals={"jerry": 1.0}),
        )
    )
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(view, 1, stop), daemon=True)
    feeder.start()
    try:
        parts = mjpeg_parts(view.url + "stream/0.mjpg", seconds=2.5)
    finally:
        stop.set()
        feeder.join()
        view.close()
    # 50 frames a second offered, at most 4 a second sent (plus the first one); nothing queued.
    assert 6 <= len(parts) <= 4 * 2.5 + 2, len(parts)
    image = decode_jpeg(parts[-1][1])
    assert image.shape[:2] == (240, 320)
    b, g, r = image[200:, 200:].reshape(-1, 3).mean(axis=0)
    assert r > 180 and b < 60 and g < 60  # the picture: red
    assert image[2:6, 2:6].mean() < 40  # the overlay's black box: drawn, not the raw frame
    assert not view_threads()


def test_an_older_frame_never_replaces_a_newer_one():
    view = make_view(["cam"], port=0)
    try:
        tile = view.tiles["0"]
        assert tile.jpeg(0, 0.1) is None  # nothing to show yet: the viewer waits
        tile.offer(color_frame(2, (64, 48)), 2.0)  # a tapped frame, newer ...
        tile.offer(color_frame(1, (64, 48)), 1.0)  # ... than the sampled frame update() brings later
        data, _ = tile.jpeg(0, 1.0)
        b, _, r = decode_jpeg(data)[30:, 40:].reshape(-1, 3).mean(axis=0)
        assert b > 180 and r < 60
    finally:
        view.close()


def test_close_ends_open_streams_and_joins_every_thread():
    view = make_view(["cam"], port=0, fps=10)
    view.__enter__()
    view.handle(Pictured(tag(0), Frame(color_frame(1), 0.0, 0), None))
    ended = threading.Event()

    def watch_forever() -> None:
        mjpeg_parts(view.url + "stream/0.mjpg", seconds=60)  # returns when the server ends the stream
        ended.set()

    viewer = threading.Thread(target=watch_forever, daemon=True)
    viewer.start()
    time.sleep(0.5)
    assert view_threads()
    view.__exit__(None, None, None)  # the run's end stops the view
    viewer.join(timeout=5)
    assert ended.is_set()
    assert not view_threads()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", view.port), timeout=1):
        pass
    view.close()  # again: nothing happens


def test_a_port_in_use_is_bad_input():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BadInputError, match=f"--view-port {port}"):
            LiveView(port=port)


def test_large_pictures_are_scaled_for_the_browser():
    view = make_view(["cam"], port=0)
    try:
        view.tiles["0"].offer(np.zeros((2160, 3840, 3), np.uint8), 0.0)
        data, _ = view.tiles["0"].jpeg(0, 1.0)
        assert decode_jpeg(data).shape[:2] == (720, 1280)
    finally:
        view.close()


def test_watch_with_a_view_over_several_files_one_of_them_broken(tmp_path, color_model):
    """A tile per source; a source that fails before its pipeline starts still leaves nothing running."""
    from stream import watch
    from tests.helpers import write_color_video

    clip = write_color_video(tmp_path / "clip.mp4", [(1, 0, 5)], [i / 10 for i in range(50)])
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(clip.read_bytes()[:300])  # a header and no frames
    run = watch([clip, truncated], color_model, every_s=1.0, view_port=0)
    pages = []
    with pytest.raises(Exception, match="1 of 2 sources failed"):
        for _ in run:
            deadline = time.monotonic() + 10  # the sources start on their own threads: wait for both tiles
            while not pages or (pages[-1][1].count(b"<figure>") < 2 and time.monotonic() < deadline):
                pages.append(get(run.view.url))  # served while the run goes on
                time.sleep(0.02)
    status, page = pages[-1]
    assert status == 200 and page.count(b"<figure>") == 2 and str(truncated).encode() in page
    assert [r.source for r in run.reports] == [str(clip)]
    assert not view_threads()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", run.view.port), timeout=1):
        pass
