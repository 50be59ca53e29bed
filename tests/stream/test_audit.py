"""The audit: its arithmetic on simulated videos (pure), and the two commands on a real clip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.confidence.audit import (
    Draw,
    audit,
    draw,
    estimate,
    labels_alone,
    sample_weights,
    strata,
    t_quantile,
)

CLASSES = ("neither", "jerry", "tom")


def simulated_video(rng: np.random.Generator, samples: int = 600, scene_s: float = 8.0) -> list[str]:
    """True class per 1-s sample, in scenes of random length (mistakes and truth both come in runs)."""
    truth: list[str] = []
    while len(truth) < samples:
        truth += [str(rng.choice(CLASSES, p=[0.3, 0.3, 0.4]))] * int(rng.exponential(scene_s) + 1)
    return truth[:samples]


def biased_model(truth: list[str], rng: np.random.Generator, miss_jerry: float = 0.5) -> list[str]:
    """Calls half of jerry's scenes tom (a whole scene at a time), and is otherwise right."""
    predicted, i = [], 0
    while i < len(truth):
        j = i
        while j < len(truth) and truth[j] == truth[i]:
            j += 1
        wrong = truth[i] == "jerry" and rng.random() < miss_jerry
        predicted += ["tom" if wrong else truth[i]] * (j - i)
        i = j
    return predicted


def test_strata_cover_the_video_once():
    cut = strata(103, 10)
    assert [i for s in cut for i in s] == list(range(103))
    assert {len(s) for s in cut} <= {10, 11}
    picks = draw(103, 10, seed=3)
    assert all(p.index in cut[p.stratum] and p.stratum_size == len(cut[p.stratum]) for p in picks)
    assert picks == draw(103, 10, seed=3) and picks != draw(103, 10, seed=4)
    with pytest.raises(ValueError):
        draw(5, 6, seed=0)


def test_weights_and_helpers():
    assert sample_weights([0.0, 1.0, 3.0], 4.0) == [1.0, 2.0, 1.0]
    assert t_quantile(0.95, 1) == pytest.approx(6.3138, abs=1e-3)
    assert t_quantile(0.95, 2) == pytest.approx(2.9200, abs=1e-3)
    assert t_quantile(0.95, 3) == pytest.approx(2.3534, abs=2e-3)
    assert t_quantile(0.95, 10) == pytest.approx(1.8125, abs=1e-3)
    assert t_quantile(0.95, 200) == pytest.approx(1.6525, abs=1e-3)


def test_an_always_right_model_gives_a_zero_width_correction():
    rng = np.random.default_rng(0)
    truth = simulated_video(rng)
    weights = [1.0] * len(truth)
    # Every sample labelled: no correction and no width at all.
    census = [Draw(i, i, 1) for i in range(len(truth))]
    found = audit(CLASSES, [(c,) for c in truth], weights, census, [(c,) for c in truth])
    for name in CLASSES:
        true_s = float(sum(c == name for c in truth))
        assert found[name].estimate_s == found[name].low_s == found[name].high_s == pytest.approx(true_s)
    # 20 draws: still no correction, and only the width 20 draws cannot rule out (no mistake seen
    # in 20 leaves a mistake rate of a few percent open), which narrows as draws are added.
    widths = []
    for n in (20, 80):
        picks = draw(len(truth), n, seed=1)
        found = audit(CLASSES, [(c,) for c in truth], weights, picks, [(truth[d.index],) for d in picks])
        for name in CLASSES:
            assert found[name].estimate_s == pytest.approx(sum(c == name for c in truth))
        widths.append(found["jerry"].half_width_s)
    assert 0 < widths[1] < widths[0] < 0.12 * len(truth)
    # The labels alone know far less than the model that is always right.
    alone = labels_alone(CLASSES, weights, picks, [(truth[d.index],) for d in picks])
    assert all(alone[n].half_width_s > 20 for n in CLASSES)


def test_a_known_biased_model_is_corrected():
    rng = np.random.default_rng(1)
    truth = simulated_video(rng, samples=1200)
    predicted = biased_model(truth, rng)
    weights = [1.0] * len(truth)
    true_jerry = sum(c == "jerry" for c in truth)
    model_jerry = sum(c == "jerry" for c in predicted)
    assert model_jerry < 0.7 * true_jerry  # the model undercounts jerry badly
    estimates = []
    for seed in range(200):
        picks = draw(len(truth), 40, seed)
        found = audit(CLASSES, [(c,) for c in predicted], weights, picks, [(truth[d.index],) for d in picks])
        estimates.append(found["jerry"].estimate_s)
    # Unbiased: the audited estimates centre on the truth, not on the model's count.
    assert abs(np.mean(estimates) - true_jerry) < 0.1 * (true_jerry - model_jerry)


