"""bench/bench_yardstick: the tail average of a training run's weights, and the per-variant summary."""

import pandas as pd
import pytest
import torch
from torch import nn

from bench.bench_yardstick import summarize, tail_averager


def test_the_tail_average_is_the_mean_of_the_last_n_steps_weights():
    model = nn.Linear(2, 1, bias=False)
    on_step, averaged = tail_averager(model, steps=4, tails=[1, 2])
    seen = []
    for step in range(1, 5):
        with torch.no_grad():
            model.weight.fill_(float(step))
        seen.append(model.weight.clone())
        on_step(step, 0.0)
    assert torch.equal(averaged(1)["weight"], seen[-1])  # the last step alone: the trained weights
    assert torch.allclose(averaged(2)["weight"], (seen[-1] + seen[-2]) / 2)
    assert model.weight[0, 0].item() == 4.0  # the model itself is untouched


def test_summary_compares_seeds_per_variant_and_against_the_trained_models_truth():
    rows = []
    for i, (a, b) in enumerate([(40, 41), (42, 45), (44, 43), (46, 47)]):
        for seed, score in ((0, a), (1, b)):
            # "precise_bn" moves seed 1 halfway to seed 0: less seed noise, same order
            precise = score if seed == 0 else (a + b) / 2
            rows.append({"code": f"p{i}", "stride": 8, "seed": seed, "trained@run": float(score),
                         "precise_bn@run": float(precise)})
    table = summarize(pd.DataFrame(rows), variants=["trained", "precise_bn"], scopes=["run"]).set_index("variant")
    assert table.loc["trained", "mean_abs_seed_diff"] == pytest.approx((1 + 3 + 1 + 1) / 4)
    assert table.loc["precise_bn", "mean_abs_seed_diff"] == pytest.approx((1 + 3 + 1 + 1) / 8)
    assert table.loc["trained", "mean_change"] == 0.0
    assert table.loc["precise_bn", "mean_change"] == pytest.approx((-1 - 3 + 1 - 1) / 4 / 4)  # (a - b) / 4 per point
    assert table.loc["trained", "tau"].startswith("0.67")  # seeds swap one of six pairs: (42,45) vs (44,43)
    assert table.loc["trained", "tau_vs_trained_truth"].startswith("1.00")
