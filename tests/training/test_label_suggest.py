"""The labeller's "suggested" order: a real server, real HTTP, a real headless Chromium; no mocks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import pytest
from playwright.sync_api import expect

from stream.cli import main
from stream.errors import BadInputError
from tests.helpers import make_color_model
from tests.training.test_label import CHROMIUM, _wait_saved, chromium_page, post_labels, request, running
from tests.training.test_suggest import blend
from training.label_server import make_server
from training.suggest import suggest


@pytest.fixture
def frames(tmp_path) -> Path:
    """Clear colours and half-blends (where the colour model hesitates), each its own shot, and a
    labels.csv with two frames labelled: like tests/training/test_suggest.py, with a frames.csv."""
    directory = tmp_path / "frames"
    directory.mkdir()
    plan = [(0, 0, 0), (1, 1, 0), (2, 2, 0), (0, 1, 0.5), (1, 2, 0.5), (0, 2, 0.5)] * 2
    for i, (a, b, w) in enumerate(plan):
        assert cv2.imwrite(str(directory / f"frame{i}.jpg"), blend(a, b, w, seed=i))
    (directory / "frames.csv").write_text(
        "Image_ID,timestamp_s\n" + "".join(f"frame{i}.jpg,{i:.3f}\n" for i in range(len(plan)))
    )
    (directory / "labels.csv").write_text("Image_ID,Class\nframe0.jpg,0\nframe9.jpg,1\n")
    return directory


@pytest.fixture
def model(tmp_path) -> Path:
    return make_color_model(tmp_path / "m.onnx", features=True, sharpness=3.0)


def suggested(port: int, timeout_s: float = 30.0) -> dict:
    """GET /api/suggested until the server has ranked its list."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = request(port, "GET", "/api/suggested")
        answer = json.loads(body)
        assert status == 200, answer
        if answer["ready"] or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_endpoint_serves_suggests_list_and_keeps_it_while_labelling(frames, model):
    expected = suggest(frames, model, n=5, device="cpu")
    with running(frames, model=model, device="cpu", suggest=5) as server:
        answer = suggested(server.port)
        assert answer == {"names": list(expected.names), "space": "backbone features", "ready": True}
        first, second = expected.names[:2]
        assert post_labels(server.port, {first: [1], second: [2]})[0] == 200
        assert suggested(server.port)["names"] == list(expected.names)  # labelled ones stay: the order is stable
        for host in ("evil.example", f"127.0.0.1:{server.port + 1}"):
            assert request(server.port, "GET", "/api/suggested", headers={"Host": host})[0] == 403
    # A new server ranks again from the labels on disk, exactly as `suggest` does.
    with running(frames, model=model, device="cpu", suggest=5) as server:
        assert suggested(server.port)["names"] == list(suggest(frames, model, n=5, device="cpu").names)


def test_default_n_and_no_model(frames, model):
    with running(frames, model=model, device="cpu") as server:  # DEFAULT_N (20) > the 10 frames offered
        assert suggested(server.port)["names"] == list(suggest(frames, model, device="cpu").names)
    with running(frames) as server:
        assert request(server.port, "GET", "/api/suggested")[0] == 404


def test_bad_suggest_count_is_one_line(frames, model, capsys):
    with pytest.raises(BadInputError, match="--suggest 0"):
        make_server(frames, model=model, device="cpu", port=0, suggest=0)
    assert main(["label", str(frames), "--model", str(model), "--suggest", "0", "--no-browser", "--port", "0"]) == 2
    assert "--suggest 0: expected at least 1" in capsys.readouterr().err


def test_browser_suggested_order(frames, model):
    assert CHROMIUM.is_file(), f"{CHROMIUM} missing: run scripts/install-system-deps.sh (installs Debian's chromium)"
    names = suggest(frames, model, n=4, device="cpu").names
    with running(frames, model=model, device="cpu", suggest=4) as server, chromium_page(server.url) as (page, errors):
        expect(page.locator("#name")).to_have_text("frame1.jpg")  # time order: first unlabelled
        expect(page.locator("#suggested")).to_have_text("suggested: 4 of 4 left")

        page.select_option("#order", "suggested")
        expect(page.locator("#name")).to_have_text(names[0])
        page.keyboard.press("Digit2")
        expect(page.locator("#suggested")).to_have_text("suggested: 3 of 4 left")
        expect(page.locator("#name")).to_have_text(names[1])  # on to the next suggestion
        _wait_saved(page)

        page.reload()
        expect(page.locator("#order")).to_have_value("suggested")
        expect(page.locator("#name")).to_have_text(names[1])
        expect(page.locator("#suggested")).to_have_text("suggested: 3 of 4 left")
        page.keyboard.press("ArrowLeft")
        expect(page.locator("#name")).to_have_text(names[0])  # the labelled one stays in the list
        expect(page.locator("#label")).to_have_text("tom")

        page.keyboard.press("s")  # S toggles back to time order
        expect(page.locator("#order")).to_have_value("time")
        assert errors == []
    assert dict(line.split(",") for line in (frames / "labels.csv").read_text().splitlines()[1:])[names[0]] == "2"
