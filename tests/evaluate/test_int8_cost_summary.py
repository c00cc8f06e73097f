"""bench/bench_int8_accuracy.summarise: the paired INT8 cost and how the ranking moves."""

import pandas as pd
import pytest

from bench.bench_int8_accuracy import summarise


def test_cost_interval_and_swapped_pairs():
    frame = pd.DataFrame({"measured_miou": [50.0, 48.0, 46.0, 44.0], "int8_miou": [49.0, 48.5, 45.0, 42.0]})
    s = summarise(frame, boot=500)
    assert s["mean"] == pytest.approx((1.0 - 0.5 + 1.0 + 2.0) / 4)
    assert s["min"] == pytest.approx(-0.5) and s["max"] == pytest.approx(2.0)
    assert s["low"] <= s["mean"] <= s["high"] and s["low"] >= -0.5 and s["high"] <= 2.0
    assert s["swaps"] == 0 and s["pairs"] == 6 and s["tau"] == pytest.approx(1.0)  # every pair keeps its order
    swapped = summarise(pd.DataFrame({"measured_miou": [50.0, 49.8, 40.0], "int8_miou": [47.0, 49.0, 39.0]}), boot=100)
    assert swapped["swaps"] == 1 and swapped["tau"] == pytest.approx(1 / 3)
