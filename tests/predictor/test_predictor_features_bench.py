"""bench/bench_predictor_features.py: every feature set refitted on a run's design, ranked on its checks."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from bench import bench_predictor_features as bench
from ffnet_nas.predictors.accuracy import CHOICE_FEATURES, PREDICTOR_FILE, choice_features, fit_accuracy_predictor
from ffnet_nas.space.searchspace import get_space
from ffnet_nas.workspace import Workspace


def _truth(arch) -> float:
    # what the fine-tunes "measure" here: the choices decide (stride and up-head), the blocks' NSR does not
    return 60.0 - 5 * math.log2(arch.output_stride) + 1.5 * (arch.up_head == "C")


def _check_folder(root, *, draw_seed: int, rng) -> Workspace:
    """A workdir as bench_predictor leaves it: design rows, library, the run's predictor, the check."""
    ws = Workspace(root)
    space = get_space("mobile")
    design = space.sample_many(10, seed=draw_seed)
    held = [a for a in space.sample_many(60, seed=draw_seed + 100) if a not in design][:10]
    blocks = {(b.position, b.choice) for a in design + held for b in a.blocks()}
    ws.library_dir.mkdir(parents=True)
    pd.DataFrame([{"position": p, "choice": c, "status": "ok", "nsr_val": rng.uniform(0.05, 0.9), "nsr_train": 0.1,
                   "steps": 1, "seconds": 1.0, "params": 1, "file": "", "message": ""} for p, c in sorted(blocks)]
                 ).to_csv(ws.library_dir / "blocks.csv", index=False)
    y = np.array([_truth(a) + rng.normal(scale=0.2) for a in design])
    pd.DataFrame({"code": [a.code for a in design], "init": "distilled", "measured_miou": y}).to_csv(
        ws.evaluated_path, index=False)
    ws.predictor_dir.mkdir(parents=True)
    fit_accuracy_predictor(np.stack([choice_features(a) for a in design]), y, codes=[a.code for a in design],
                           feature_names=CHOICE_FEATURES).save(ws.predictor_dir / PREDICTOR_FILE)
    points = [{"code": a.code, "stride": a.output_stride, "seed0": _truth(a) + rng.normal(scale=0.3),
               "seed1": _truth(a) + rng.normal(scale=0.3), "params": rng.uniform(1e7, 3e7),
               "predicted_zero_shot": rng.normal(), "short10": _truth(a) - 8 + rng.normal(scale=1.0)} for a in held]
    ws.predictor_check_dir.mkdir(parents=True)
    (ws.predictor_check_dir / "summary.json").write_text(json.dumps({"seeds": [0, 1], "points": points}))
    return ws


def test_the_bench_refits_each_feature_set_on_the_runs_design_and_pools_checks(tmp_path, capsys):
    rng = np.random.default_rng(0)
    one = _check_folder(tmp_path / "a", draw_seed=1, rng=rng)
    two = _check_folder(tmp_path / "b", draw_seed=2, rng=rng)
    points = bench.held_out(one.root)
    assert {"ridge_choices", "ridge_nsr", "truth"} <= set(points.columns) and len(points) == 10
    # the choices ridge learns what decides here; the NSR ridge reads noise
    from scipy.stats import kendalltau

    assert kendalltau(points["ridge_choices"], points["truth"]).statistic > 0.7
    assert kendalltau(points["ridge_choices"], points["truth"]).statistic > \
        kendalltau(points["ridge_nsr"], points["truth"]).statistic
    bench.main([str(one.root), str(two.root)])
    out = capsys.readouterr().out
    assert out.count("| choices ridge (the default) |") == 3  # each check, then pooled
    assert "pooled over 2 checks (20 points" in out and "warning" not in out
    bench.main([str(one.root), str(one.root)])
    assert "the same held-out points" in capsys.readouterr().out


def test_the_other_checks_ridges_never_see_their_own_folders_points(tmp_path, capsys):
    rng = np.random.default_rng(1)
    folders = [_check_folder(tmp_path / name, draw_seed=seed, rng=rng) for name, seed in (("a", 1), ("b", 2), ("c", 3))]
    frames = [bench.held_out(ws.root) for ws in folders]
    for frame in frames:
        frame["truth"] = frame["truth"].astype(float)
    bench.other_checks_ridges(frames)
    assert list(frames[0]["n_ridge_others_truth"].unique()) == [20]  # b's and c's ten points each
    from scipy.stats import kendalltau

    # fitted on 20 points of another draw, the full-label ridge still learns what decides here
    assert kendalltau(frames[0]["ridge_others_truth"], frames[0]["truth"]).statistic > 0.6
    before = frames[0]["ridge_others_truth"].copy()
    scrambled = [f.copy() for f in frames]
    scrambled[0]["truth"] = rng.permutation(scrambled[0]["truth"].to_numpy())  # a's own labels: no effect on a
    scrambled[0]["short10"] = 0.0
    bench.other_checks_ridges(scrambled)
    np.testing.assert_allclose(scrambled[0]["ridge_others_truth"], before)
    assert not np.allclose(scrambled[1]["ridge_others_truth"], frames[1]["ridge_others_truth"])  # but b's moved
    bench.main([str(ws.root) for ws in folders])
    out = capsys.readouterr().out
    assert "10-step labels (20 points each) minus the default ridge (its run's 10 design points), paired:" in out


def test_yardstick_pairs_splits_the_seed_agreement_by_stride():
    points = pd.DataFrame({"stride": [8, 8, 8, 16, 16],
                           "seed_a": [40.0, 39.0, 38.0, 30.0, 29.0],
                           "seed_b": [39.0, 40.0, 38.5, 29.0, 30.0]})  # every pair across strides agrees
    pairs = bench.yardstick_pairs(points)
    assert pairs["within_share"] == pytest.approx(4 / 10) and pairs["across"] == 1.0
    assert pairs["within"] == pytest.approx(0.0)  # (0,2) and (1,2) agree; (0,1) and (3,4) do not
    assert pairs["overall"] == pytest.approx(0.6)  # the six across-stride pairs, over ten
    assert pairs["within_needed"] == pytest.approx((0.85 - 0.6) / 0.4)
