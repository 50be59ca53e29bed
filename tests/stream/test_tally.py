"""The tally on its own: numbers in, numbers out, no video and no clock."""

from __future__ import annotations

import numpy as np
import pytest

from stream.counting.tally import Tally, is_new
from stream.model.card import ModelCard

CARD = ModelCard(classes=("neither", "jerry", "tom"), input_width=32, input_height=32)
JERRY, TOM = np.array([0.1, 0.8, 0.1]), np.array([0.1, 0.1, 0.8])


@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_samples_losses_and_gaps_on_the_resumed_clock(offset):
    tally = Tally(CARD, smoothing=1, offset_s=offset)
    assert tally.sample(0.0, JERRY).present == ("jerry",)
    assert tally.sample(1.0, TOM).t_s == pytest.approx(offset + 1.0)
    assert tally.sample(1.0, JERRY) is None and tally.sample(0.5, JERRY) is None  # never counted twice
    assert tally.lost(1.5) == pytest.approx(offset + 1.5)
    assert tally.gap(1.5, 3.0) == pytest.approx((offset + 1.5, offset + 3.0))
    tally.sample(3.0, JERRY)
    tally.finish(4.0)
    assert tally.accountant.totals_s == pytest.approx({"neither": 0.0, "jerry": 2.0, "tom": 0.5})
    assert tally.accountant.outages == [pytest.approx((offset + 1.5, offset + 3.0))]
    assert [e.t_s for e in tally.timeline] == pytest.approx([offset, offset + 1.0, offset + 3.0])
    report = tally.report(
        source="s", model="m", ended="end of stream", every_s=1.0, device="cpu", started_at="", updated_at=""
    )
    assert report.samples == 3 and report.duration_s == pytest.approx(2.5)


def test_is_new():
    assert is_new(0.0, None) and is_new(1.0, 0.5) and not is_new(0.5, 0.5) and not is_new(0.4, 0.5)
