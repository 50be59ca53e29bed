"""`screentime label`: a real server on a free port, real HTTP, a real headless Chromium; no mocks."""

from __future__ import annotations

import csv
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from playwright.sync_api import Page, expect, sync_playwright

from stream.errors import BadInputError
from tests.helpers import color_frame
from training.label_server import LabelServer, make_server
from training.labels import read_labels

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def make_frames(directory: Path, truth: list[int], with_labels_csv: bool = True) -> Path:
    """frame{i}.jpg in the colour of class truth[i] (grey/red/blue), frames.csv, empty labels.csv."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, label in enumerate(truth):
        assert cv2.imwrite(str(directory / f"frame{i}.jpg"), color_frame(label, (64, 40)))
    times = "".join(f"frame{i}.jpg,{i * 0.5:.3f}\n" for i in range(len(truth)))
    (directory / "frames.csv").write_text("Image_ID,timestamp_s\n" + times)
    if with_labels_csv:
        (directory / "labels.csv").write_text(
            "Image_ID,Class\n" + "".join(f"frame{i}.jpg,\n" for i in range(len(truth)))
        )
    return directory


@contextmanager
def running(directory: Path, **kwargs) -> Iterator[LabelServer]:
    server = make_server(directory, port=0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium_page(url: str) -> Iterator[tuple[Page, list[str]]]:
    """A headless Chromium page opened at `url`, and the page and console errors it reports."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(url)
            yield page, errors
        finally:
            browser.close()


def request(port: int, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    sent = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=sent)
    response = conn.getresponse()
    status, data = response.status, response.read()
    conn.close()
    return status, data


def post_labels(port: int, labels: dict, **headers) -> tuple[int, bytes]:
    return request(port, "POST", "/api/labels", {"labels": labels}, headers)


def csv_rows(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["Image_ID", "Class"]
        return [tuple(row) for row in reader]


TRUTH = [0, 0, 1, 1, 1, 2, 2, 0, 1, 2, 2, 2]  # 12 frames, so frame10/frame11 sort after frame9 only by time


def test_page_state_and_frames_in_time_order(tmp_path):
    frames = make_frames(tmp_path / "f", TRUTH)
    with running(frames) as server:
        status, page = request(server.port, "GET", "/")
        assert status == 200 and b"<script>" in page
        status, raw = request(server.port, "GET", "/api/state")
        state = json.loads(raw)
        assert status == 200 and state["classes"] == ["neither", "jerry", "tom"] and state["model"] is False
        assert [f["name"] for f in state["frames"]] == [f"frame{i}.jpg" for i in range(12)]
        assert state["frames"][3] == {"name": "frame3.jpg", "t": 1.5, "label": []}
        status, jpg = request(server.port, "GET", "/frames/frame3.jpg")
        assert status == 200 and jpg == (frames / "frame3.jpg").read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/frames/../labels.csv",
        "/frames/..%2flabels.csv",
        "/frames/%2e%2e/labels.csv",
        "/frames/%2e%2e%2flabels.csv",
        "/frames/%2E%2E%2Fsecret.jpg",
        "/frames/../secret.jpg",
        "/frames/frame0.jpg/../../secret.jpg",
        "/frames//etc/passwd",
        "/frames/%2fetc%2fpasswd",
        "/frames/" + "%2f" + "%2f".join(["tmp", "secret.jpg"]),
        "/frames/labels.csv",
        "/frames/frames.csv",
        "/frames/notes.txt",
        "/frames/.hidden.jpg",
        "/frames/..%5csecret.jpg",
        "/labels.csv",
        "/../labels.csv",
        "/etc/passwd",
        "//etc/passwd",
    ],
)
def test_path_traversal_is_refused(tmp_path, path):
    frames = make_frames(tmp_path / "f", TRUTH)
    (frames / "notes.txt").write_text("private")
    (frames / ".hidden.jpg").write_bytes((frames / "frame0.jpg").read_bytes())
    (tmp_path / "secret.jpg").write_bytes(b"SECRET")
    with running(frames) as server:
        status, body = request(server.port, "GET", path.replace("/tmp", str(tmp_path)))
    assert status in (403, 404)
    assert b"Image_ID" not in body and b"SECRET" not in body and b"private" not in body and b"root:" not in body


