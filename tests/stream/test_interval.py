"""The screen-time interval: its arithmetic, its calibration where its assumptions hold, and
where it appears (report, evaluate)."""

from __future__ import annotations

import numpy as np
import pytest

from stream.confidence.interval import interval, intervals
from stream.model.card_metrics import CardMetrics


def test_a_model_that_never_errs_gets_a_tight_interval_around_its_count():
    iv = interval(120.0, 300.0, samples=300, counts=(400, 0, 0, 600))
    assert iv.low <= 120.0 <= iv.high
    assert iv.high - iv.low < 0.05 * 120.0


def test_a_model_known_to_overcount_is_corrected():
    # Held out, "on" was right 80% of the time and "off" hid the character 5% of the time.
    counts = (800, 200, 50, 950)
    iv = interval(100.0, 200.0, samples=2000, counts=counts)
    expected = 100.0 * 800 / 1000 + 100.0 * 50 / 1000  # 85 s
    assert iv.expected == pytest.approx(expected, abs=0.5)
    assert iv.low < expected < iv.high < 100.0  # the raw count is outside: the model overcounts


def test_more_samples_narrow_the_interval_but_never_below_what_the_labels_know():
    counts = (90, 10, 10, 90)
    widths = [interval(50.0, 100.0, samples=n, counts=counts) for n in (20, 200, 200_000)]
    spans = [iv.high - iv.low for iv in widths]
    assert spans[0] > spans[1] > spans[2] > 0.05 * 50  # 100 held-out "on" frames leave a few % of doubt


def test_same_inputs_same_interval():
    assert interval(10.0, 60.0, 60, (30, 5, 4, 40)) == interval(10.0, 60.0, 60, (30, 5, 4, 40))


def test_intervals_skip_classes_without_counts():
    found = intervals({"tom": 10.0, "jerry": 5.0}, 20.0, 20, {"tom": [10, 1, 1, 10]})
    assert set(found) == {"tom"}


def test_ninety_percent_interval_covers_about_ninety_percent_when_its_assumptions_hold():
    """Simulated world: a classifier with fixed error rates; cross-validation sees 300 frames of
    it, a run sees 200 more. The truth should land inside about 90% of the time."""
    rng = np.random.default_rng(7)
    presence, recall, false_alarm = 0.35, 0.85, 0.08
    inside, trials = 0, 400
    for trial in range(trials):

        def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
            truth = rng.random(n) < presence
            said = np.where(truth, rng.random(n) < recall, rng.random(n) < false_alarm)
            return truth, said

        cv_true, cv_said = draw(300)
        counts = (
            int((cv_true & cv_said).sum()),
            int((~cv_true & cv_said).sum()),
            int((cv_true & ~cv_said).sum()),
            int((~cv_true & ~cv_said).sum()),
        )
        run_true, run_said = draw(200)
        iv = interval(float(run_said.sum()), 200.0, 200, counts, seed=trial)
        inside += iv.contains(float(run_true.sum()))
    assert 0.85 <= inside / trials <= 0.95


def test_report_states_intervals_when_the_card_has_held_out_counts():
    from stream.counting.accounting import Accountant
    from stream.counting.report import Report
    from stream.model.card import ModelCard

    acc = Accountant(("neither", "tom"))
    for t in range(10):
        acc.sample(float(t), ["tom"] if t < 4 else ["neither"])
    acc.finish(10.0)

    def report(metrics: CardMetrics) -> dict:
        card = ModelCard(classes=("neither", "tom"), input_width=32, input_height=32, metrics=metrics)
        kwargs = dict(source="s", model="m", ended="end", timeline=None, every_s=1.0, device="cpu")
        return Report.from_accountant(acc, card, started_at="", updated_at="", **kwargs).to_dict()

    counts = {"neither": (50, 5, 5, 40), "tom": (40, 5, 5, 50)}
    data = report(CardMetrics(heldout_counts=counts))
    tom = data["screen_time_interval_s"]["tom"]
    assert tom["low"] <= data["screen_time_s"]["tom"] == 4.0 <= tom["high"]
    for name, iv in data["screen_time_interval_s"].items():  # its point estimate lies inside it
        assert iv["low"] <= iv["estimate"] <= iv["high"], name
    assert "interval" in data["interval"] and "footage like the training frames" in data["interval"]
    assert "screen_time_interval_s" not in report(CardMetrics())
    # A model whose "tom" is mostly wrong: its count (4 s) lies above the interval, the interval's
    # own estimate inside it.
    biased = report(CardMetrics(heldout_counts={"neither": (50, 5, 5, 40), "tom": (10, 90, 1, 99)}))
    tom = biased["screen_time_interval_s"]["tom"]
    assert tom["high"] < biased["screen_time_s"]["tom"] and tom["low"] <= tom["estimate"] <= tom["high"]


def test_mistakes_in_runs_widen_the_interval():
    counts = (90, 10, 10, 90)
    alone = interval(50.0, 100.0, 100, counts)
    runs = interval(50.0, 100.0, 100, counts, design_effect=5.0, correlation_s=5.0)
    assert runs.high - runs.low > 1.5 * (alone.high - alone.low)


def test_design_effect_reads_runs_of_mistakes():
    from training.metrics import design_effect

    scattered = [[i % 7 == 0 for i in range(200)]]  # isolated mistakes
    runs = [[(i // 10) % 4 == 0 for i in range(200)]]  # mistakes ten frames long
    assert design_effect(scattered) == pytest.approx(1.0)
    assert design_effect(runs) > 5.0
    assert design_effect([[True, False]]) == 1.0  # too little to say


def test_card_intervals_use_the_cards_design_effect():
    from stream.confidence.interval import card_intervals

    counts = {"tom": (90, 10, 10, 90)}
    plain = card_intervals({"tom": 50.0}, 100.0, 100, CardMetrics(heldout_counts=counts))["tom"]
    runs = CardMetrics(heldout_counts=counts, heldout_design_effect=4.0, frame_spacing_s=1.0)
    wide = card_intervals({"tom": 50.0}, 100.0, 100, runs)["tom"]
    assert wide.high - wide.low > plain.high - plain.low
    assert card_intervals({"tom": 50.0}, 100.0, 100, CardMetrics()) == {}
