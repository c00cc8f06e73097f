"""bench/bench_yardstick: the per-variant summary (the tail average itself: tests/distill/test_training_average.py)."""

import json

import pandas as pd
import pytest

from bench.bench_yardstick import summarize


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


def test_an_out_folder_keeps_the_protocol_it_was_measured_under(tmp_path):
    from bench.bench_yardstick import claim_protocol

    path = tmp_path / "yardstick_protocol.json"
    run = {"steps": 100, "lr": 0.01, "batch_size": 8, "bn_images": 128, "val_split": 512}
    claim_protocol(path, run)
    claim_protocol(path, dict(run))  # the same protocol resumes
    with pytest.raises(SystemExit, match="expected a new --out folder"):
        claim_protocol(path, {**run, "lr": 0.005})
    assert json.loads(path.read_text()) == run  # the refused protocol did not overwrite the record


def test_two_protocols_are_compared_like_with_like_on_their_common_points(tmp_path, capsys):
    from bench.compare_yardsticks import compare, main

    truth = [30.0, 32.0, 34.0, 36.0, 38.0, 40.0]

    def protocol(noise, shift, extra=()):
        rows = [{"code": f"p{i}", "seed": s, "avg50_bn@truth": t + shift + noise[i] * (1 if s else -1)}
                for i, t in enumerate(truth) for s in (0, 1)]
        return pd.DataFrame(rows + list(extra))

    quiet = protocol([0.1] * 6, -1.0, extra=[{"code": "only_in_a", "seed": 0, "avg50_bn@truth": 99.0}])
    noisy = protocol([0.0, 2.5, 0.0, 2.5, 0.0, 2.5], 0.0)  # each seed swaps neighbours; their mean does not
    c = compare(quiet, noisy, variant_a="avg50_bn@truth", variant_b="avg50_bn@truth")
    assert c.points == 6  # the point only A scored, under one seed, is left out
    assert c.within_a.startswith("1.00") and not c.within_b.startswith("1.00")
    assert c.across_means.startswith("1.00")  # the same ordering underneath
    assert c.mean_a - c.mean_b == pytest.approx(-1.0)
    assert c.mean_difference == "-1.00 [-1.00, -1.00]"  # point by point: the noise cancels in each mean
    assert c.group == ""  # no strides recorded: no group figures
    stride = {f"p{i}": 8 if i < 4 else 16 for i in range(6)} | {"only_in_a": 8}
    g = compare(quiet.assign(stride=quiet["code"].map(stride)), noisy, variant_a="avg50_bn@truth",
                variant_b="avg50_bn@truth")
    assert g.group == "stride 8, 4 points"  # the point only A scored does not count
    assert g.group_within_a.startswith("1.00") and not g.group_within_b.startswith("1.00")
    assert g.group_across_means.startswith("1.00")
    quiet.to_csv((tmp_path / "a").mkdir() or tmp_path / "a" / "yardstick.csv", index=False)
    noisy.to_csv((tmp_path / "b").mkdir() or tmp_path / "b" / "yardstick.csv", index=False)
    main([str(tmp_path / "a"), str(tmp_path / "b")])
    assert "A - B -1.00" in capsys.readouterr().out
    check = tmp_path / "c" / "predictor" / "check"  # a predictor check's seeds are the variant "check"
    check.mkdir(parents=True)
    points = [{"code": f"p{i}", "seed0": t - 1.0, "seed1": t - 1.0} for i, t in enumerate(truth)]
    (check / "summary.json").write_text(json.dumps({"seeds": [0, 1], "points": points}))
    main([str(tmp_path / "b"), str(tmp_path / "c"), "--variant-b", "check"])
    out = capsys.readouterr().out
    assert "A - B +1.00" in out and "point by point (two-seed means) 1.00 [1.00, 1.00]" in out
    with pytest.raises(SystemExit, match="holds neither"):
        main([str(tmp_path / "a"), str(tmp_path)])
    with pytest.raises(SystemExit, match="no column 'avg75_bn@truth'"):
        main([str(tmp_path / "a"), str(tmp_path / "b"), "--variant", "avg75_bn@truth"])