def test_foreign_host_is_refused(tmp_path):
    frames = make_frames(tmp_path / "f", TRUTH)
    with running(frames) as server:
        port = server.port
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", ""):
            assert request(port, "GET", "/api/state", headers={"Host": host})[0] == 403, host
            assert request(port, "GET", "/frames/frame0.jpg", headers={"Host": host})[0] == 403, host
            assert post_labels(port, {"frame0.jpg": [1]}, Host=host)[0] == 403, host
        assert request(port, "GET", "/api/state", headers={"Host": f"localhost:{port}"})[0] == 200
    assert csv_rows(frames / "labels.csv")[0] == ("frame0.jpg", "")


def test_foreign_origin_post_is_refused(tmp_path):
    frames = make_frames(tmp_path / "f", TRUTH)
    before = (frames / "labels.csv").read_bytes()
    with running(frames) as server:
        port = server.port
        for origin in ("http://evil.example", f"http://evil.example:{port}", "null", f"https://127.0.0.1:{port}"):
            assert post_labels(port, {"frame0.jpg": [1]}, Origin=origin)[0] == 403, origin
        assert (frames / "labels.csv").read_bytes() == before
        assert post_labels(port, {"frame0.jpg": [1]}, Origin=f"http://127.0.0.1:{port}")[0] == 200
        assert post_labels(port, {"frame1.jpg": [2]}, Origin=f"http://localhost:{port}")[0] == 200
        assert post_labels(port, {"frame2.jpg": [0]})[0] == 200  # no Origin: curl, scripts


@pytest.mark.parametrize(
    "labels",
    [
        {"frame99.jpg": [1]},
        {"../labels.csv": [1]},
        {"notes.txt": [1]},
        {"frame0.jpg": [3]},
        {"frame0.jpg": [-1]},
        {"frame0.jpg": ["1"]},
        {"frame0.jpg": [True]},
        {"frame0.jpg": [1.0]},
        {"frame0.jpg": 1},
        {"frame0.jpg": "1;2"},
        {"frame0.jpg": [1], "frame1.jpg": [7]},  # all or nothing
        {},
    ],
)
def test_unknown_frames_and_classes_are_rejected(tmp_path, labels):
    frames = make_frames(tmp_path / "f", TRUTH)
    (frames / "notes.txt").write_text("x")
    before = (frames / "labels.csv").read_bytes()
    with running(frames) as server:
        status, body = post_labels(server.port, labels)
    assert status == 400 and "error" in json.loads(body)
    assert (frames / "labels.csv").read_bytes() == before


def test_malformed_requests(tmp_path):
    frames = make_frames(tmp_path / "f", TRUTH)
    with running(frames) as server:
        port = server.port
        assert request(port, "POST", "/api/labels", b"{not json", {"Content-Type": "application/json"})[0] == 400
        assert request(port, "POST", "/api/labels", b"[1, 2]", {"Content-Type": "application/json"})[0] == 400
        form = b'{"labels": {"frame0.jpg": [1]}}'
        assert request(port, "POST", "/api/labels", form, {"Content-Type": "text/plain"})[0] == 415
        assert request(port, "POST", "/api/elsewhere", {"labels": {"frame0.jpg": [1]}})[0] == 404
        assert request(port, "PUT", "/api/labels", {"labels": {"frame0.jpg": [1]}})[0] == 501
        assert request(port, "GET", "/api/run?frame=../labels.csv")[0] == 404
        assert request(port, "GET", "/api/predictions?f=frame0.jpg")[0] == 404  # no model
    assert csv_rows(frames / "labels.csv")[0] == ("frame0.jpg", "")


