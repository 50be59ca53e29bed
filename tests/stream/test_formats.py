"""Every container of the corpus (tests/corpus.py) gives its true screen time, and sparse decoding
takes exactly the samples and pictures that decoding every frame takes."""

from __future__ import annotations

import json
import subprocess

import av
import numpy as np
import pytest

from stream import watch
from stream.errors import BadInputError
from stream.frames.sampler import Sampler
from stream.sources.file import FileSource, exact_seeks
from tests import corpus
from tests.helpers import COLORS, sampled

EVERY_S = 1.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus")


def clip_path(folder, name: str):
    return corpus.make(corpus.CLIPS[name], folder)


def assert_same_samples(sparse, every_frame) -> None:
    assert [t for t, _ in sparse] == pytest.approx([t for t, _ in every_frame], abs=1e-6)
    for (t, a), (_, b) in zip(sparse, every_frame, strict=True):
        assert a is not None, f"no picture for the sample at {t} s"
        assert np.array_equal(a, b), f"another picture at {t} s"


@pytest.mark.parametrize("name", list(corpus.CLIPS))
def test_sparse_decoding_takes_the_samples_decoding_every_frame_takes(folder, name):
    path = clip_path(folder, name)
    every_frame = sampled(FileSource(path), EVERY_S)
    sparse = sampled(FileSource(path, EVERY_S), EVERY_S)
    assert len(every_frame) == round(corpus.CLIPS[name].duration_s / EVERY_S)
    assert_same_samples(sparse, every_frame)


@pytest.mark.parametrize("name", list(corpus.CLIPS))
@pytest.mark.parametrize("overlay", [False, True])
def test_totals_and_duration_are_the_truth(folder, name, overlay, color_model, tmp_path):
    clip = corpus.CLIPS[name]
    output = tmp_path / "overlay.mp4" if overlay else None
    report = watch(clip_path(folder, name), color_model, every_s=EVERY_S, output=output).run()
    assert report.ended == "end of stream"
    assert report.samples == round(clip.duration_s / EVERY_S)
    assert report.duration_s == pytest.approx(clip.duration_s, abs=1 / corpus.RATE)
    assert report.screen_time_s == pytest.approx(clip.truth, abs=EVERY_S)


def test_mpeg_ts_and_ps_are_not_sought_mp4_is(folder):
    for name, exact in [("ts-short-gop", False), ("ps-mpeg2", False), ("mp4", True)]:
        with av.open(str(clip_path(folder, name))) as container:
            assert exact_seeks(container.format.flags) is exact, name
    source = FileSource(clip_path(folder, "mp4"), EVERY_S)
    sampled(source, EVERY_S)
    assert source.seek and source.seeks > 0


def test_a_seek_that_lands_past_its_keyframe_demuxes_forward(folder, monkeypatch):
    """Were a container's seeks taken for exact when they are not, no sample is lost either."""
    path = clip_path(folder, "ts-short-gop")
    every_frame = sampled(FileSource(path), EVERY_S)
    monkeypatch.setattr("stream.sources.file.exact_seeks", lambda flags: True)
    source = FileSource(path, EVERY_S)
    sparse = sampled(source, EVERY_S)
    assert source.seeks > 0 and not source.seek  # it sought, saw the overshoot, and stopped seeking
    assert_same_samples(sparse, every_frame)


@pytest.mark.parametrize(("name", "jump_s"), [("ts-concat", -10.0), ("ts-forward-jump", 89.92)])
def test_a_timestamp_jump_is_listed_and_not_counted(folder, name, jump_s, color_model, tmp_path):
    report_path = tmp_path / "r.json"
    report = watch(clip_path(folder, name), color_model, every_s=EVERY_S, report=report_path).run()
    assert report.discontinuities == [{"t_s": pytest.approx(10.0), "jump_s": pytest.approx(jump_s, abs=0.1)}]
    assert [e.t_s for e in report.timeline] == pytest.approx(list(range(20)), abs=1e-6)
    assert json.loads(report_path.read_text())["discontinuities"][0]["t_s"] == pytest.approx(10.0)


def test_a_continuous_recording_lists_no_discontinuities(folder, color_model):
    report = watch(clip_path(folder, "ts-pts-wrap"), color_model, every_s=EVERY_S).run()
    assert report.discontinuities == []


def run_ffmpeg(*args: str) -> None:
    subprocess.run([corpus.ffmpeg(), "-loglevel", "error", "-y", *args], check=True, timeout=60)


def test_a_one_frame_video_lasts_one_frame(tmp_path, color_model):
    path = tmp_path / "one.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=0xDC0000:s=320x180:r=25", "-frames:v", "1", "-c:v", "libx264", str(path))
    report = watch(path, color_model, every_s=EVERY_S).run()
    assert report.samples == 1
    assert report.duration_s == pytest.approx(0.04, abs=1e-3)
    assert report.screen_time_s["jerry"] == pytest.approx(0.04, abs=1e-3)


def test_an_audio_only_file_is_one_clear_line(tmp_path, color_model):
    path = tmp_path / "audio.m4a"
    run_ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(path))
    with pytest.raises(BadInputError, match="no video frames"):
        watch(path, color_model).run()


def test_an_odd_sized_source_keeps_its_size_in_the_overlay(folder, color_model, tmp_path):
    path = clip_path(folder, "mkv-odd-size")
    source = FileSource(path)
    source.open()
    source.grab()
    assert source.retrieve().shape[:2] == (179, 321)
    source.close()
    output = tmp_path / "overlay.mp4"
    watch(path, color_model, every_s=EVERY_S, output=output).run()
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (322, 180)  # one pixel of padding for H.264 4:2:0
        picture = next(container.decode(stream)).to_ndarray(format="bgr24")
    assert np.abs(picture[:179, 300:321].astype(int) - COLORS[0]).max() < 12  # the source's own right edge


def combed_clip(path) -> None:
    """Interlaced MPEG-2 whose two fields were shot apart: red in one field, blue in the other."""
    run_ffmpeg(
        "-filter_complex",
        "color=c=0xDC0000:s=320x180:r=25:d=2[a];color=c=0x0000DC:s=320x180:r=25:d=2[b];"
        "[a][b]interleave,tinterlace=mode=interleave_top,setfield=tff",
        "-c:v",
        "mpeg2video",
        "-flags",
        "+ilme+ildct",
        "-b:v",
        "2M",
        str(path),
    )


def test_interlaced_frames_are_deinterlaced_before_the_model_sees_them(tmp_path):
    path = tmp_path / "combed.mpg"
    combed_clip(path)
    with av.open(str(path)) as container:
        raw = next(container.decode(video=0))
        assert raw.interlaced_frame
        combed = raw.to_ndarray(format="bgr24").astype(int)
    source = FileSource(path)
    source.open()
    source.grab()
    picture = source.retrieve().astype(int)
    source.close()

    def comb(image):  # how much each row differs from the next
        return np.abs(np.diff(image[8:-8], axis=0)).mean()

    assert comb(combed) > 50
    assert comb(picture) < 5


def test_a_frame_a_few_microseconds_early_is_the_sample_due():
    sampler = Sampler(1.0)
    assert sampler.due(0.0)
    assert not sampler.due(0.96)
    assert sampler.due(0.999988)  # the 1.0 s sample, stamped by a 90 kHz clock's rounding
    assert not sampler.due(1.04)
