import csv

import cv2
import numpy as np
import pytest

from stream.errors import BadInputError, SourceError
from tests.helpers import write_color_video
from training.extract import extract


def read_rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_opencv_encoded_constant_rate_video(tmp_path):
    video = tmp_path / "cfr.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(50):  # 5 s at 10 fps
        writer.write(np.full((48, 64, 3), i * 5, np.uint8))
    writer.release()
    result = extract(video, tmp_path / "out", every_s=1.0, progress=False)
    rows = read_rows(tmp_path / "out" / "frames.csv")
    assert result.frames == 5
    assert [r["Image_ID"] for r in rows] == [f"frame{i}.jpg" for i in range(5)]
    assert [float(r["timestamp_s"]) for r in rows] == pytest.approx([0, 1, 2, 3, 4], abs=1e-3)
    assert all((tmp_path / "out" / r["Image_ID"]).is_file() for r in rows)
    labels = read_rows(tmp_path / "out" / "labels.csv")
    assert [(r["Image_ID"], r["Class"]) for r in labels] == [(f"frame{i}.jpg", "") for i in range(5)]
    # The sampled frame is the one at that time: at 2 s, index 20 (grey levels step by 5 per frame).
    cap = cv2.VideoCapture(str(video))
    decoded = [cap.read()[1].mean() for _ in range(21)]
    assert abs(cv2.imread(str(tmp_path / "out" / "frame2.jpg")).mean() - decoded[20]) < 2


def test_variable_rate_video_with_wrong_reported_fps(tmp_path):
    # 3 s at 30 fps then 4 s at 2 fps: OpenCV reports one average FPS that is wrong for both halves.
    times = [i / 30 for i in range(90)] + [3 + i / 2 for i in range(8)]
    video = write_color_video(tmp_path / "vfr.mp4", [(1, 0, 3), (2, 3, 99)], times)
    reported = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS)
    assert abs(reported - 30) > 5 and abs(reported - 2) > 5
    extract(video, tmp_path / "out", every_s=1.0, progress=False)
    stamps = [float(r["timestamp_s"]) for r in read_rows(tmp_path / "out" / "frames.csv")]
    assert stamps == pytest.approx([0, 1, 2, 3, 4, 5, 6], abs=0.02)


def test_existing_labels_are_never_clobbered(tmp_path):
    video = write_color_video(tmp_path / "v.mp4", [(1, 0, 9)], [i / 10 for i in range(30)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.csv").write_text("Image_ID,Class\nframe0.jpg,1\n")
    extract(video, out, progress=False)
    assert (out / "labels.csv").read_text() == "Image_ID,Class\nframe0.jpg,1\n"


def test_missing_and_corrupt_videos(tmp_path):
    with pytest.raises(BadInputError, match="no such file"):
        extract(tmp_path / "nope.mp4", tmp_path / "out")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises((BadInputError, SourceError)):
        extract(junk, tmp_path / "out")


@pytest.mark.parametrize("name", ["ts-short-gop", "ts-concat"])
def test_broadcast_recordings_give_a_frame_every_second(tmp_path, name):
    """MPEG-TS with keyframes closer than the samples, and spliced TS: the file source's fixes
    reach extract (a picture for every second, the right colour, times continuous)."""
    from tests import corpus
    from tests.helpers import COLORS

    clip = corpus.CLIPS[name]
    result = extract(corpus.make(clip, tmp_path), tmp_path / "out", every_s=1.0, progress=False)
    rows = read_rows(tmp_path / "out" / "frames.csv")
    assert result.frames == len(rows) == round(clip.duration_s)
    assert [float(r["timestamp_s"]) for r in rows] == pytest.approx(list(range(len(rows))), abs=1e-3)
    colours = [0, 0, 1, 1, 1, 2, 2, 2, 0, 0] * clip.copies  # grey, red, blue, grey by second
    for row, label in zip(rows, colours, strict=True):
        picture = cv2.imread(str(tmp_path / "out" / row["Image_ID"]))
        assert np.abs(picture.reshape(-1, 3).mean(0) - COLORS[label]).max() < 12, row
