"""Sparsely sampled files: keyframe seeking and dropped non-reference frames give the samples
decoding everything gives, for less decoding."""

from __future__ import annotations

import numpy as np
import pytest

from stream import watch
from stream.errors import BadInputError
from stream.sampler import Sampler, sample_mask
from stream.skipping import SkippingFileSource, index_frames, seek_target, worth_seeking
from stream.sources import FileSource
from tests.helpers import write_color_video

SCENES = [(0, 0.0, 8.0), (1, 8.0, 20.0), (2, 20.0, 30.0)]
# Variable frame rate: 25 fps, then 10 fps, then 25 fps again (the reported FPS fits no part).
TIMES = [i / 25 for i in range(250)] + [10 + i / 10 for i in range(100)] + [20 + i / 25 for i in range(250)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "gop.mp4"
    return write_color_video(path, SCENES, TIMES, gop=25, noise=30)  # a keyframe every 25 frames


@pytest.fixture(scope="module")
def bclip(tmp_path_factory):
    """The same pictures in MPEG-4 with two B-frames (never references there) between references;
    x264 gives noise no B-frames."""
    path = tmp_path_factory.mktemp("v") / "bframes.mp4"
    return write_color_video(path, SCENES, TIMES, gop=25, noise=30, codec="mpeg4", options={"bf": "2"})


def test_seek_target_is_the_last_keyframe_before_the_sample_and_only_if_it_skips_frames():
    keys = [0.0, 1.0, 2.0, 3.0]
    assert seek_target(keys, None, 2.5) == 2.0
    assert seek_target(keys, 0.5, 2.5) == 2.0
    assert seek_target(keys, 1.9, 2.5) is None  # the keyframe is (nearly) where decoding already is
    assert seek_target(keys, 2.0, 2.5) is None  # behind: never seek back
    assert seek_target(keys, 0.0, 3.0) == 3.0  # a keyframe exactly on the due time
    assert seek_target([1.0], None, 0.5) is None


def test_seeking_pays_only_when_keyframes_come_more_often_than_samples():
    keys = [float(i) for i in range(10)]
    assert worth_seeking(keys, 5.0)
    assert not worth_seeking(keys, 0.5)
    assert not worth_seeking([0.0], 5.0)


def test_keyframes_are_indexed_by_presentation_time(clip):
    keys = index_frames(clip).keyframes_s
    assert keys[0] == pytest.approx(0.0)
    assert len(keys) >= len(TIMES) // 25
    assert set(np.round(keys, 3)) <= set(np.round(TIMES, 3))


def sampled(source, every_s: float, seek: bool) -> list[tuple[float, np.ndarray]]:
    """What the reader takes from `source`: (time, image) of each sample."""
    source.open()
    sampler, out = Sampler(every_s), []
    try:
        while (t := source.grab()) is not None:
            if sampler.due(t):
                out.append((t, source.retrieve()))
                if seek:
                    source.skip_to(sampler.next_due_s)
    finally:
        source.close()
    return out


@pytest.mark.parametrize("every", [2.0, 3.7])
def test_seeking_gives_the_samples_sequential_decoding_gives(clip, every):
    index = index_frames(clip)
    reference = sampled(FileSource(clip), every, seek=False)  # OpenCV, every frame decoded
    plain = sampled(SkippingFileSource(clip, index), every, seek=False)
    source = SkippingFileSource(clip, index)
    seeking = sampled(source, every, seek=True)
    assert source.seeks > 0
    assert source.decoded < len(TIMES) / 2
    assert [t for t, _ in seeking] == pytest.approx([t for t, _ in reference], abs=1e-3)
    assert len(seeking) == len(plain) == len(reference) == int(TIMES[-1] // every) + 1
    for (_, a), (_, b), (_, c) in zip(seeking, plain, reference, strict=True):
        assert np.array_equal(a, b)  # the very same decoded picture
        assert np.abs(a.astype(int) - c.astype(int)).mean() < 3  # OpenCV's colour conversion rounds differently


@pytest.mark.parametrize("every", [0.3, 1.0])
def test_dropping_non_reference_frames_keeps_every_sample_bit_identical(bclip, every):
    # Keyframes every 25 frames are too far apart to seek at these intervals; B-frames before each
    # sample are dropped instead.
    source = SkippingFileSource(bclip, index_frames(bclip), seek=False)
    dropping = sampled(source, every, seek=True)  # `skip_to` after each sample, as the reader calls it
    plain = sampled(SkippingFileSource(bclip, index_frames(bclip)), every, seek=False)
    assert source.seeks == 0
    assert source.decoded < len(TIMES) * 0.6  # about a third are references
    assert [t for t, _ in dropping] == [t for t, _ in plain]
    assert len(dropping) == len(sample_mask(TIMES, every)) - sample_mask(TIMES, every).count(False)
    for (_, a), (_, b) in zip(dropping, plain, strict=True):
        assert np.array_equal(a, b)


def test_every_frame_time_is_given_even_when_its_picture_is_not_decoded(bclip, clip):
    for path, seek in ((bclip, False), (clip, True)):
        source = SkippingFileSource(path, index_frames(path), seek=seek)
        source.open()
        sampler, times = Sampler(2.0), []
        while (t := source.grab()) is not None:
            times.append(t)
            if sampler.due(t):
                source.skip_to(sampler.next_due_s)
        source.close()
        assert times == pytest.approx(TIMES, abs=1e-3)  # what the reader's stats and the end time rest on
        assert source.decoded < len(TIMES) / 2


def test_watch_seeks_on_a_sparse_file_and_counts_the_same(clip, color_model, caplog, monkeypatch):
    import logging

    with caplog.at_level(logging.INFO, logger="stream.skipping"):
        fast = watch(clip, color_model, every_s=2.0).run()
    assert "seeking keyframes" in caplog.text
    monkeypatch.setattr("stream.pipeline.skipping_source", lambda source, every, decode_all: source)  # OpenCV
    slow = watch(clip, color_model, every_s=2.0).run()
    assert fast.samples == slow.samples == 15
    assert fast.screen_time_s == pytest.approx(slow.screen_time_s)
    assert fast.screen_time_s == pytest.approx({"neither": 8.0, "jerry": 12.0, "tom": 10.0})


def test_a_file_pyav_cannot_read_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(BadInputError, match="cannot index frames"):
        index_frames(bad)
