"""Web links and live protocols on loopback, each served by a real server: a `python -m
http.server` over files and over a folder `ffmpeg -re ... -f hls` writes, `ffmpeg` sending UDP
TS, `ffmpeg -listen 1` as an RTMP server, an MJPEG-over-HTTP server; each with its expected
totals, samples per second and exit code."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import time

import pytest

from stream import watch
from stream.cli import main
from stream.errors import BadInputError
from stream.settings import SourceSettings
from stream.sources.open import FileSource, PyAVNetworkSource, open_source
from stream.sources.probe import UrlKind, web_kind
from tests import corpus
from tests.servers import (
    ffmpeg_sending,
    free_port,
    http_server,
    live_input,
    mjpeg_server,
    status_server,
    ts_over_http,
)

EVERY_S = 0.5


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    corpus.make(corpus.CLIPS["mp4"], folder)
    corpus.make(corpus.CLIPS["ts-short-gop"], folder)
    hls = folder / "vod"
    hls.mkdir()
    subprocess.run(
        [
            corpus.ffmpeg(),
            "-loglevel",
            "error",
            "-i",
            str(folder / "ts-short-gop.ts"),
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_playlist_type",
            "vod",
            str(hls / "index.m3u8"),
        ],
        check=True,
        timeout=60,
    )
    with http_server(folder) as url:
        yield folder, url


def test_an_http_file_is_a_recording_with_the_downloaded_files_numbers(web, color_model):
    folder, url = web
    source = open_source(f"{url}/mp4.mp4", SourceSettings(every_s=1.0))
    assert type(source) is FileSource
    remote = watch(f"{url}/mp4.mp4", color_model, every_s=1.0).run()
    local = watch(folder / "mp4.mp4", color_model, every_s=1.0).run()
    assert remote.ended == "end of stream" and remote.outages == [] and remote.reconnects == 0
    assert remote.samples == local.samples == 10
    assert remote.duration_s == pytest.approx(local.duration_s)
    assert remote.screen_time_s == pytest.approx(local.screen_time_s)
    assert remote.screen_time_s == pytest.approx(corpus.TRUTH, abs=1.0)


@pytest.mark.parametrize("retry", [[], ["--no-retry"]])
def test_the_cli_on_an_http_file_finishes_with_or_without_retries(web, color_model, tmp_path, retry):
    _, url = web
    report = tmp_path / "r.json"
    code = main(
        [
            "watch",
            f"{url}/ts-short-gop.ts",
            "--model",
            str(color_model),
            "--no-dashboard",
            *retry,
            "--report",
            str(report),
        ]
    )
    assert code == 0
    data = json.loads(report.read_text())
    assert data["samples"] == 10 and data["outages"] == [] and data["duration_s"] == pytest.approx(10.0, abs=0.04)
    assert data["screen_time_s"]["jerry"] == pytest.approx(3.0) and data["screen_time_s"]["tom"] == pytest.approx(3.0)


def test_an_hls_playlist_that_ends_is_a_recording(web, color_model):
    _, url = web
    assert web_kind(f"{url}/vod/index.m3u8") is UrlKind.FILE
    report = watch(f"{url}/vod/index.m3u8", color_model, every_s=EVERY_S).run()
    assert report.ended == "end of stream" and report.outages == []
    assert report.samples == 20
    assert report.duration_s == pytest.approx(10.0, abs=0.04)
    assert report.screen_time_s == pytest.approx(corpus.TRUTH, abs=EVERY_S)


def test_http_404_is_named_with_its_status_and_exit_2(web, color_model, capsys):
    _, url = web
    with pytest.raises(BadInputError, match="HTTP 404 not found"):
        open_source(f"{url}/missing.mp4")
    assert main(["watch", f"{url}/missing.mp4", "--model", str(color_model), "--no-dashboard"]) == 2
    assert "HTTP 404 not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "words"), [("srt://127.0.0.1:9000", "cannot read srt://"), ("foo://x/y", "unknown URL scheme 'foo'")]
)
def test_a_scheme_this_build_cannot_read_is_exit_2_naming_it(spec, words, color_model, capsys):
    assert main(["watch", spec, "--model", str(color_model), "--no-dashboard"]) == 2
    err = capsys.readouterr().err
    assert words in err and "retry" not in err and err.count("\n") == 1


def watch_live(url: str, color_model, seconds: float):
    """The predictions and report of `seconds` of a live stream sampled every EVERY_S."""
    run = watch(url, color_model, every_s=EVERY_S, duration_s=seconds, timeout_s=5)
    return list(run), run.report


def assert_live_red(predictions, report, seconds: float) -> None:
    """About `seconds` of red, sampled every EVERY_S of media time: bursts (HLS segments) do not
    collapse samples, and no time is credited twice."""
    assert report.screen_time_s["jerry"] == pytest.approx(report.duration_s, abs=0.01)
    assert report.duration_s > seconds * 0.5 and report.outages == []
    times = [p.t_s for p in predictions]
    assert len(times) == report.samples
    # A burst would put samples ~0 s apart; half an interval leaves room for the arrival jitter of
    # MJPEG (timed by arrival) on a loaded machine, where a late sample is followed by one on time.
    assert min(b - a for a, b in itertools.pairwise(times)) >= EVERY_S / 2
    span = times[-1] - times[0]
    assert span > seconds * 0.5
    assert report.samples == pytest.approx(span / EVERY_S + 1, abs=1.5)  # 2 samples per media second


def test_live_hls_is_sampled_on_media_time(tmp_path, color_model):
    hls = tmp_path / "live"
    hls.mkdir()
    args = [*live_input(12), "-f", "hls", "-hls_time", "2", "-hls_list_size", "3", str(hls / "live.m3u8")]
    with ffmpeg_sending(args), http_server(hls) as url:
        deadline = time.monotonic() + 15
        while not (hls / "live.m3u8").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert web_kind(f"{url}/live.m3u8") is UrlKind.LIVE
        source = open_source(f"{url}/live.m3u8", SourceSettings(every_s=EVERY_S))
        assert type(source) is PyAVNetworkSource
        predictions, report = watch_live(f"{url}/live.m3u8", color_model, 8)
    assert_live_red(predictions, report, 8)


def test_udp_ts(color_model):
    port = free_port(socket.SOCK_DGRAM)
    url = f"udp://127.0.0.1:{port}"
    with ffmpeg_sending([*live_input(8), "-f", "mpegts", f"{url}?pkt_size=1316"]):
        predictions, report = watch_live(url, color_model, 4)
    assert_live_red(predictions, report, 4)


def test_rtmp_with_ffmpeg_as_the_server(color_model):
    """`ffmpeg -listen 1` sends to the player that connects: the RTMP server a camera or an
    encoder would be."""
    url = f"rtmp://127.0.0.1:{free_port()}/live/x"
    with ffmpeg_sending([*live_input(8), "-f", "flv", "-listen", "1", url]):
        time.sleep(0.5)
        predictions, report = watch_live(url, color_model, 5)
    assert_live_red(predictions, report, 3)


def test_mjpeg_over_http(color_model):
    with mjpeg_server(10) as base:
        url = f"{base}/cam.mjpg"
        assert web_kind(url) is UrlKind.LIVE
        predictions, report = watch_live(url, color_model, 4)
    assert_live_red(predictions, report, 4)


@pytest.mark.parametrize(("code", "words"), [(401, "HTTP 401 unauthorized"), (403, "HTTP 403 forbidden")])
def test_http_401_and_403_are_named(code, words, color_model, capsys):
    with status_server(code) as base:
        url = base.replace("http://", "http://user:secret@") + "/cam.ts"
        assert main(["watch", url, "--model", str(color_model), "--no-dashboard"]) == 2
    err = capsys.readouterr().err
    assert words in err and "secret" not in err


def test_live_ts_over_http(color_model):
    with ts_over_http(10) as base:
        url = f"{base}/live.ts"
        assert web_kind(url) is UrlKind.LIVE
        predictions, report = watch_live(url, color_model, 5)
    assert_live_red(predictions, report, 4)
