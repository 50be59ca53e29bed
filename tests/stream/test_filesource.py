"""Files through PyAV: decoded in order or sparsely (dropped non-reference frames, keyframe seeking)
with the same samples, every frame's time given, pictures turned as players turn them, and one
clear line for anything that is not a video."""

from __future__ import annotations

import logging

import av
import cv2
import numpy as np
import pytest

from stream import watch
from stream.errors import BadInputError
from stream.frames.sampler import Sampler, sample_mask
from stream.settings import SourceSettings
from stream.sources.file import FileSource, index_frames, seek_target, worth_seeking
from stream.sources.open import open_source
from stream.sources.orientation import Orientation
from tests.helpers import sampled, write_color_video

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


@pytest.mark.parametrize("every", [2.0, 3.7])
def test_seeking_gives_the_samples_sequential_decoding_gives(clip, every):
    reference = sampled(FileSource(clip), every, skip=True)  # in order, every frame decoded
    plain = sampled(FileSource(clip, every), every, skip=False)  # indexed, nothing skipped
    source = FileSource(clip, every)
    seeking = sampled(source, every, skip=True)
    assert source.seek and source.seeks > 0
    assert source.decoded < len(TIMES) / 2
    assert [t for t, _ in seeking] == pytest.approx([t for t, _ in reference], abs=1e-6)
    assert len(seeking) == len(plain) == len(reference) == int(TIMES[-1] // every) + 1
    for (_, a), (_, b), (_, c) in zip(seeking, plain, reference, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)  # the very same decoded picture


def test_pictures_are_the_ones_opencv_decodes(clip):
    ours = sampled(FileSource(clip, 2.0), 2.0, skip=True)
    cap, theirs, sampler = cv2.VideoCapture(str(clip)), [], Sampler(2.0)
    while cap.grab():
        if sampler.due(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000):
            theirs.append(cap.retrieve()[1])
    assert len(ours) == len(theirs)
    for (_, a), b in zip(ours, theirs, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3  # colour conversion rounds differently


@pytest.mark.parametrize("every", [0.3, 1.0])
def test_dropping_non_reference_frames_keeps_every_sample_bit_identical(bclip, every, monkeypatch):
    # Without seeking, only B-frames before each sample are dropped.
    monkeypatch.setattr("stream.sources.file.worth_seeking", lambda keyframes_s, every_s: False)
    source = FileSource(bclip, every)
    dropping = sampled(source, every, skip=True)  # `skip_to` after each sample, as the reader calls it
    plain = sampled(FileSource(bclip), every, skip=True)  # in order: `skip_to` skips nothing
    assert not source.seek and source.seeks == 0
    assert source.decoded < len(TIMES) * 0.6  # about a third are references
    assert [t for t, _ in dropping] == pytest.approx([t for t, _ in plain], abs=1e-6)
    assert len(dropping) == sample_mask(TIMES, every).count(True)
    for (_, a), (_, b) in zip(dropping, plain, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("sparse", [2.0, None], ids=["sparse", "in-order"])
def test_every_frame_time_is_given_even_when_its_picture_is_not_decoded(bclip, clip, sparse):
    for path in (bclip, clip):
        source = FileSource(path, sparse)
        info = source.open()
        sampler, times = Sampler(2.0), []
        while (t := source.grab()) is not None:
            times.append(t)
            if sampler.due(t):
                source.skip_to(sampler.next_due_s)
        source.close()
        assert times == pytest.approx(TIMES, abs=1e-3)  # what the reader's stats and the end time rest on
        assert info.frame_count == len(TIMES) and (info.width, info.height) == (64, 48)
        if sparse:
            assert source.decoded < len(TIMES) / 2
        else:
            assert source.decoded == len(TIMES)


def test_a_file_that_cannot_be_indexed_is_decoded_in_order(clip, monkeypatch, caplog):
    def unindexable(path):
        raise BadInputError(f"{path}: repeated frame timestamps")

    monkeypatch.setattr("stream.sources.file.index_frames", unindexable)
    source = FileSource(clip, 2.0)
    with caplog.at_level(logging.DEBUG, logger="stream.sources.file"):
        samples = sampled(source, 2.0, skip=True)
    assert "repeated frame timestamps" in caplog.text
    assert source.index is None and source.seeks == 0 and source.decoded == len(TIMES)
    assert [t for t, _ in samples] == pytest.approx([2.0 * i for i in range(15)], abs=1e-3)


def test_watch_seeks_on_a_sparse_file_and_counts_the_same(clip, color_model, caplog, monkeypatch):
    with caplog.at_level(logging.INFO, logger="stream.sources.file"):
        fast = watch(clip, color_model, every_s=2.0).run()
    assert "seeking keyframes" in caplog.text
    monkeypatch.setattr("stream.api.open_source", lambda spec, settings=None: FileSource(spec))  # every frame decoded
    slow = watch(clip, color_model, every_s=2.0).run()
    assert fast.samples == slow.samples == 15
    assert fast.screen_time_s == pytest.approx(slow.screen_time_s)
    with av.open(str(clip)) as container:  # the last frame lasts until the file's stated end
        stream = container.streams.video[0]
        end_s = float(stream.duration * stream.time_base)
    assert 29.96 < end_s <= 30.1
    assert fast.screen_time_s == pytest.approx({"neither": 8.0, "jerry": 12.0, "tom": end_s - 20.0})


def test_open_source_gives_a_sparse_file_source_only_when_asked():
    assert open_source("a.mp4").sparse_every_s is None
    assert open_source("a.mp4", SourceSettings(every_s=2.0)).sparse_every_s == 2.0
    assert open_source("a.mp4", SourceSettings(every_s=2.0, every_frame=True)).sparse_every_s is None  # an overlay


def test_a_short_constant_rate_file_in_order(tmp_path):
    clip = write_color_video(tmp_path / "c.mp4", [(1, 0, 9)], [i / 10 for i in range(20)])
    source = FileSource(clip)
    info = source.open()
    times = []
    while (t := source.grab()) is not None:
        times.append(t)
        assert source.retrieve().shape == (48, 64, 3)
    source.close()
    assert times == pytest.approx([i / 10 for i in range(20)]) and times[0] == 0.0
    assert (info.fps, info.frame_count, info.live) == (10.0, 20, False)


# Pictures turned as players turn them.

STORED = np.zeros((32, 64, 3), np.uint8)  # landscape, as stored: left half red, right half blue,
STORED[:, :32] = (0, 0, 220)  # with a green strip along the top, so every turn and mirror differs
STORED[:, 32:] = (220, 0, 0)
STORED[:8] = (0, 200, 0)


def write_turned(path, degrees: int, hflip: bool = False, tags: dict[str, str] | None = None):
    """Five stored frames of STORED whose display matrix turns them `degrees` counter-clockwise (and
    mirrors them left-right after); `tags` instead for an old-style `rotate` tag."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        if degrees or hflip:
            stream.set_display_rotation(degrees, hflip=hflip)
        stream.metadata.update(tags or {})
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(STORED, format="bgr24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def assert_looks_like(image: np.ndarray, expected: np.ndarray) -> None:
    assert image.shape == expected.shape
    assert np.abs(image.astype(int) - expected.astype(int)).mean() < 8  # H.264 blurs the colour edges


@pytest.mark.parametrize("sparse", [None, 0.2], ids=["in-order", "sparse"])
@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_a_turned_file_is_analysed_upright(tmp_path, degrees, sparse):
    path = write_turned(tmp_path / "phone.mp4", degrees)
    source = FileSource(path, sparse)
    info = source.open()
    upright = np.rot90(STORED, degrees // 90)  # numpy turns counter-clockwise, as the matrix says
    assert (info.width, info.height) == (upright.shape[1], upright.shape[0])
    pictures = []
    while source.grab() is not None:
        pictures.append(source.retrieve())
    source.close()
    assert len(pictures) == 5
    for picture in pictures:
        assert_looks_like(picture, upright)
    # OpenCV turns such files the way players do: the same picture.
    ok, shown = cv2.VideoCapture(str(path)).read()
    assert ok
    assert_looks_like(pictures[0], shown)


def test_a_quarter_turn_puts_the_colours_where_a_player_shows_them(tmp_path):
    source = FileSource(write_turned(tmp_path / "phone.mp4", 90), 1.0)
    source.open()
    source.grab()
    picture = source.retrieve()
    source.close()
    assert picture.shape == (64, 32, 3)  # 32 wide, 64 tall
    # Turned counter-clockwise, the stored right half (blue) is on top, the left (red) below, and
    # the stored top strip (green) runs down the left side.
    assert np.allclose(picture[16, 20], (220, 0, 0), atol=20)
    assert np.allclose(picture[48, 20], (0, 0, 220), atol=20)
    assert np.allclose(picture[32, 2], (0, 200, 0), atol=20)


@pytest.mark.parametrize(
    ("degrees", "hflip", "tags", "expected"),
    [
        (0, True, None, np.fliplr(STORED)),  # a mirror (OpenCV shows it turned half round instead)
        (90, True, None, np.fliplr(np.rot90(STORED))),
        (0, False, {"rotate": "90"}, np.rot90(STORED, -1)),  # an old-style tag: degrees clockwise
    ],
    ids=["mirrored", "turned-and-mirrored", "rotate-tag"],
)
def test_mirrors_and_rotate_tags(tmp_path, degrees, hflip, tags, expected):
    path = tmp_path / ("m.mkv" if tags else "m.mp4")  # Matroska keeps the tag; MP4 the display matrix
    source = FileSource(write_turned(path, degrees, hflip, tags))
    info = source.open()
    source.grab()
    assert (info.width, info.height) == (expected.shape[1], expected.shape[0])
    assert_looks_like(source.retrieve(), expected)
    source.close()


@pytest.mark.parametrize("degrees", [0, 90, -90, 180, 270, -180])
def test_orientation_from_rotation_turns_as_numpy_does(degrees):
    image = np.arange(24, dtype=np.uint8).reshape(4, 6)
    assert np.array_equal(Orientation.from_rotation(degrees).apply(image), np.rot90(image, degrees // 90))


def test_orientation_from_a_matrix_with_mirrors():
    image = np.arange(24, dtype=np.uint8).reshape(4, 6)
    assert np.array_equal(Orientation.from_matrix(-1, 0, 0, 1).apply(image), np.fliplr(image))
    assert np.array_equal(Orientation.from_matrix(1, 0, 0, -1).apply(image), np.flipud(image))
    assert np.array_equal(Orientation.from_matrix(0, 1, 1, 0).apply(image), image.T)
    assert Orientation.from_matrix(1, 0, 0, 1).upright and Orientation.from_rotation(10).upright


# Anything that is not a video: one clear line.


def _audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory, not a video"),
        (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\), not a video"),
        (lambda p: p.write_text("this is a text file, renamed\n" * 40), "not a video"),
        (lambda p: p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()), "not a video"),
        (_audio_only, "contains no video frames"),
    ],
    ids=["missing", "directory", "empty", "text", "random-bytes", "audio-only"],
)
@pytest.mark.parametrize("sparse", [None, 1.0], ids=["in-order", "sparse"])
def test_bad_files_are_one_clear_line(tmp_path, make, message, sparse):
    path = tmp_path / "input.mp4"
    make(path)
    with pytest.raises(BadInputError, match=message) as caught:
        FileSource(path, sparse).open()
    assert "\n" not in str(caught.value) and str(caught.value).startswith(str(path))


def test_a_file_pyav_cannot_index_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(BadInputError, match="cannot index frames"):
        index_frames(bad)
