"""Black bars: the detector on synthetic frames of known bars, and the crop reaching the model in
every command that shows it a frame (a colour model that answers by the left quarter of its input:
on a pillarboxed frame that quarter is the bar unless the bar is cut)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from stream import watch
from stream.frames.crop import AUTO, NONE, Crop, Cropper, detect, frame_area, parse_crop
from tests.helpers import COLORS, make_color_model
from training.synthetic import write_video

BAR = (20, 20, 20)  # luma 20: under cropdetect's 24, and nearer the model's grey ("neither") than any colour


def boxed(label: int, size=(128, 48), area=(32, 0, 96, 48), seed: int = 0) -> np.ndarray:
    """A frame of `size` with BAR outside `area` (x0, y0, x1, y1) and the class's colour inside, noisy."""
    width, height = size
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BAR
    x0, y0, x1, y1 = area
    rng = np.random.default_rng(seed)
    picture = np.array(COLORS[label], int) + rng.integers(-8, 9, (y1 - y0, x1 - x0, 3))
    image[y0:y1, x0:x1] = np.clip(picture, 0, 255)
    return image


@pytest.fixture(scope="module")
def left_model(tmp_path_factory):
    # Input 32x32; the answer is the colour of columns 0..8 (the left quarter).
    return make_color_model(tmp_path_factory.mktemp("m") / "left.onnx", crop=(0, 0, 8, 32))


@pytest.mark.parametrize(
    "area",
    [(32, 0, 96, 48), (0, 6, 128, 42), (16, 4, 112, 44)],  # pillarbox, letterbox, windowbox
)
def test_bars_of_known_size_are_found(area):
    frames = [boxed(i % 3, area=area, seed=i) for i in range(10)]
    x0, y0, x1, y1 = area
    assert detect(frames) == Crop(x1 - x0, y1 - y0, x0, y0)


def test_no_bars_no_crop():
    frames = [boxed(1, area=(0, 0, 128, 48), seed=i) for i in range(5)]
    assert detect(frames) is None


def test_a_dark_scene_is_not_a_bar():
    # Most frames are a dark scene with one lit patch in the middle; a few show the whole picture.
    dark = np.zeros((48, 128, 3), np.uint8)
    dark[:, 50:78] = 200
    frames = [dark.copy() for _ in range(12)] + [boxed(2, area=(0, 0, 128, 48), seed=i) for i in range(3)]
    assert frame_area(dark) == (50, 0, 78, 48)  # one frame alone would crop it...
    assert detect(frames) is None  # ...the widest area over many is the whole frame
    # A black frame says nothing, and a learning cropper cuts nothing until enough frames spoke.
    cropper = Cropper(AUTO, frames=8)
    assert frame_area(np.zeros((48, 128, 3), np.uint8)) is None
    for _ in range(20):
        assert cropper(np.zeros((48, 128, 3), np.uint8)).shape == (48, 128, 3)
    for _ in range(7):
        assert cropper(dark).shape == (48, 128, 3)
    assert not cropper.settled


def test_cropper_learns_again_after_a_size_change():
    cropper = Cropper(AUTO, frames=4)
    for i in range(4):
        cropper(boxed(1, area=(32, 0, 96, 48), seed=i))
    assert cropper.crop == Crop(64, 48, 32, 0)
    assert cropper(boxed(1, seed=9)).shape == (48, 64, 3)
    # The camera reconnects at 160x120, letterboxed: the old crop goes, the new one is learnt.
    big = [boxed(2, size=(160, 120), area=(0, 20, 160, 100), seed=i) for i in range(4)]
    assert cropper(big[0]).shape == (120, 160, 3)
    assert cropper.crop is None and not cropper.settled
    for image in big[1:]:
        cropper(image)
    assert cropper.crop == Crop(160, 80, 0, 20)
    assert cropper.describe() == {"mode": "auto", "area": Crop(160, 80, 0, 20).to_dict(), "frame_size": [160, 120]}


def test_odd_edges_round_inward_to_even_pixels():
    frames = [boxed(1, area=(33, 5, 95, 43), seed=i) for i in range(3)]
    assert detect(frames) == Crop(60, 36, 34, 6)  # within 2 px of the true area, never into a bar


def test_parse_crop():
    assert parse_crop("auto") == AUTO and parse_crop("None") == NONE
    assert parse_crop("640:360:0:60") == Crop(640, 360, 0, 60)
    for bad in ("640x360", "0:360:0:0", "a:b:c:d", ""):
        with pytest.raises(ValueError):
            parse_crop(bad)
    # A fixed crop that does not fit the frame leaves it whole rather than cutting garbage.
    assert Cropper(Crop(200, 48, 0, 0))(boxed(1)).shape == (48, 128, 3)


