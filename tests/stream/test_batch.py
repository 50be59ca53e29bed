"""`screentime batch`'s parts that need no Ray: the decode stage and the tally give `watch`'s
report on real encoded files, report names never collide, what counts as done, the summary and
the exit status. (The same parts through a real Ray, local and two-node: tests/cluster.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stream import watch
from stream.batch.decode import CHUNK, VideoRecord, decode_video
from stream.batch.plan import SUMMARY_NAME, find_videos, finished_report, plan_videos
from stream.batch.run import exit_status
from stream.batch.summary import Outcome, Status, summary_rows, write_summary
from stream.batch.tally import video_report
from stream.errors import BadInputError
from stream.frames.preprocess import SKIP_SIMILAR_DEFAULT
from stream.model.engine import Engine
from tests import corpus
from tests.helpers import write_color_video

SCENES = [(0, 0.0, 3.0), (1, 3.0, 7.0), (2, 7.0, 10.0)]
VOLATILE = {"started_at", "updated_at"}  # wall-clock times of the run, nothing measured


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v")
    still = write_color_video(folder / "still.mp4", SCENES, [i / 10 for i in range(100)])  # held colours: reuses
    vfr = [i / 30 for i in range(90)] + [3 + i / 5 for i in range(35)]
    noisy = write_color_video(folder / "noisy.mkv", SCENES, vfr, noise=25, gop=7)  # every sample differs
    return {"still": still, "noisy": noisy}


def analyse_without_ray(path, model, every_s: float):
    """The batch's stages in one process: decode, infer every chunk with the engine, tally."""
    engine = Engine(model, "cpu")
    inferred = {}
    record = None
    for part in decode_video(str(path), str(path), every_s, engine.card.input_size, SKIP_SIMILAR_DEFAULT):
        if isinstance(part, VideoRecord):
            record = part
            continue
        seqs, _, pictures = part
        assert len(seqs) <= CHUNK and all(p.shape == (32, 32, 3) for p in pictures)  # the model's size, no more
        inferred.update(zip(seqs, engine.predict(pictures), strict=True))
    assert record is not None and not record.error
    report = video_report(
        record,
        inferred,
        engine.card,
        source=str(path),
        model=str(model),
        model_sha256=engine.sha256,
        every_s=every_s,
        device=engine.device_name,
    )
    return record, report


@pytest.mark.parametrize(("clip", "every_s"), [("still", 0.5), ("still", 0.0), ("noisy", 1.0), ("noisy", 0.3)])
def test_decode_and_tally_give_watchs_report(clips, color_model, clip, every_s):
    record, report = analyse_without_ray(clips[clip], color_model, every_s)
    expected = watch(str(clips[clip]), color_model, every_s=every_s).run().to_dict()
    got = report.to_dict()
    assert {k: v for k, v in got.items() if k not in VOLATILE} == {
        k: v for k, v in expected.items() if k not in VOLATILE
    }
    assert got["model_sha256"] == Engine(color_model, "cpu").sha256 != ""
    if clip == "still":  # only distinct pictures were inferred; the rest travelled as times
        assert record.inferred < len(record.times_s) and got["inferences_saved"] > 0


@pytest.mark.parametrize("name", ["ts-short-gop", "ts-concat", "ts-forward-jump"])
def test_batch_gives_watchs_report_on_broadcast_recordings(tmp_path, color_model, name):
    """MPEG-TS with short GOPs and with timestamp jumps: the file source's fixes reach batch."""
    path = corpus.make(corpus.CLIPS[name], tmp_path)
    _, report = analyse_without_ray(path, color_model, 1.0)
    expected = watch(str(path), color_model, every_s=1.0).run().to_dict()
    got = report.to_dict()
    assert {k: v for k, v in got.items() if k not in VOLATILE} == {
        k: v for k, v in expected.items() if k not in VOLATILE
    }
    assert got["screen_time_s"] == pytest.approx(corpus.CLIPS[name].truth, abs=1.0)
    assert len(got["discontinuities"]) == corpus.CLIPS[name].copies - 1


def test_an_unreadable_video_is_a_record_with_one_line_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video" * 50)
    parts = list(decode_video("bad.mp4", str(bad), 1.0, (32, 32), 0.3))
    assert len(parts) == 1 and isinstance(parts[0], VideoRecord)
    assert parts[0].error.startswith("bad.mp4: ") and "\n" not in parts[0].error
    missing = list(decode_video("gone.mp4", str(tmp_path / "gone.mp4"), 1.0, (32, 32), 0.3))
    assert missing[0].error == "gone.mp4: no such file"