def test_valid_post_rewrites_csv_atomically_and_round_trips(tmp_path):
    frames = make_frames(tmp_path / "f", TRUTH)
    inode = (frames / "labels.csv").stat().st_ino
    with running(frames) as server:
        status, body = post_labels(server.port, {"frame0.jpg": [0], "frame2.jpg": [2, 1, 1], "frame11.jpg": [2]})
        assert status == 200
        answer = json.loads(body)
        assert answer["saved"] == {"frame0.jpg": "0", "frame2.jpg": "1;2", "frame11.jpg": "2"}
        assert (answer["labelled"], answer["total"]) == (3, 12)
        # Replaced by rename, never written in place: a reader sees the old file or the new one.
        assert (frames / "labels.csv").stat().st_ino != inode
        assert post_labels(server.port, {"frame0.jpg": []})[0] == 200  # clearing a label
    text = (frames / "labels.csv").read_text()
    expected = ["frame0.jpg,", "frame1.jpg,", "frame2.jpg,1;2"] + [f"frame{i}.jpg," for i in range(3, 11)]
    assert text == "Image_ID,Class\n" + "\n".join([*expected, "frame11.jpg,2"]) + "\n"
    assert not [p for p in frames.iterdir() if p.name.endswith(".tmp")]
    labelled = read_labels(frames / "labels.csv", frames, 3)
    assert [p.name for p in labelled.paths] == ["frame2.jpg", "frame11.jpg"]
    assert labelled.labels == [(1, 2), (2,)] and labelled.unlabelled == 10


def test_concurrent_posts_all_land(tmp_path):
    truth = [i % 3 for i in range(60)]
    frames = make_frames(tmp_path / "f", truth)
    with running(frames) as server:

        def worker(offset: int) -> None:
            for i in range(offset, 60, 6):
                assert post_labels(server.port, {f"frame{i}.jpg": [truth[i]]})[0] == 200

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    labelled = read_labels(frames / "labels.csv", frames, 3)
    assert len(labelled.paths) == 60 and labelled.single == truth


def test_resumes_from_existing_labels(tmp_path):
    frames = make_frames(tmp_path / "f", TRUTH, with_labels_csv=False)
    (frames / "labels.csv").write_text(
        "Image_ID,Class\nframe0.jpg,0\nframe1.jpg,1;2\nframe2.jpg,1\nframe2.jpg,2\nframe3.jpg,\nframe3.jpg,1\n"
        "gone.jpg,2\n"
    )
    with running(frames) as server:
        state = json.loads(request(server.port, "GET", "/api/state")[1])
        labels = {f["name"]: f["label"] for f in state["frames"]}
        # Conflicting rows (frame2) come back unlabelled, to decide; an empty duplicate does not conflict.
        assert labels["frame0.jpg"] == [0] and labels["frame1.jpg"] == [1, 2]
        assert labels["frame2.jpg"] == [] and labels["frame3.jpg"] == [1]
        assert "gone.jpg" not in labels
        assert request(server.port, "GET", "/frames/gone.jpg")[0] == 404
        assert post_labels(server.port, {"frame4.jpg": [1]})[0] == 200
    rows = csv_rows(frames / "labels.csv")
    assert rows[:5] == [
        ("frame0.jpg", "0"),
        ("frame1.jpg", "1;2"),
        ("frame2.jpg", ""),
        ("frame3.jpg", "1"),
        ("frame4.jpg", "1"),
    ]
    assert rows[-1] == ("gone.jpg", "2")  # not ours to drop
    assert len(rows) == 13


