"""`screentime`: the one CLI, thin over the library.

The only module that knows all three wings. Heavy ones (training/, export/: TensorFlow) are
imported inside the subcommand that needs them, so `screentime watch` never loads TensorFlow.
Library errors become one line on stderr and a non-zero exit; nothing else prints tracebacks.
It runs past 300 lines because it holds every subcommand's parser and printing, and nothing else.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import cast

from stream import defaults
from stream.errors import BadInputError, ScreentimeError
from stream.logs import MaskSecrets
from stream.options import DEVICES, add_watch_flags
from stream.quiet import import_tensorflow_quietly
from stream.version import __version__

log = logging.getLogger("screentime")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


def _crop(text: str):
    from stream.frames.crop import parse_crop

    try:
        return parse_crop(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_crop(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--crop",
        type=_crop,
        default=_crop(defaults.CROP),
        metavar="auto|none|W:H:X:Y",
        help=f"black bars cut before the model sees a frame: found per video or set, none, or a fixed area "
        f"(default {defaults.CROP})",
    )


def _classes(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="screentime", description="Measure who is on screen, and for how long.")
    parser.add_argument("--version", action="version", version=f"screentime {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="also OpenCV's and FFmpeg's own messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("extract", help="sample frames from a video for labelling")
    p.add_argument("video")
    p.add_argument("-o", "--output", required=True, type=Path, help="directory for frames and CSVs")
    p.add_argument("--every", type=float, default=1.0, help="seconds between frames (default 1.0)")
    _add_crop(p)

    p = sub.add_parser("label", help="label extracted frames in the browser (local web page)")
    p.add_argument("directory", type=Path, help="directory written by extract")
    p.add_argument("--classes", type=_classes, default=None, help="names by class id (default neither,jerry,tom)")
    p.add_argument("--model", type=Path, default=None, help="MODEL.onnx whose guesses prefill the page")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default 8765 if free; 0 = any)")
    p.add_argument("--no-browser", action="store_true", help="only print the address")
    p.add_argument(
        "--suggest",
        type=int,
        default=None,
        metavar="N",
        help=f"with --model: the page's 'suggested' order (default {defaults.SUGGEST_N})",
    )
    _add_crop(p)

    p = sub.add_parser("suggest", help="the unlabelled frames whose labels would help the model most, best first")
    p.add_argument("directory", type=Path, help="directory written by extract")
    p.add_argument("--model", required=True, type=Path, help="MODEL.onnx to ask")
    p.add_argument("-n", type=int, default=defaults.SUGGEST_N, help=f"how many frames (default {defaults.SUGGEST_N})")
    p.add_argument("--seed", type=int, default=0, help="seeds the grouping; one seed, one list")
    p.add_argument("--device", default="auto", choices=DEVICES)
    _add_crop(p)

    p = sub.add_parser("train", help="train the classifier on labelled frames")
    p.add_argument(
        "--frames", required=True, type=Path, action="append", help="directory of frames; repeat for several videos"
    )
    p.add_argument(
        "--labels", type=Path, action="append", help="CSV Image_ID,Class, one per --frames (default: DIR/labels.csv)"
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="MODEL.keras")
    p.add_argument("--classes", type=_classes, default=None, help="names by class id (default neither,jerry,tom)")
    p.add_argument("--backbone-weights", default=None, help="VGG16 weights file, 'imagenet' or 'random'")
    p.add_argument("--epochs", type=int, default=None, help="at most this many per head (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-size", type=_size, default=None, help="WIDTHxHEIGHT fed to VGG16 (default 448x252)")
    p.add_argument(
        "--tune",
        choices=defaults.TUNES,
        default=defaults.TUNE,
        help="VGG16 layers that learn the labelled sets: none (frozen), conv3 (block5_conv3) or block5; "
        f"the frozen part's maps are cached per frame (default {defaults.TUNE})",
    )
    p.add_argument(
        "--head",
        choices=defaults.HEADS,
        default=defaults.HEAD,
        help="global: pooled features; spatial: class presence per map position, pooled over positions "
        f"(multi-label) (default {defaults.HEAD})",
    )
    p.add_argument(
        "--tune-epochs",
        type=int,
        default=defaults.TUNE_EPOCHS,
        help=f"with --tune: epochs with the tuned layers learning (default {defaults.TUNE_EPOCHS})",
    )
    p.add_argument(
        "--tune-rate",
        type=float,
        default=defaults.TUNE_RATE,
        help=f"with --tune: their learning rate (default {defaults.TUNE_RATE:g})",
    )
    _add_crop(p)

    p = sub.add_parser("export", help="convert a trained model to a self-describing ONNX file")
    p.add_argument("model", type=Path, help="MODEL.keras")
    p.add_argument("-o", "--output", required=True, type=Path, help="MODEL.onnx")
    p.add_argument("--frames", type=Path, default=None, help="frames for the parity check (default: training frames)")
    p.add_argument("--int8", action="store_true", help="also write MODEL.int8.onnx (static QDQ)")
    p.add_argument("--calibration", type=Path, default=None, help="frames to calibrate INT8 on")

    p = sub.add_parser("evaluate", help="accuracy and screen time of an ONNX model on labelled frames")
    p.add_argument("model", type=Path)
    p.add_argument("--frames", required=True, type=Path)
    p.add_argument("--labels", required=True, type=Path)
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    p.add_argument(
        "--errors",
        type=Path,
        default=None,
        metavar="DIR",
        help="what it gets wrong: index.html, contact sheet errors.jpg, predictions.csv",
    )
    p.add_argument("--device", default="auto", choices=DEVICES)
    _add_crop(p)

    p = sub.add_parser(
        "audit",
        help="correct a file report's totals with a few labelled frames drawn at random: an interval for this video",
    )
    p.add_argument("report", type=Path, help="REPORT.json written by watch --report on a file")
    step = p.add_mutually_exclusive_group(required=True)
    step.add_argument(
        "--draw", type=Path, metavar="DIR", help="draw frames into DIR for labelling (screentime label DIR)"
    )
    step.add_argument("--frames", type=Path, metavar="DIR", help="the labelled draw: write the audit into the report")
    p.add_argument("-n", type=int, default=defaults.AUDIT_N, help=f"frames to draw (default {defaults.AUDIT_N})")
    p.add_argument("--seed", type=int, default=0, help="seeds the draw; one seed, one draw")
    p.add_argument("--video", type=Path, default=None, help="the analysed video, if not where the report says")

    p = sub.add_parser("watch", help="measure screen time on a file, webcam or stream, live")
    p.add_argument("source", nargs="+", help="video files, webcam indices (0) or rtsp:// / http(s):// URLs")
    p.add_argument("--model", required=True, type=Path)
    add_watch_flags(p)  # every other flag, declared once in stream/options.py

    p = sub.add_parser("plot", help="draw who was on screen when, from a watch report")
    p.add_argument("report", type=Path, help="REPORT.json written by watch --report")
    p.add_argument("-o", "--output", type=Path, default=None, help="timeline PNG (default REPORT.png, unless --html)")
    p.add_argument("--html", type=Path, default=None, help="also a self-contained HTML page: picture, totals, segments")

    p = sub.add_parser("serve", help="a camera fleet as a service over one YAML config (README: Running a fleet)")
    p.add_argument("config", type=Path, help="CONFIG.yaml: cameras, models, outputs, HTTP address")
    p.add_argument("--check", action="store_true", help="only check the config (exit 2 naming the first bad key)")
    p.add_argument(
        "--address",
        default=None,
        help="run the cameras on this Ray cluster, HOST:PORT (default: the config's cluster.address, else "
        "$RAY_ADDRESS, else this process)",
    )

    p = sub.add_parser("demo", help="end to end on a synthetic cartoon whose truth is known")
    p.add_argument("-o", "--output", type=Path, default=Path("demo-output"))
    p.add_argument("--backbone-weights", default=None, help="VGG16 weights file (default: env, then download)")
    p.add_argument("--no-dashboard", action="store_true")

    p = sub.add_parser("batch", help="screen time of a whole archive, on this machine or a Ray cluster; resumable")
    p.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR", help="video files, or directories searched for them")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="directory for VIDEO.json reports and summary.csv")
    p.add_argument("--every", type=float, default=defaults.EVERY_S, help="seconds between analysed frames")
    p.add_argument("--address", default=None, help="join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--workers", type=int, default=None, help="inference engines (default: per GPU share, or CPUs/2)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per engine (0: CPU engines)")
    _add_crop(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.mask = _setup_logging(args.quiet, args.verbose)  # the process's one masking: serve adds its secrets
    try:
        return COMMANDS[args.command](args) or 0
    except ScreentimeError as exc:
        print(f"screentime: error: {args.mask.mask(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("screentime: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"screentime: error: {args.mask.mask(str(exc))}", file=sys.stderr)
        return 2


def _setup_logging(quiet: bool, verbose: bool = False) -> MaskSecrets:
    """Logging through rich, every line masked by one filter (returned: the CLI's last line uses it too)."""
    from rich.logging import RichHandler

    from stream.logs import quiet_native_logs

    quiet_native_logs(verbose)
    mask = MaskSecrets()
    handler = RichHandler(show_time=False, show_path=False, markup=False)
    handler.addFilter(mask)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler], format="%(message)s")
    for noisy in ("tensorflow", "tf2onnx", "absl", "h5py", "onnx", "onnxruntime", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    return mask


def cmd_extract(args: argparse.Namespace) -> None:
    from training.extract import extract

    result = extract(args.video, args.output, every_s=args.every, progress=sys.stderr.isatty(), crop=args.crop)
    print(f"{result.frames} frames from {result.duration_s:.1f} s of video -> {result.directory}")
    print(f"label them with: screentime label {result.directory}  (saves {result.directory / 'labels.csv'})")


def cmd_label(args: argparse.Namespace) -> int:
    from training.label_server import serve

    return serve(
        args.directory,
        classes=args.classes,
        model=args.model,
        device=args.device,
        port=args.port,
        browser=not args.no_browser,
        suggest=args.suggest,
        crop=args.crop,
    )


def cmd_suggest(args: argparse.Namespace) -> None:
    from training.suggest import suggest

    result = suggest(args.directory, args.model, args.n, args.seed, args.device, sys.stderr.isatty(), args.crop)
    for name in result.names:
        print(name)
    print(
        f"{len(result.names)} of {result.candidates} unlabelled frames ({result.labelled} labelled), spread by "
        f"{result.space}; label them with: screentime label {args.directory} --model {args.model}",
        file=sys.stderr,
    )


def cmd_train(args: argparse.Namespace) -> None:
    import_tensorflow_quietly()
    from training.train import DEFAULT_CLASSES, TrainConfig, train

    started = time.monotonic()
    given = {"epochs": args.epochs, "input_size": args.input_size}  # unset: TrainConfig's defaults
    config = TrainConfig(
        frames=args.frames,
        labels=args.labels,
        output=args.output,
        classes=args.classes or DEFAULT_CLASSES,
        backbone_weights=args.backbone_weights,
        seed=args.seed,
        progress=sys.stderr.isatty(),
        crop=args.crop,
        tune=args.tune,
        head=args.head,
        tune_epochs=args.tune_epochs,
        tune_rate=args.tune_rate,
        **{k: v for k, v in given.items() if v is not None},
    )
    result = train(config)
    m = result.metrics
    cv = result.card_metrics.cross_validation
    sets = m["sets"]
    by_set = "; ".join(f"{Path(s['frames_dir']).name} {_accuracy(s['cross_validation_accuracy'])}" for s in sets)
    print(
        f"cross-validated accuracy {cv['accuracy']:.3f} on {cv['samples']} frames"
        + (f" ({by_set})" if len(sets) > 1 else "")
        + f" ({m['ensemble']} heads, best epochs {m['best_epoch']}, {time.monotonic() - started:.0f} s)"
    )
    if m.get("tuning"):
        t = m["tuning"]
        print(
            f"tuned {'+'.join(t['layers'])} on {t['device']}: {t['epochs']} epochs (best {t['best_epoch']}), "
            f"{t['seconds']:.0f} s; fold-0 accuracy {_accuracy(t.get('heldout_accuracy'))}"
        )
    print(f"model -> {result.model_path}\nmetrics -> {result.metrics_path}")


def _accuracy(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def cmd_export(args: argparse.Namespace) -> None:
    import_tensorflow_quietly()
    from export.onnx_export import export

    result = export(args.model, args.output, frames=args.frames, int8=args.int8, calibration=args.calibration)
    parity = f"max |diff| {result.max_abs_diff:.1e} on {result.parity_frames} frames"
    print(f"ONNX -> {result.path} (parity with Keras: {parity})")
    if result.int8_path:
        print(f"INT8 -> {result.int8_path} (agrees with fp32 on {result.int8_agreement:.1%} of calibration frames)")


def cmd_audit(args: argparse.Namespace) -> None:
    from rich.console import Console

    from stream.counting.report_table import screen_time_table
    from training.audit_draw import apply_audit, draw_frames, read_report

    if args.draw is not None:
        out = draw_frames(args.report, args.n, args.draw, seed=args.seed, video=args.video)
        report, _ = read_report(args.report)
        print(f"{args.n} frames drawn at random (seed {args.seed}) -> {out}")
        print(f"label every one: screentime label {out} --classes {','.join(report['classes'])}")
        print(f"then: screentime audit {args.report} --frames {out}")
        return
    record = apply_audit(args.report, args.frames)
    report, _ = read_report(args.report)
    Console().print(screen_time_table(report["screen_time_s"], title="screen time, audited", audit=record))
    print(record["method"])
    print(f"audit written into {args.report}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from rich.console import Console

    from stream.counting.report_table import screen_time_table
    from training.evaluate import evaluate
    from training.mistakes import prepare_outdir, write_errors

    if args.errors:
        prepare_outdir(args.errors)  # an unwritable DIR fails now, not after the model has run
    result = evaluate(args.model, args.frames, args.labels, device=args.device, crop=args.crop)
    if args.json:
        from stream.outputs.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(result.to_dict(), indent=2) + "\n")
    console = Console()
    console.print(f"accuracy {result.metrics['accuracy']:.3f} on {result.metrics['samples']} frames")
    if result.metrics.get("several_classes"):
        console.print(
            f"{result.metrics['several_classes']} frames show several classes: each counts for all of them "
            "in the true seconds, and the single-label verdict on it is right when it names one of them"
        )
    st = result.screen_time_s
    # training.evaluate annotates screen_time_s as all {class: seconds}; its "interval" is {class: [low, high]}.
    interval = cast("dict[str, tuple[float, float]] | None", st.get("interval"))
    console.print(screen_time_table(st["predicted"], st["true"], interval=interval))
    if "interval" in result.metrics:
        iv = result.metrics["interval"]
        console.print(
            f"true seconds inside the {iv['level']:.0%} interval for {iv['true_inside']} of {iv['classes']} classes "
            "(intervals hold on frames the model never trained on)"
        )
    if args.errors:
        errors = write_errors(result, args.errors)
        if not errors.sheets:
            sheets = "no contact sheet: no mistakes"
        else:
            first, last = errors.sheets[0], errors.sheets[-1]
            sheets = f"contact sheet {first}" if first == last else f"contact sheets {first} ... {last.name}"
        print(f"{errors.wrong} wrong of {errors.frames} frames: {errors.index_html} ({sheets})")


def cmd_watch(args: argparse.Namespace) -> int:
    """Run with signal handling: first Ctrl-C or SIGTERM stops cleanly, a second Ctrl-C forces.

    The exit status is 0 only when every source ran and every output asked for was written.
    """
    from stream.api import Watch
    from stream.options import from_args
    from stream.signals import handling_signals

    config = from_args(args, terminal=sys.stdout.isatty())
    run = Watch(config)
    try:
        with handling_signals(run.stop):
            run.run()
    finally:
        summarise(run.reports, config.dashboard)
    return 0


def summarise(reports, dashboard: bool) -> None:
    """Each source's totals (the dashboard printed them already) and one line per source."""
    from rich.console import Console

    from stream.outputs.dashboard import summary

    for report in reports:
        if not dashboard:
            Console().print(summary(report))
        print(f"{report.samples} samples over {report.duration_s:.1f} s of {report.source} ({report.ended})")


def cmd_plot(args: argparse.Namespace) -> None:
    from stream.outputs.plot import plot_report

    for path in plot_report(args.report, args.output, args.html):
        print(f"-> {path}")


def cmd_serve(args: argparse.Namespace) -> int:
    from stream.fleet.cli import serve

    return serve(args.config, args.mask, check=args.check, address=args.address)


def cmd_demo(args: argparse.Namespace) -> int:
    import_tensorflow_quietly()
    from training.demo import run_demo

    return run_demo(args.output, backbone_weights=args.backbone_weights, dashboard=not args.no_dashboard)


def cmd_batch(args: argparse.Namespace) -> int:
    from stream.batch.plan import BatchConfig
    from stream.batch.run import run_cli_batch

    return run_cli_batch(BatchConfig.from_args(args, progress=sys.stdout.isatty()))


COMMANDS = {
    "extract": cmd_extract,
    "label": cmd_label,
    "suggest": cmd_suggest,
    "train": cmd_train,
    "export": cmd_export,
    "evaluate": cmd_evaluate,
    "watch": cmd_watch,
    "audit": cmd_audit,
    "plot": cmd_plot,
    "serve": cmd_serve,
    "demo": cmd_demo,
    "batch": cmd_batch,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["BadInputError", "build_parser", "main"]
