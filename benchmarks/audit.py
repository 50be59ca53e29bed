"""Does the audit interval hold on the video itself? Coverage and width of `screentime audit`.

Targets: each segment of the shared `shift/` frames (other shorts, letterboxed and pillarboxed;
model trained on `train/`, bars cropped as `--crop auto` does), and each half of the training
episode (model trained on the other half). A target is treated as an analysed video: one sample
per frame, one second each; its frames' labels are the truth (a `1;2` frame counts for both).
For n = 10, 20, 40 labelled frames, 1,000 seeded draws (one frame per time stratum, as `audit
--draw` draws) give the audit's 90% interval per character (stream.confidence.audit); counted: how often it
holds the true seconds (goal 88-92%), its mean half-width, and the same for the labels alone
(the same draws, no model) and the model card's interval (stream.confidence.interval: from held-out
mistakes at training, which claims to hold only on footage like the training frames).

Usage: python benchmarks/audit.py --backbone-weights VGG16.weights.h5 [--data ../shared/data/tom-and-jerry]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.shift_data import CLASSES, FrameSet, backbone, load_set, predict, score, shift_sets, train_heads
from stream.confidence.audit import audit, draw, labels_alone
from stream.confidence.interval import card_intervals
from stream.model.card_metrics import CardMetrics

CHARACTERS = ("jerry", "tom")
NS = (10, 20, 40)


def targets(data: Path, weights: str, seed: int) -> list[tuple[FrameSet, np.ndarray, CardMetrics]]:
    """(target set, the model's probabilities on it, the card metrics of that model)."""
    bb = backbone(weights)
    train = load_set("train", data / "train", data / "train" / "mapping.csv", bb, "auto", ("flip",))
    out = []
    heads, metrics = train_heads(train, seed)
    for name, frames, labels in shift_sets(data / "shift"):
        target = load_set(f"shift/{name}", frames, labels, bb, "auto")
        out.append((target, predict(heads, target.x), metrics))
    half = len(train.paths) // 2
    idx = np.arange(len(train.paths))
    for a, b, label in ((idx[:half], idx[half:], "2nd half"), (idx[half:], idx[:half], "1st half")):
        heads, metrics = train_heads(train.subset(a, "old"), seed)
        target = train.subset(b, f"train episode, {label}")
        out.append((target, predict(heads, target.x), metrics))
    return out


def measure(target: FrameSet, probs: np.ndarray, metrics: CardMetrics, n: int, draws: int) -> dict[str, dict]:
    samples = len(target.paths)
    predicted = [(CLASSES[c],) for c in probs.argmax(1)]
    truth = [target.shown(i) for i in range(samples)]
    weights = [1.0] * samples
    true_s = {c: float(sum(c in t for t in truth)) for c in CLASSES}
    model_s = {c: float(sum(c in p for p in predicted)) for c in CLASSES}
    card = card_intervals(model_s, float(samples), samples, metrics)
    rows = {c: {"audit_in": 0, "audit_hw": [], "alone_in": 0, "alone_hw": []} for c in CHARACTERS}
    for seed in range(draws):
        picks = draw(samples, n, seed)
        seen = [truth[d.index] for d in picks]
        found = audit(CLASSES, predicted, weights, picks, seen)
        alone = labels_alone(CLASSES, weights, picks, seen)
        for c in CHARACTERS:
            r = rows[c]
            r["audit_in"] += found[c].low_s - 1e-9 <= true_s[c] <= found[c].high_s + 1e-9
            r["audit_hw"].append(found[c].half_width_s)
            r["alone_in"] += alone[c].low_s - 1e-9 <= true_s[c] <= alone[c].high_s + 1e-9
            r["alone_hw"].append(alone[c].half_width_s)
    for c in CHARACTERS:
        r = rows[c]
        r |= {
            "true_s": true_s[c],
            "model_s": model_s[c],
            "card": card.get(c),
            "coverage": r["audit_in"] / draws,
            "alone_coverage": r["alone_in"] / draws,
        }
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone-weights", required=True)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/tom-and-jerry")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="the heads' training seed")
    args = parser.parse_args()
    console = Console(width=190)
    started = time.monotonic()
    sets = targets(args.data, args.backbone_weights, args.seed)
    table = Table(title=f"Audit interval (90%) on the video itself: {args.draws} seeded draws per n")
    for col in (
        "target (frames, model acc.)",
        "class",
        "true s",
        "model s",
        "n",
        "audit coverage",
        "audit mean ±s",
        "labels alone: coverage, mean ±s",
        "model-card interval (covers?)",
    ):
        table.add_column(col, justify="left" if col in ("target (frames, model acc.)", "class") else "right")
    pooled: dict[int, list[float]] = {n: [] for n in NS}
    for target, probs, metrics in sets:
        accuracy, _ = score(target, probs)
        for n in NS:
            rows = measure(target, probs, metrics, n, args.draws)
            for c in CHARACTERS:
                r = rows[c]
                pooled[n].append(r["coverage"])
                card = r["card"]
                card_cell = (
                    f"±{(card.high - card.low) / 2:.1f} ({'yes' if card.contains(r['true_s']) else 'no'})"
                    if card
                    else "n/a"
                )
                table.add_row(
                    f"{target.name} ({len(target.paths)}, {accuracy:.3f})" if n == NS[0] and c == CHARACTERS[0] else "",
                    c,
                    f"{r['true_s']:.0f}",
                    f"{r['model_s']:.0f}",
                    str(n),
                    f"{r['coverage']:.1%}",
                    f"±{np.mean(r['audit_hw']):.1f}",
                    f"{r['alone_coverage']:.1%}, ±{np.mean(r['alone_hw']):.1f}",
                    card_cell,
                )
        table.add_section()
    console.print(table)
    for n in NS:
        console.print(
            f"n = {n}: audit coverage over {len(pooled[n])} (target, character) pairs: mean {np.mean(pooled[n]):.1%}, "
            f"range {min(pooled[n]):.1%}-{max(pooled[n]):.1%}"
        )
    console.print(f"({time.monotonic() - started:.0f} s; heads trained with seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