def test_coverage_on_simulated_videos():
    """Across many videos and draws, the 90% interval holds about 90% of the time (or more: the
    successive-difference variance and the floor are conservative), model-assisted or labels alone."""
    rng = np.random.default_rng(2)
    inside = alone_inside = trials = 0
    for _video in range(40):
        truth = simulated_video(rng)
        predicted = biased_model(truth, rng, miss_jerry=0.4)
        weights = [float(w) for w in rng.choice([0.5, 1.0, 1.5], len(truth))]  # uneven sample spacing
        true_s = {n: sum(w for c, w in zip(truth, weights, strict=True) if c == n) for n in CLASSES}
        for seed in range(25):
            picks = draw(len(truth), 20, seed)
            seen = [(truth[d.index],) for d in picks]
            found = audit(CLASSES, [(c,) for c in predicted], weights, picks, seen)
            alone = labels_alone(CLASSES, weights, picks, seen)
            for n in ("jerry", "tom"):
                trials += 1
                inside += found[n].low_s - 1e-9 <= true_s[n] <= found[n].high_s + 1e-9
                alone_inside += alone[n].low_s <= true_s[n] <= alone[n].high_s
    assert 0.86 <= inside / trials <= 0.99
    assert 0.86 <= alone_inside / trials <= 0.99


def test_estimate_refuses_too_few_draws():
    with pytest.raises(ValueError):
        estimate(10.0, [0.0, 1.0, 0.0], [Draw(i, i, 10) for i in range(3)], 30)


def test_audit_commands_on_a_clip(tmp_path, color_model):
    """watch a clip, draw frames from its report, label them by the clip's truth, audit."""
    from stream import watch
    from tests.helpers import write_color_video
    from training.audit_draw import AUDIT_CSV, apply_audit, draw_frames
    from training.extract import FRAMES_CSV, LABELS_CSV

    scenes = [(0, 0.0, 10.0), (1, 10.0, 25.0), (2, 25.0, 40.0)]
    clip = write_color_video(tmp_path / "clip.mp4", scenes, [i / 5 for i in range(200)])
    report_path = tmp_path / "report.json"
    list(watch(clip, color_model, every_s=1.0, report=report_path))
    out = draw_frames(report_path, 8, tmp_path / "audit", seed=5)
    design = (out / AUDIT_CSV).read_text().splitlines()
    assert len(design) == 9 and design[0].startswith("Image_ID,sample,t_s,weight_s,stratum,stratum_size,probability")
    stamps = [float(line.split(",")[1]) for line in (out / FRAMES_CSV).read_text().splitlines()[1:]]
    # Label each drawn frame with the clip's truth at its time.
    truth = [next(c for c, a, b in scenes if a <= t < b) for t in stamps]
    rows = ["Image_ID,Class"] + [f"frame{k}.jpg,{c}" for k, c in enumerate(truth)]
    (out / LABELS_CSV).write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(Exception, match="1 of 8 drawn frames have no label"):
        apply_audit(report_path, out)
    (out / LABELS_CSV).write_text("\n".join(rows) + "\n")
    record = apply_audit(report_path, out)
    report = json.loads(report_path.read_text())
    assert report["audit"] == record and record["n"] == 8
    # The colour model is right everywhere: the audit confirms its totals, with the width 8 draws leave.
    for name, (low, high) in record["interval_s"].items():
        assert record["estimate_s"][name] == pytest.approx(report["screen_time_s"][name])
        assert low < record["estimate_s"][name] < high
    assert "prediction-powered" in record["method"]
    with pytest.raises(Exception, match="already holds an audit draw"):
        draw_frames(report_path, 8, out, seed=5)


def test_a_model_guessing_at_random_is_leant_on_little():
    """Power tuning: verdicts unrelated to the truth get a small weight, and the interval is about
    as wide as the labels alone give, not wider (plain PPI would add the guesses' own scatter)."""
    rng = np.random.default_rng(4)
    truth = simulated_video(rng)
    guesses = [str(rng.choice(CLASSES)) for _ in truth]
    weights = [1.0] * len(truth)
    lams, tuned, alone = [], [], []
    for seed in range(100):
        picks = draw(len(truth), 20, seed)
        seen = [(truth[d.index],) for d in picks]
        found = audit(CLASSES, [(c,) for c in guesses], weights, picks, seen)["jerry"]
        lams.append(found.model_weight)
        tuned.append(found.half_width_s)
        alone.append(labels_alone(CLASSES, weights, picks, seen)["jerry"].half_width_s)
    assert np.mean(lams) < 0.3
    assert np.mean(tuned) < 1.1 * np.mean(alone)
    right = [(c,) for c in truth]
    picks = draw(len(truth), 20, 0)
    assert audit(CLASSES, right, weights, picks, [(truth[d.index],) for d in picks])["tom"].model_weight == 1.0
