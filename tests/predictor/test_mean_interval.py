"""ffnet_nas.stats.mean_interval: a mean with its percentile bootstrap interval (paired when the values
are differences between two measurements of the same points)."""

import math

import numpy as np
import pytest

from ffnet_nas.stats import mean_interval


def test_the_interval_is_about_the_normal_one_for_many_values_and_stays_inside_the_data():
    values = np.random.default_rng(3).normal(2.0, 1.5, size=400)
    interval = mean_interval(values)
    assert interval.value == pytest.approx(values.mean())
    assert interval.n == 400
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert interval.low == pytest.approx(values.mean() - half, abs=0.15 * half)
    assert interval.high == pytest.approx(values.mean() + half, abs=0.15 * half)
    few = mean_interval([1.0, 2.0, 3.0, 10.0])
    assert 1.0 <= few.low < few.value == 4.0 < few.high <= 10.0
    assert mean_interval([2.5] * 5).text() == "2.50 [2.50, 2.50]"


def test_gaps_are_left_out_and_too_few_values_are_undefined():
    assert mean_interval([1.0, float("nan"), 3.0, float("inf")]).value == 2.0
    assert mean_interval([1.0, float("nan"), 3.0]).n == 2
    assert mean_interval([4.0, float("nan")]).text() == "undefined (n=1)"
    assert mean_interval([]).text() == "undefined (n=0)"
