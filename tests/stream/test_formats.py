"""Every container of the corpus (tests/corpus.py) gives its true screen time, and sparse decoding
takes exactly the samples and pictures that decoding every frame takes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream import watch
from stream.filesource import FileSource, exact_seeks
from stream.sampler import Sampler
from tests import corpus

EVERY_S = 1.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus")


def clip_path(folder, name: str):
    return corpus.make(corpus.CLIPS[name], folder)


def sampled(source: FileSource, every_s: float) -> list[tuple[float, np.ndarray]]:
    """(time, picture) of each sample, telling the source the next due time as the reader does."""
    source.open()
    sampler, out = Sampler(every_s), []
    try:
        while (t := source.grab()) is not None:
            if sampler.due(t):
                out.append((t, source.retrieve()))
                source.skip_to(sampler.next_due_s)
    finally:
        source.close()
    return out


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
    import av

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
    monkeypatch.setattr("stream.filesource.exact_seeks", lambda flags: True)
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