def test_frames_without_any_csv(tmp_path):
    frames = make_frames(tmp_path / "f", TRUTH[:3], with_labels_csv=False)
    (frames / "frames.csv").unlink()
    with running(frames) as server:
        assert post_labels(server.port, {"frame1.jpg": [2]})[0] == 200
    assert csv_rows(frames / "labels.csv") == [("frame0.jpg", ""), ("frame1.jpg", "2"), ("frame2.jpg", "")]


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(BadInputError, match="no such directory"):
        make_server(tmp_path / "missing", port=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no frames"):
        make_server(tmp_path / "empty", port=0)
    frames = make_frames(tmp_path / "f", TRUTH)
    (frames / "labels.csv").write_text("Image_ID,Class\nframe0.jpg,7\n")
    with pytest.raises(BadInputError, match="outside the 3 classes"):
        make_server(frames, port=0)
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "label", str(tmp_path / "empty"), "--no-browser"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(err) == 1, result.stderr
    assert err[0].startswith("screentime: error:") and "no frames" in err[0]


def test_model_guesses_and_runs(tmp_path, color_model):
    frames = make_frames(tmp_path / "f", TRUTH)
    with running(frames, classes=("a", "b"), model=color_model, device="cpu") as server:
        state = json.loads(request(server.port, "GET", "/api/state")[1])
        assert state["model"] is True and state["classes"] == ["neither", "jerry", "tom"]  # the model's card wins
        query = "&".join(f"f=frame{i}.jpg" for i in range(12))
        status, body = request(server.port, "GET", "/api/predictions?" + query)
        guesses = json.loads(body)["predictions"]
        assert status == 200 and [guesses[f"frame{i}.jpg"]["classes"] for i in range(12)] == [[t] for t in TRUTH]
        assert all(g["conf"] > 0.5 for g in guesses.values())
        assert request(server.port, "GET", "/api/predictions?f=../labels.csv")[0] == 400
        assert request(server.port, "GET", "/api/predictions")[0] == 400
        run = json.loads(request(server.port, "GET", "/api/run?frame=frame2.jpg")[1])["frames"]
        assert run == ["frame2.jpg", "frame3.jpg", "frame4.jpg"]  # the red shot, and no further
        # labels written with the model's 3 classes are valid for training with them
        assert post_labels(server.port, {"frame2.jpg": [2]})[0] == 200


def test_killed_mid_session_leaves_a_valid_complete_csv(tmp_path):
    truth = [i % 3 for i in range(40)]
    frames = make_frames(tmp_path / "f", truth)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "label", str(frames), "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        for _ in range(5):
            line = proc.stdout.readline()
            if match := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
                port = int(match.group(1))
                break
        assert port, proc.stderr.read() if proc.poll() is not None else "no address printed"
        acknowledged: dict[str, list[int]] = {}
        for i in range(0, 20):
            assert post_labels(port, {f"frame{i}.jpg": [truth[i]]})[0] == 200
            acknowledged[f"frame{i}.jpg"] = [truth[i]]
        # More writes in flight while the server is killed: each may or may not land, none may corrupt.
        stop = threading.Event()

        def hammer(offset: int) -> None:
            i = 20 + offset
            while not stop.is_set() and i < 40:
                try:
                    post_labels(port, {f"frame{i}.jpg": [truth[i]]})
                except (OSError, http.client.HTTPException):
                    return
                i += 4

        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    rows = csv_rows(frames / "labels.csv")
    assert [name for name, _ in rows] == [f"frame{i}.jpg" for i in range(40)]  # complete, time order
    on_disk = dict(rows)
    for name, classes in acknowledged.items():
        assert on_disk[name] == ";".join(map(str, classes))
    for name, cell in on_disk.items():  # in-flight ones: either still empty or exactly right
        assert cell in ("", str(truth[int(name[5:-4])]))
    labelled = read_labels(frames / "labels.csv", frames, 3)
    assert len(labelled.paths) >= 20


def test_label_server_never_imports_tensorflow():
    code = (
        "import sys, stream.cli, training.label_server; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def soften(model: Path, out: Path, factor: float = 0.01) -> Path:
    """The colour model with its logits scaled down, so confidence varies instead of being 1.0 everywhere."""
    proto = onnx.load(str(model))
    for init in proto.graph.initializer:
        if init.name in ("W", "b"):
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor), init.name))
    onnx.save(proto, str(out))
    return out


def _wait_saved(page) -> None:
    expect(page.locator("#status")).to_have_attribute("data-pending", "0", timeout=10_000)


