"""`screentime demo`: the whole product on a synthetic cartoon whose truth is known.

Make a training clip, extract and label its frames from the truth, train, export, evaluate,
then `watch` a second clip with the dashboard and print predicted against true screen time.
Runs offline: ImageNet weights when it can get them, otherwise it says it uses random ones.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from rich.console import Console

from stream.counting.report_table import screen_time_table
from stream.errors import BadInputError
from training.synthetic import CLASSES, make_clip

log = logging.getLogger(__name__)

DEMO_SIZE = (192, 112)  # small input keeps the demo to a minute or two on two CPU cores


def label_from_truth(frames_dir: Path, clip) -> Path:
    """Fill the `labels.csv` template `extract` wrote, from the clip's known scenes."""
    with (frames_dir / "frames.csv").open(newline="") as fh:
        rows = [(r["Image_ID"], clip.label_at(float(r["timestamp_s"]))) for r in csv.DictReader(fh)]
    path = frames_dir / "labels.csv"
    path.write_text("Image_ID,Class\n" + "".join(f"{n},{c}\n" for n, c in rows))
    return path


def run_demo(out: Path, backbone_weights: str | None = None, dashboard: bool = True) -> int:
    from export.onnx_export import export
    from training.evaluate import evaluate
    from training.extract import extract
    from training.train import TrainConfig, train

    console = Console(stderr=False)
    out.mkdir(parents=True, exist_ok=True)
    weights = _choose_weights(backbone_weights, console)

    console.rule("1. a synthetic cartoon with known truth")
    train_clip = make_clip(out / "train.mp4", duration_s=90, fps=10, size=(320, 180), seed=1)
    test_clip = make_clip(out / "test.mp4", duration_s=60, fps=10, size=(320, 180), seed=2)
    console.print(f"{train_clip.path} (90 s) to train on, {test_clip.path} (60 s) to measure")

    console.rule("2. extract and label frames")
    frames = extract(train_clip.path, out / "frames", every_s=0.5, progress=False)
    labels = label_from_truth(frames.directory, train_clip)
    console.print(f"{frames.frames} frames -> {frames.directory}, labelled from the truth -> {labels}")

    console.rule("3. train")
    result = train(
        TrainConfig(
            frames=frames.directory,
            labels=labels,
            output=out / "model.keras",
            classes=CLASSES,
            backbone_weights=weights,
            epochs=40,
            input_size=DEMO_SIZE,
            progress=console.is_terminal,
        )
    )
    console.print(f"cross-validated accuracy {result.card_metrics.cross_validation['accuracy']:.3f}")

    console.rule("4. export to ONNX")
    exported = export(result.model_path, out / "model.onnx")
    console.print(f"{exported.path} (parity with Keras {exported.max_abs_diff:.1e})")

    console.rule("5. evaluate on the training frames")
    evaluation = evaluate(exported.path, frames.directory, labels)
    console.print(f"accuracy {evaluation.metrics['accuracy']:.3f}")

    console.rule("6. watch the unseen clip")
    from stream.api import watch

    run = watch(
        str(test_clip.path),
        exported.path,
        every_s=0.5,
        report=out / "report.json",
        output=out / "overlay.mp4",
        dashboard=dashboard and console.is_terminal,
    )
    report = run.run()
    interval = {k: (v.low, v.high) for k, v in report.intervals.items()}
    console.print(
        screen_time_table(
            report.screen_time_s, test_clip.screen_time_s(), title="unseen clip: screen time", interval=interval
        )
    )
    console.print(f"report -> {out / 'report.json'}, overlay video -> {out / 'overlay.mp4'}")
    return 0


def _choose_weights(flag: str | None, console: Console) -> str:
    """Flag, then environment, then Keras' download; failing all, random weights, said plainly."""
    from training.model import WEIGHTS_ENV, load_backbone

    choice = flag or os.environ.get(WEIGHTS_ENV)
    if choice:
        return choice
    try:
        load_backbone((32, 32), "imagenet")
        return "imagenet"
    except BadInputError:
        console.print(
            "[bold yellow]ImageNet VGG16 weights are not available (no download, no --backbone-weights, "
            f"no {WEIGHTS_ENV}): this demo runs on RANDOM backbone weights.[/] Numbers will be worse than real."
        )
        return "random"
