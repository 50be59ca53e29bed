import logging

import pytest

from stream.errors import LabelError
from training.labels import parse_class, read_labels


@pytest.fixture
def frames(tmp_path):
    for i in range(6):
        (tmp_path / f"frame{i}.jpg").write_bytes(b"jpeg")
    return tmp_path


def write(frames, text):
    path = frames / "labels.csv"
    path.write_text(text)
    return path


def test_seed_quirks_conflict_dropped_with_warning_naming_it(frames, caplog):
    # Like the seed's mapping.csv: frame2 listed twice with conflicting classes, frame3 never listed.
    csv = write(frames, "Image_ID,Class\nframe0.jpg,0\nframe1.jpg,1\nframe2.jpg,2\nframe2.jpg,0\nframe4.jpg,2\n")
    with caplog.at_level(logging.WARNING):
        data = read_labels(csv, frames, 3)
    assert [p.name for p in data.paths] == ["frame0.jpg", "frame1.jpg", "frame4.jpg"]
    assert data.single == [0, 1, 2]
    assert data.dropped == ["frame2.jpg"]
    assert "frame2.jpg" in caplog.text


def test_identical_duplicate_kept_once_and_time_order_by_frame_number(frames):
    csv = write(frames, "Image_ID,Class\nframe10.jpg,1\nframe5.jpg,1\nframe5.jpg,1\n")
    (frames / "frame10.jpg").write_bytes(b"jpeg")
    data = read_labels(csv, frames, 3)
    assert [p.name for p in data.paths] == ["frame5.jpg", "frame10.jpg"]
    assert data.times_s == [5.0, 10.0]


def test_frames_csv_timestamps_give_order_and_time(frames):
    (frames / "frames.csv").write_text("Image_ID,timestamp_s\nframe0.jpg,0.0\nframe1.jpg,0.5\nframe2.jpg,1.5\n")
    csv = write(frames, "Image_ID,Class\nframe2.jpg,1\nframe0.jpg,0\nframe1.jpg,\n")
    data = read_labels(csv, frames, 3)
    assert [p.name for p in data.paths] == ["frame0.jpg", "frame2.jpg"]
    assert data.times_s == [0.0, 1.5]
    assert data.unlabelled == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty label file"),
        ("frame0.jpg,0\nframe1.jpg,1\n", "header"),
        ("Image_ID,Class\nframe9.jpg,1\n", "frame9.jpg does not exist"),
        ("Image_ID,Class\nframe0.jpg,3\n", "class 3 is outside"),
        ("Image_ID,Class\nframe0.jpg,tom\n", "not an integer"),
        ("Image_ID,Class\nframe0.jpg,\n", "no labelled frames"),
        ("Image_ID,Class\nframe0.jpg\n", "expected Image_ID,Class"),
    ],
)
def test_bad_label_files_are_clear_errors(frames, text, message):
    with pytest.raises(LabelError, match=message) as info:
        read_labels(write(frames, text), frames, 3)
    assert "\n" not in str(info.value)


def test_missing_csv_and_directory(frames):
    with pytest.raises(LabelError, match="no such label file"):
        read_labels(frames / "nope.csv", frames, 3)
    with pytest.raises(LabelError, match="no such frames directory"):
        read_labels(write(frames, "Image_ID,Class\n"), frames / "nope", 3)


def test_parse_class_multi_label_and_float_ids():
    assert parse_class("1;2", "x", 3) == (1, 2)
    assert parse_class("2;1;2", "x", 3) == (1, 2)
    assert parse_class("2.0", "x", 3) == (2,)
    assert parse_class(" ", "x", 3) == ()
