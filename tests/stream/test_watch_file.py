"""`watch` on real encoded files with a real ONNX model: numbers checked against the clip's truth."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import av
import cv2
import numpy as np
import pytest

from stream import watch
from stream.counting.stats import RunState
from stream.errors import BadInputError
from tests.helpers import COLORS, color_frame, make_color_model, write_color_video
from training.synthetic import write_video

SCENES = [(0, 0.0, 3.0), (1, 3.0, 7.0), (2, 7.0, 10.0)]  # neither, jerry, tom
TRUTH = {"neither": 3.0, "jerry": 4.0, "tom": 3.0}


@pytest.fixture(scope="module")
def cfr_clip(tmp_path_factory):
    return write_color_video(tmp_path_factory.mktemp("v") / "cfr.mp4", SCENES, [i / 10 for i in range(100)])


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory):
    # 30 fps for 3 s, then 5 fps: the reported FPS is an average that is wrong for both parts.
    times = [i / 30 for i in range(90)] + [3 + i / 5 for i in range(35)]
    return write_color_video(tmp_path_factory.mktemp("v") / "vfr.mp4", SCENES, times)


@pytest.mark.parametrize("every", [0.5, 1.0, 0.0])
def test_constant_rate_file_matches_truth(cfr_clip, color_model, every):
    run = watch(cfr_clip, color_model, every_s=every)
    predictions = list(run)
    report = run.report
    assert report.ended == "end of stream"
    assert report.samples == len(predictions) == (100 if every == 0 else round(10 / every))
    assert report.duration_s == pytest.approx(10.0)
    assert report.screen_time_s == pytest.approx(TRUTH)
    assert [(s.label, s.start_s, s.end_s) for s in report.segments] == [
        ("neither", 0.0, 3.0),
        ("jerry", 3.0, 7.0),
        ("tom", 7.0, 10.0),
    ]
    assert report.characters == ["jerry", "tom"] and report.background == "neither"


def test_variable_rate_file_with_wrong_reported_fps(vfr_clip, color_model):
    assert abs(cv2.VideoCapture(str(vfr_clip)).get(cv2.CAP_PROP_FPS) - 30) > 5
    report = watch(vfr_clip, color_model, every_s=1.0).run()
    assert [e.t_s for e in report.timeline] == pytest.approx(list(range(10)), abs=0.01)
    assert report.screen_time_s == pytest.approx(TRUTH, abs=0.01)
    assert report.duration_s == pytest.approx(10.0, abs=0.01)


def test_report_csv_and_overlay_video(cfr_clip, color_model, tmp_path):
    report_path, csv_path, video = tmp_path / "r.json", tmp_path / "t.csv", tmp_path / "overlay.mp4"
    watch(cfr_clip, color_model, every_s=0.5, report=report_path, csv=csv_path, output=video).run()
    data = json.loads(report_path.read_text())
    for key in (
        "source",
        "model",
        "classes",
        "samples",
        "duration_s",
        "screen_time_s",
        "segments",
        "timeline",
        "dropped",
    ):
        assert key in data
    assert data["screen_time_s"] == pytest.approx(TRUTH)
    assert data["timeline"][6] == {"t_s": 3.0, "class": "jerry", "confidence": pytest.approx(1.0, abs=0.05)}
    assert data["segments"][1] == {"class": "jerry", "start_s": 3.0, "end_s": 7.0}
    assert data["dropped"] == 0
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "t_s,class,confidence" and len(lines) == 21
    # Every input frame is in the overlay video, H.264, same size, same timing.
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "h264"
    assert len(frames) == 100
    assert (frames[0].width, frames[0].height) == (64, 48)
    assert float(frames[-1].time) == pytest.approx(9.9, abs=0.01)
    # The overlay is drawn: the top-left corner is the black label box, not the clip's grey.
    assert frames[0].to_ndarray(format="bgr24")[2, 2].max() < 60


def test_duration_limit_on_a_file(cfr_clip, color_model):
    report = watch(cfr_clip, color_model, every_s=0.5, duration_s=4.0).run()
    assert report.ended == "duration reached"
    assert report.duration_s == pytest.approx(4.0)
    assert report.screen_time_s == pytest.approx({"neither": 3.0, "jerry": 1.0, "tom": 0.0})


def test_unwritable_outputs_are_refused_before_any_work(cfr_clip, color_model, tmp_path):
    with pytest.raises(BadInputError, match="cannot write"):
        watch(cfr_clip, color_model, report=tmp_path / "missing-dir" / "r.json")
    with pytest.raises(BadInputError, match=r"\.mp4"):
        watch(cfr_clip, color_model, output=tmp_path / "o.gif")


def test_several_sources_in_one_run(cfr_clip, vfr_clip, color_model, tmp_path):
    run = watch(
        [cfr_clip, vfr_clip],
        color_model,
        every_s=1.0,
        report=tmp_path / "r.json",
        csv=tmp_path / "t.csv",
        output=tmp_path / "o.mp4",
    )
    predictions = list(run)
    assert len(run.reports) == 2 and len(predictions) == 20
    for report in run.reports:
        assert report.screen_time_s == pytest.approx(TRUTH, abs=0.01)
    # Each source's last numbers, as frozen snapshots (no live pipeline handed out).
    assert [(s.source, s.state, s.samples) for s in run.stats] == [
        (str(cfr_clip), RunState.ENDED, 10),
        (str(vfr_clip), RunState.ENDED, 10),
    ]
    with pytest.raises(FrozenInstanceError):
        run.stats[0].samples = 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert [s["source"] for s in data["sources"]] == [str(cfr_clip), str(vfr_clip)]
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "source,t_s,class,confidence"
    for i, frames in ((1, 100), (2, 125)):
        with av.open(str(tmp_path / f"o-{i}.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == frames


def test_truncated_video_is_analysed_as_far_as_it_decodes(tmp_path, color_model):
    full = write_color_video(tmp_path / "full.mkv", SCENES, [i / 10 for i in range(100)])
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    report = watch(cut, color_model, every_s=0.5, report=tmp_path / "r.json").run()
    assert report.ended == "end of stream"
    assert 3.0 < report.duration_s < 9.0  # part of the clip, and accounted for consistently
    assert sum(report.screen_time_s.values()) == pytest.approx(report.duration_s)
    assert json.loads((tmp_path / "r.json").read_text())["samples"] == report.samples


def test_smoothing_flag_delays_changes_by_the_window(cfr_clip, color_model):
    plain = watch(cfr_clip, color_model, every_s=0.5).run()
    smoothed = watch(cfr_clip, color_model, every_s=0.5, smoothing=3).run()
    assert plain.segments[1].start_s == 3.0
    assert smoothed.segments[1].start_s == 3.5  # a causal 3-sample mean needs two samples of the new class
    assert sum(smoothed.screen_time_s.values()) == pytest.approx(10.0)


def test_near_duplicate_frames_reuse_the_last_result(cfr_clip, color_model):
    # The clip holds one colour per scene: every sample inside a scene repeats the one before.
    full = watch(cfr_clip, color_model, every_s=0.5, skip_similar=0).run()
    lean = watch(cfr_clip, color_model, every_s=0.5).run()  # the default reuses, as the CLI does
    assert full.inferences_saved == 0
    assert lean.inferences_saved == 20 - 3  # only the first sample of each of the 3 scenes is inferred
    assert lean.screen_time_s == pytest.approx(full.screen_time_s)
    assert [e.label for e in lean.timeline] == [e.label for e in full.timeline]


def test_a_turned_phone_video_counts_the_same_with_and_without_the_overlay(tmp_path):
    """Shown upright (48 wide, 96 tall), each picture's top half has the scene's colour and its
    bottom left quarter is green; the file stores it turned a quarter clockwise, with a display
    matrix that turns it back. The model reads only the top half of what it is given: sideways,
    that is half scene colour, half green, which it calls "neither"."""

    def shown(t: float) -> np.ndarray:
        image = color_frame(next(lab for lab, a, b in SCENES if a <= t < b), (48, 96))
        image[48:, :24] = (0, 200, 0)
        return image

    path = tmp_path / "phone.mp4"
    write_video(path, [i / 10 for i in range(100)], lambda t: np.rot90(shown(t), -1), (96, 48), rotation=90)
    model = make_color_model(tmp_path / "top.onnx", crop=(0, 0, 32, 16))  # the top half of a 32x32 input
    sparse = watch(path, model, every_s=0.5).run()
    overlay = tmp_path / "overlay.mp4"
    every_frame = watch(path, model, every_s=0.5, output=overlay).run()
    assert sparse.screen_time_s == pytest.approx(TRUTH)
    assert every_frame.screen_time_s == pytest.approx(TRUTH)
    assert [e.label for e in every_frame.timeline] == [e.label for e in sparse.timeline]
    with av.open(str(overlay)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 100
    tom = frames[80]  # 8 s: the blue scene; the label box covers the top, the bottom shows
    assert tom.shape == (96, 48, 3)
    assert np.allclose(tom[84, 10], (0, 200, 0), atol=25)  # bottom left: green
    assert np.allclose(tom[84, 38], COLORS[2], atol=25)  # bottom right: the scene's blue


def test_stopping_early_over_several_sources_never_hangs(cfr_clip, vfr_clip, color_model):
    """The caller takes one prediction and leaves: producers must not block on a full fan-in queue."""
    import threading

    run = watch([cfr_clip, vfr_clip, cfr_clip], color_model, every_s=0.0)
    done = threading.Event()

    def take_one() -> None:
        for _ in run:
            break
        done.set()

    thread = threading.Thread(target=take_one, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert done.is_set(), "stopping early deadlocked"
    assert len(run.reports) == 3  # every source finished its report, whether it was stopped or had ended


def test_one_bad_source_does_not_stop_the_others(cfr_clip, color_model, tmp_path):
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(cfr_clip.read_bytes()[:300])  # a header and no frames
    run = watch([cfr_clip, truncated], color_model, every_s=1.0, report=tmp_path / "r.json")
    with pytest.raises(BadInputError) as info:
        list(run)
    assert "1 of 2 sources failed" in str(info.value) and "cut.mp4" in str(info.value)
    assert run.reports[0].screen_time_s == pytest.approx(TRUTH, abs=0.01)
    sections = json.loads((tmp_path / "r.json").read_text())["sources"]
    assert sections[0]["screen_time_s"] == pytest.approx(TRUTH, abs=0.01)


def test_times_are_written_to_the_millisecond(tmp_path, color_model):
    # 3 fps: frame times like 0.333..., 2.1599999999999966 in float arithmetic
    times = [i / 3 for i in range(30)]
    clip = write_color_video(tmp_path / "third.mp4", SCENES, times, rate=3)
    watch(clip, color_model, every_s=0.7, report=tmp_path / "r.json").run()
    text = (tmp_path / "r.json").read_text()
    data = json.loads(text)

    def numbers(value):
        if isinstance(value, float):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from numbers(v)
        elif isinstance(value, list):
            for v in value:
                yield from numbers(v)

    seconds = [
        v for key in ("screen_time_s", "segments", "timeline", "duration_s", "end_s") for v in numbers(data[key])
    ]
    assert seconds and all(round(v, 3) == v for v in seconds)
    assert "00000000" not in text and "99999999" not in text


def test_report_is_checkpointed_during_a_run(cfr_clip, color_model, tmp_path, monkeypatch):
    """A slow engine makes the run last a few seconds; checkpoints (ended: running) appear before the end."""
    from stream.api import Watch, WatchConfig
    from stream.settings import SourceSettings
    from tests.helpers import SlowEngine

    config = WatchConfig(
        sources=[str(cfr_clip)],
        model=color_model,
        source=SourceSettings(every_s=0.2, checkpoint_s=0.5, skip_similar=0, batch_size=1),
        report=tmp_path / "r.json",
    )
    monkeypatch.setattr("stream.api.Engine", lambda path, device: SlowEngine(path, 0.1))  # the run's one engine
    run = Watch(config)
    seen = []
    for _ in run:
        if (tmp_path / "r.json").exists():
            seen.append(json.loads((tmp_path / "r.json").read_text())["ended"])
    assert "running" in seen
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["ended"] == "end of stream" and data["screen_time_s"] == pytest.approx(TRUTH, abs=0.01)