@pytest.fixture(scope="module")
def boxed_clip(tmp_path_factory):
    """10 s of a pillarboxed jerry (red), 10 fps."""
    path = tmp_path_factory.mktemp("v") / "boxed.mp4"
    write_video(path, [i / 10 for i in range(100)], lambda t: boxed(1, seed=round(t * 10)), (128, 48))
    return path


def test_watch_and_overlay_crop_a_file(boxed_clip, left_model, tmp_path):
    run = watch(boxed_clip, left_model, every_s=1.0, output=tmp_path / "o.mp4")
    list(run)
    report = run.report.to_dict()
    assert report["crop"]["mode"] == "auto"
    assert report["crop"]["area"] == {"width": 64, "height": 48, "x": 32, "y": 0}
    assert report["screen_time_s"]["jerry"] == pytest.approx(10.0)  # every sample, the first too
    # The overlay shows the whole picture, bars included.
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape[:2] == (48, 128)
    uncut = watch(boxed_clip, left_model, every_s=1.0, crop="none")
    list(uncut)
    assert uncut.report.to_dict()["crop"] == {"mode": "none", "area": None, "frame_size": None}
    assert uncut.report.screen_time_s["neither"] == pytest.approx(10.0)  # the bar is all it saw


def test_batch_decoding_crops(boxed_clip):
    from stream.batch.decode import VideoRecord, decode_video

    items = list(decode_video("boxed.mp4", str(boxed_clip), 1.0, (32, 32), 0.0))
    record = items[-1]
    assert isinstance(record, VideoRecord) and not record.error
    assert record.crop["area"] == {"width": 64, "height": 48, "x": 32, "y": 0}
    pictures = [p for chunk in items[:-1] for p in chunk[2]]
    assert pictures and all(int(p[:, :8, 2].mean()) > 150 for p in pictures)  # red in the left quarter


def _boxed_set(directory, n=9):
    directory.mkdir()
    rows = ["Image_ID,Class"]
    for i in range(n):
        cv2.imwrite(str(directory / f"frame{i}.jpg"), boxed(1 + i % 2, seed=i), [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows.append(f"frame{i}.jpg,{1 + i % 2}")
    (directory / "labels.csv").write_text("\n".join(rows) + "\n")
    return directory


def test_evaluate_crops_each_set(tmp_path, left_model):
    from training.evaluate import evaluate

    frames = _boxed_set(tmp_path / "set")
    result = evaluate(left_model, frames, frames / "labels.csv")
    assert result.metrics["accuracy"] == 1.0 and result.metrics["crop"] == "64:48:32:0"
    assert evaluate(left_model, frames, frames / "labels.csv", crop="none").metrics["accuracy"] == 0.0


def test_suggest_and_label_guesses_crop(tmp_path, left_model):
    from training.label_server import Predictor
    from training.suggest import suggest

    frames = _boxed_set(tmp_path / "set")
    (frames / "labels.csv").write_text("Image_ID,Class\n")  # nothing labelled yet
    paths = {p.name: p for p in sorted(frames.glob("*.jpg"))}
    guesses = Predictor(left_model, "cpu").predict(paths)
    assert {g["classes"][0] for g in guesses.values()} == {1, 2}
    assert {g["classes"][0] for g in Predictor(left_model, "cpu", crop="none").predict(paths).values()} == {0}
    # Cropped, every frame is one clear colour: no coin tosses among the suggestions.
    assert min(suggest(frames, left_model, n=3, device="cpu").margins) > 0.5


def test_extract_writes_frames_whole_and_records_the_crop(boxed_clip, tmp_path):
    from training.extract import CROP_JSON, extract
    from training.images import path_crops

    out = tmp_path / "x"
    extract(boxed_clip, out, every_s=1.0, progress=False)
    assert cv2.imread(str(out / "frame0.jpg")).shape[:2] == (48, 128)
    record = json.loads((out / CROP_JSON).read_text())
    assert record["area"] == {"width": 64, "height": 48, "x": 32, "y": 0}
    assert set(path_crops(sorted(out.glob("*.jpg")))) == {Crop(64, 48, 32, 0)}
    assert set(path_crops(sorted(out.glob("*.jpg")), NONE)) == {None}