def test_browser_keyboard_labelling(tmp_path, color_model, capsys):
    assert CHROMIUM.is_file(), f"{CHROMIUM} missing: run scripts/install-system-deps.sh (installs Debian's chromium)"
    shots = 40  # frames labelled against the clock
    truth = [(i // 4) % 3 for i in range(shots)] + [1, 1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 2]
    frames = make_frames(tmp_path / "f", truth)
    between = np.full((40, 64, 3), (64, 64, 174), np.uint8)  # halfway from grey to red: the model is unsure
    assert cv2.imwrite(str(frames / f"frame{len(truth) - 1}.jpg"), between)
    model = soften(color_model, tmp_path / "soft.onnx")
    n = len(truth)
    screenshot = Path(os.environ.get("SCREENTIME_LABEL_SCREENSHOT") or tmp_path / "label.png")
    with running(frames, model=model, device="cpu") as server, chromium_page(server.url) as (page, errors):
        expect(page.locator("#progress")).to_have_text(f"0/{n} labelled")
        expect(page.locator("#name")).to_have_text("frame0.jpg")

        # Keyboard labelling: a digit labels and moves on.
        started = time.perf_counter()
        for i in range(shots):
            page.keyboard.press(f"Digit{truth[i]}")
        expect(page.locator("#progress")).to_have_text(f"{shots}/{n} labelled")
        _wait_saved(page)
        elapsed = time.perf_counter() - started
        expect(page.locator("#name")).to_have_text(f"frame{shots}.jpg")
        labelled = read_labels(frames / "labels.csv", frames, 3)
        assert labelled.single == truth[:shots]

        # Reopening resumes: saved labels shown, first unlabelled frame current.
        page.reload()
        expect(page.locator("#progress")).to_have_text(f"{shots}/{n} labelled")
        expect(page.locator("#name")).to_have_text(f"frame{shots}.jpg")

        # Shift+digit toggles classes on the current frame without moving: two characters -> 1;2.
        page.keyboard.press("Shift+Digit1")
        page.keyboard.press("Shift+Digit2")
        expect(page.locator("#label")).to_have_text("jerry + tom")
        _wait_saved(page)
        assert dict(csv_rows(frames / "labels.csv"))[f"frame{shots}.jpg"] == "1;2"
        page.keyboard.press("Shift+Digit2")
        _wait_saved(page)
        assert dict(csv_rows(frames / "labels.csv"))[f"frame{shots}.jpg"] == "1"
        page.keyboard.press("Shift+Digit2")
        _wait_saved(page)
        assert read_labels(frames / "labels.csv", frames, 3).labels[-1] == (1, 2)

        # R selects the run of near-identical frames (the rest of the red shot); one digit labels it.
        page.keyboard.press("ArrowRight")
        expect(page.locator("#name")).to_have_text(f"frame{shots + 1}.jpg")
        page.keyboard.press("r")
        expect(page.locator("#status")).to_contain_text("run of 3")
        page.keyboard.press("Digit1")
        _wait_saved(page)
        expect(page.locator("#name")).to_have_text(f"frame{shots + 4}.jpg")
        rows = dict(csv_rows(frames / "labels.csv"))
        assert [rows[f"frame{i}.jpg"] for i in range(shots + 1, shots + 5)] == ["1", "1", "1", ""]

        # Shift+click in the film strip selects consecutive frames; one digit labels them all.
        page.locator(f".thumb[data-i='{shots + 6}']").click(modifiers=["Shift"])
        expect(page.locator(".thumb.sel")).to_have_count(3)
        page.keyboard.press("Digit2")
        _wait_saved(page)
        rows = dict(csv_rows(frames / "labels.csv"))
        assert [rows[f"frame{i}.jpg"] for i in range(shots + 4, shots + 7)] == ["2", "2", "2"]

        # Unlabelled-only: arrows skip labelled frames.
        page.keyboard.press("u")
        page.keyboard.press("Home")
        expect(page.locator("#name")).to_have_text(f"frame{shots + 7}.jpg")

        # With a model: its guess is shown, Enter accepts it, O orders least confident first.
        expect(page.locator("#pred")).to_contain_text("model: neither")
        page.keyboard.press("Enter")
        _wait_saved(page)
        assert dict(csv_rows(frames / "labels.csv"))[f"frame{shots + 7}.jpg"] == "0"
        page.keyboard.press("u")
        page.keyboard.press("o")
        expect(page.locator("#name")).to_have_text(f"frame{n - 1}.jpg")  # the grey-red frame
        expect(page.locator("#pred")).to_contain_text("model: neither 5")
        page.keyboard.press("Escape")
        page.keyboard.press("o")
        expect(page.locator("#name")).to_have_text(f"frame{shots + 8}.jpg")
        page.locator(f".thumb[data-i='{shots + 10}']").click(modifiers=["Shift"])
        expect(page.locator(".thumb.sel")).to_have_count(3)
        expect(page.locator("#pred")).to_contain_text("%")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot))
        assert errors == []
    assert screenshot.stat().st_size > 10_000
    rate = shots / elapsed * 60
    with capsys.disabled():
        print(
            f"\nlabeller: {rate:.0f} frames/min labelled by keyboard ({shots} in {elapsed:.2f} s); screenshot {screenshot}"
        )