def test_videos_are_found_in_directories_and_names_never_collide(tmp_path):
    for rel in ("a/ep1.mp4", "b/ep1.MKV", "b/notes.txt", "b/deeper/ep2.mov", "summary.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    sources = find_videos([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "summary.mp4")])
    assert [s.removeprefix(str(tmp_path)) for s in sources] == [
        "/a/ep1.mp4",
        "/b/deeper/ep2.mov",
        "/b/ep1.MKV",
        "/summary.mp4",
    ]
    names = [v.report_name for v in plan_videos(sources)]
    assert len(set(names)) == 4 and names[1] == "ep2.json"
    assert names[0].startswith("ep1-") and names[2].startswith("ep1-")
    assert names[3] != f"{SUMMARY_NAME}.json"
    assert names == [v.report_name for v in plan_videos(sources)]  # the same names every run
    assert len(find_videos([str(tmp_path / "a"), str(tmp_path / "a" / "ep1.mp4")])) == 1  # each video once
    with pytest.raises(BadInputError, match="no such file"):
        find_videos([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no videos found"):
        find_videos([str(tmp_path / "empty")])


def test_only_a_finished_report_of_the_same_model_and_interval_counts_as_done(tmp_path):
    path = tmp_path / "r.json"
    good = {"ended": "end of stream", "model_sha256": "abc", "every_s": 1.0, "samples": 3, "crop": {"mode": "auto"}}
    path.write_text(json.dumps(good))
    assert finished_report(path, "abc", 1.0) == good
    assert finished_report(path, "abc", 1.0, "none") is None  # another crop
    fixed = {**good, "crop": {"mode": "fixed", "area": {"width": 640, "height": 480, "x": 107, "y": 0}}}
    path.write_text(json.dumps(fixed))
    assert finished_report(path, "abc", 1.0, "640:480:107:0") == fixed
    assert finished_report(path, "abc", 1.0, "640:480:0:0") is None
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "crop"}))  # from before crops: uncropped
    assert finished_report(path, "abc", 1.0) is None and finished_report(path, "abc", 1.0, "none") is not None
    path.write_text(json.dumps(good))
    assert finished_report(path, "abd", 1.0) is None  # another model file
    assert finished_report(path, "abc", 0.5) is None  # another interval
    path.write_text(json.dumps({**good, "ended": "running"}))
    assert finished_report(path, "abc", 1.0) is None
    path.write_text('{"ended": "end of str')  # torn (never by us: reports are atomic)
    assert finished_report(path, "abc", 1.0) is None
    assert finished_report(tmp_path / "missing.json", "abc", 1.0) is None


def test_summary_has_a_row_per_video_and_class_and_one_per_failure(tmp_path):
    pa = pytest.importorskip("pyarrow.parquet")
    ok, bad = plan_videos(["x/ok.mp4", "x/bad.mp4"])
    report = {
        "screen_time_s": {"neither": 1.0, "jerry": 2.0},
        "share": {"neither": 1 / 3, "jerry": 2 / 3},
        "duration_s": 3.0,
        "samples": 3,
        "every_s": 1.0,
        "characters": ["jerry"],
        "model_sha256": "abc",
    }
    outcomes = [Outcome(ok, Status.ANALYSED, report, decoded_on="n1"), Outcome(bad, Status.FAILED, error="x: broken")]
    rows = summary_rows(outcomes)
    assert [(r["video"], r["class"], r["character"], r["status"]) for r in rows] == [
        ("x/ok.mp4", "neither", False, "analysed"),
        ("x/ok.mp4", "jerry", True, "analysed"),
        ("x/bad.mp4", None, None, "failed"),
    ]
    written = write_summary(tmp_path, outcomes)
    assert [p.name for p in written] == ["summary.csv", "summary.parquet"]
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[-1].endswith("x: broken")
    table = pa.read_table(tmp_path / "summary.parquet").to_pylist()
    assert table[1]["screen_time_s"] == 2.0 and table[2]["screen_time_s"] is None


@pytest.mark.parametrize(("failed", "status"), [(0, 0), (1, 101), (3, 103), (25, 125), (4000, 125)])
def test_exit_status_counts_failed_videos(failed, status):
    assert exit_status(failed) == status


def test_stream_never_imports_ray():
    code = "import sys, stream, stream.cli, stream.batch, stream.batch.plan; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_cli_refuses_bad_input_before_starting_ray(color_model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, fragment in (
        ([str(empty), "--model", str(color_model)], "no videos found"),
        ([str(tmp_path / "missing.mp4"), "--model", str(color_model)], "no such file or directory"),
        ([str(empty), "--model", str(tmp_path / "m.onnx")], "no such model file"),
        ([str(empty), "--model", str(color_model), "--workers", "0"], "--workers must be >= 1"),
    ):
        command = [sys.executable, "-m", "stream.cli", "batch", *args, "--out", str(tmp_path / "out")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert lines[0].startswith("screentime: error:") and fragment in lines[0]
