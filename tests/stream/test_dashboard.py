from rich.console import Console

from stream.counting.report import Report
from stream.counting.stats import RunStats
from stream.outputs.dashboard import render, summary
from stream.records import Prediction, Segment


def text_of(renderable, width=110) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_dashboard_shows_counters_rates_and_progress():
    stats = RunStats(
        source="rtsp://cam:***@10.0.0.5/live",
        live=True,
        classes=["neither", "jerry", "tom"],
        characters=["jerry", "tom"],
        state="running",
        samples=42,
        dropped=3,
        decoded_fps=25.0,
        sampled_fps=6.5,
        analysed_fps=6.0,
        latency_s=0.12,
        elapsed_s=65,
        t_s=30.0,
        duration_s=120.0,
        device="CPU",
        current=Prediction(t_s=30.0, label="tom", confidence=0.91),
        totals={"neither": 10.0, "jerry": 5.0, "tom": 15.0},
    )
    text = text_of(render(stats))
    assert "rtsp://cam:***@10.0.0.5/live" in text and "running" in text and "CPU" in text
    assert "jerry" in text and "5.0 s" in text and "16.7%" in text
    assert "tom" in text and "15.0 s" in text and "50.0%" in text
    assert "neither (background)" in text
    assert "now: tom" in text and "91%" in text
    assert "samples 42" in text and "dropped 3" in text and "latency 120 ms" in text
    assert "decoded 25.0 fps" in text and "sampled 6.5/s" in text and "analysed 6.0/s" in text
    assert "00:01:05" in text
    assert "25% of 00:02:00" in text and "ETA 00:03:15" in text


def test_file_dashboard_hides_latency():
    stats = RunStats(
        source="a.mp4", live=False, classes=["a", "b"], characters=["b"], duration_s=10, t_s=5, elapsed_s=1
    )
    text = text_of(render(stats))
    assert "latency" not in text and "50% of 00:00:10" in text and "5.0x real time" in text


def test_live_dashboard_has_no_progress_bar():
    stats = RunStats(source="webcam 0", live=True, classes=["a", "b"], characters=["b"])
    text = text_of(render(stats))
    assert "waiting for the first frame" in text
    assert "ETA" not in text


def test_summary_table():
    report = Report(
        source="clip.mp4",
        model="m.onnx",
        classes=["neither", "jerry"],
        characters=["jerry"],
        background="neither",
        samples=3,
        duration_s=10.0,
        screen_time_s={"neither": 4.0, "jerry": 6.0},
        segments=[Segment("jerry", 0, 3), Segment("neither", 3, 7), Segment("jerry", 7, 10)],
        timeline=[],
        dropped=0,
    )
    text = text_of(summary(report))
    assert "60.0%" in text and "6.0" in text and "neither (background)" in text
    assert "audit" not in text
    report.audit = {
        "n": 20,
        "estimate_s": {"neither": 3.0, "jerry": 7.0},
        "interval_s": {"neither": [1.5, 4.5], "jerry": [5.5, 8.5]},
        "method": "m",
    }
    text = text_of(summary(report))
    assert "audited s (n=20)" in text and "5.5-8.5" in text and "7.0" in text


def strip_line(text: str, name: str, names: list[str], cells: int) -> str:
    """The strip's cells for `name`: after the name column (as wide as the longest name) and one space."""
    column = len("│ ") + max(map(len, names)) + 1
    lines = [line for line in text.splitlines() if line.startswith(f"│ {name} ") and "·" in line]
    assert len(lines) == 1, text
    return lines[0][column : column + cells]


def test_strip_follows_the_history():
    from stream.counting.strip import Strip

    stats = RunStats(
        source="cam",
        live=True,
        classes=["neither", "jerry", "tom"],
        characters=["jerry", "tom"],
        recent=Strip(cell_s=1.0, cells=8),
    )
    history = [
        (0.0, ("jerry",)),
        (1.0, ("jerry",)),
        (2.0, ("jerry",)),
        (3.0, ("tom",)),
        (4.0, ("tom",)),
        # 5 s to 6 s: no sample (the camera was down)
        (6.0, ("jerry", "tom")),  # multi-label: both on screen
        (7.0, ("jerry",)),
        (7.4, ("neither",)),
        (7.8, ("neither",)),  # jerry in 1 of 3 samples of the last cell
    ]
    for t, present in history:
        stats.recent.add(t, present)
    text = text_of(render(stats), width=100)
    assert strip_line(text, "jerry", stats.characters, 8) == "███  ·█▄"
    assert strip_line(text, "tom", stats.characters, 8) == "   ██·█ "
    assert "last 8 s, one cell = 1 s" in text
    assert not [line for line in text.splitlines() if line.startswith("│ neither") and "·" in line]


def test_no_strip_before_the_first_sample():
    stats = RunStats(source="cam", live=True, classes=["neither", "jerry"], characters=["jerry"])
    assert "one cell" not in text_of(render(stats))
