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


def _check_folder(root, *, draw_seed: int, rng, design_seed: int | None = None) -> Workspace:
    """A workdir as bench_predictor leaves it: design rows, library, the run's predictor, the check.
    Folders of one `design_seed` share the design and its measured mIoU, as checks of one run do."""
    ws = Workspace(root)
    space = get_space("mobile")
    design_seed = draw_seed if design_seed is None else design_seed
    design = space.sample_many(10, seed=design_seed)
    held = [a for a in space.sample_many(60, seed=draw_seed + 100) if a not in design][:10]
    blocks = {(b.position, b.choice) for a in design + held for b in a.blocks()}
    ws.library_dir.mkdir(parents=True)
    pd.DataFrame([{"position": p, "choice": c, "status": "ok", "nsr_val": rng.uniform(0.05, 0.9), "nsr_train": 0.1,
                   "steps": 1, "seconds": 1.0, "params": 1, "file": "", "message": ""} for p, c in sorted(blocks)]
                 ).to_csv(ws.library_dir / "blocks.csv", index=False)
    measure = np.random.default_rng(design_seed)
    y = np.array([_truth(a) + measure.normal(scale=0.2) for a in design])
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
    assert out.count("| choices ridge |") == 3  # each check, then pooled
    assert out.count("| route-free choices ridge (no first stride, no pre_down) |") == 3
    # the yardstick's own lead over stride fills its two difference columns (no empty cell)
    yardstick = [line for line in out.splitlines() if line.startswith("| the other seed (the yardstick) |")]
    assert len(yardstick) == 3 and all("|  |" not in line and line.count("[") == 4 for line in yardstick)
    assert "pooled over 2 checks (20 points" in out and "warning" not in out
    bench.main([str(one.root), str(one.root)])
    assert "the same held-out points" in capsys.readouterr().out


def test_the_other_checks_ridges_never_see_their_own_folders_points(tmp_path, capsys):
    rng = np.random.default_rng(1)
    same = [_check_folder(tmp_path / n, draw_seed=d, design_seed=7, rng=rng) for n, d in (("a", 1), ("b", 2), ("c", 3))]
    alien = _check_folder(tmp_path / "d", draw_seed=4, rng=rng)  # another run's design: another mIoU scale
    frames = [bench.held_out(ws.root) for ws in same + [alien]]
    new = bench.other_checks_ridges(frames)
    assert "ridge_others_truth" not in frames[0]  # pure: the frames handed in are unchanged
    assert list(new[0]["n_ridge_others_truth"].unique()) == [20]  # b's and c's ten points each, never d's
    assert "ridge_others_truth" not in new[3]  # d has no check of its own design
    from scipy.stats import kendalltau

    # fitted on 20 points of other draws, the full-label ridge still learns what decides here
    assert kendalltau(new[0]["ridge_others_truth"], new[0]["truth"]).statistic > 0.6
    scrambled = [f.copy() for f in frames]
    scrambled[0]["truth"] = rng.permutation(scrambled[0]["truth"].to_numpy())  # a's own labels: no effect on a
    scrambled[0]["short10"] = 0.0
    again = bench.other_checks_ridges(scrambled)
    for column in ("ridge_others_truth", "ridge_others_short10"):
        np.testing.assert_allclose(again[0][column], new[0][column])
        assert not np.allclose(again[1][column], new[1][column])  # but b's moved
    # a point drawn by two checks never labels itself, and a missing label is left out
    shared = [frames[0], pd.concat([frames[1], frames[0].iloc[:1]], ignore_index=True), frames[2]]
    shared[2] = shared[2].assign(short10=np.where(np.arange(len(shared[2])) == 0, np.nan, shared[2]["short10"]))
    out = bench.other_checks_ridges(shared)
    assert list(out[0]["n_ridge_others_truth"].unique()) == [20] and list(out[0]["n_ridge_others_short10"].unique()) == [19]
    bench.main([str(ws.root) for ws in same + [alien]])
    printed = capsys.readouterr().out
    assert "- minus choices ridge on the other checks' points, 10-step labels (fitted on 20-20 points):" in printed
    assert "over 30 points" in printed  # d sits the other-check rows out


def test_yardstick_pairs_splits_the_seed_agreement_by_stride():
    points = pd.DataFrame({"stride": [8, 8, 8, 16, 16],
                           "seed_a": [40.0, 39.0, 38.0, 30.0, 29.0],
                           "seed_b": [39.0, 40.0, 38.5, 29.0, 30.0]})  # every pair across strides agrees
    pairs = bench.yardstick_pairs(points)
    assert pairs.within_share == pytest.approx(4 / 10) and pairs.across == 1.0
    assert pairs.within == pytest.approx(0.0)  # (0,2) and (1,2) agree; (0,1) and (3,4) do not
    assert pairs.overall == pytest.approx(0.6)  # the six across-stride pairs, over ten
    assert pairs.within_needed == pytest.approx((0.85 - 0.6 * pairs.across) / 0.4)
    assert pairs.seed_sd == pytest.approx(0.7246, abs=1e-4)  # differences 1, -1, -0.5, 1, -1: sd 1.025, / sqrt 2
    # two-seed means 39.5, 39.5, 38.25 (stride 8) and 29.5, 29.5 (16): squares 1.0417 over 5 - 2 groups
    assert pairs.truth_sd == pytest.approx(0.5893, abs=1e-4)
    unsure = points.assign(seed_b=[39.0, 40.0, 38.5, 39.2, 29.0])  # seed b puts a stride-16 point above one at 8
    assert bench.yardstick_pairs(unsure).across == pytest.approx((4 - 2) / 6)  # discordant with points 0 and 2
    one_stride = bench.yardstick_pairs(points[points["stride"] == 8])
    assert one_stride.within_share == 1 and np.isnan(one_stride.across) and one_stride.within_needed == 0.85
    assert np.isnan(bench.yardstick_pairs(points.assign(seed_b=np.nan)).overall)  # no finite pair: undefined


def _with_zero_shot_stage(ws: Workspace, *, rng) -> None:
    """Add what a run's zero-shot stage leaves: loo.csv (design mIoU and zero-shot scores), zero_shot.json,
    and each held-out point's score. The score sees the within-stride effect (the up-head) but not the
    stride: alone it ranks across strides badly, beside stride it ranks well."""
    from ffnet_nas.predictors.accuracy import LOO_FILE, ZERO_SHOT_FEATURES, ZERO_SHOT_FILE, zero_shot_features
    from ffnet_nas.space.arch import Arch

    def score(code):
        return 30.0 + 1.5 * (Arch.parse(code).up_head == "C") + rng.normal(scale=0.1)

    design = pd.read_csv(ws.evaluated_path)
    scores = [score(c) for c in design["code"]]
    pd.DataFrame({"code": design["code"], "measured_miou": design["measured_miou"], "loo_predicted_miou": 0.0,
                  "zero_shot_miou": scores}).to_csv(ws.predictor_dir / LOO_FILE, index=False)
    x = np.stack([zero_shot_features(c, v, ZERO_SHOT_FEATURES[:1]) for c, v in zip(design["code"], scores)])
    fit_accuracy_predictor(x, design["measured_miou"].to_numpy(float), codes=list(design["code"]),
                           feature_names=ZERO_SHOT_FEATURES[:1]).save(ws.predictor_dir / ZERO_SHOT_FILE)
    path = ws.predictor_check_dir / "summary.json"
    summary = json.loads(path.read_text())
    for p in summary["points"]:
        p["zero_shot"] = score(p["code"])
    path.write_text(json.dumps(summary))


def test_the_zero_shot_candidates_put_stride_first_and_the_score_inside_a_stride(tmp_path, capsys):
    from scipy.stats import kendalltau

    rng = np.random.default_rng(3)
    ws = _check_folder(tmp_path / "a", draw_seed=5, rng=rng)
    assert "zs_stride" not in bench.held_out(ws.root)  # no stage in the run: no candidate
    _with_zero_shot_stage(ws, rng=rng)
    points = bench.held_out(ws.root)
    truth = points["truth"]
    # the score alone cannot see the stride; each candidate can, and reads the score inside a stride
    alone = kendalltau(points["zero_shot"], truth).statistic
    for column in ("zs_stride", "stride_then_zs", "choices_zs"):
        assert kendalltau(points[column], truth).statistic > alone + 0.2, column
    # the fixed rule: every stride-4 point above every stride-8 point, the score's order within a stride
    rule = points.sort_values("stride_then_zs", ascending=False)
    assert list(rule["stride"]) == sorted(rule["stride"])
    for _, group in rule.groupby("stride"):
        assert list(group["zero_shot"]) == sorted(group["zero_shot"], reverse=True)
    bench.main([str(ws.root)])
    assert "| zero-shot stage, stride term always on (candidate) |" in capsys.readouterr().out


def test_within_group_effects_compare_points_of_one_stride_and_one_folder_only():
    # the seg head adds 1.0 inside every stride group; the stride and the folder move whole groups
    codes = ["stemB-basic-d4.5.8.8-w64.128.192.320-s2-upB-segC-nearest",   # stride 8
             "stemB-basic-d4.5.8.8-w64.128.192.320-s2-upB-segB-nearest",
             "stemC-basic-d4.5.8.8-w64.128.192.320-s1-upC-segC-nearest",   # stride 4
             "stemC-basic-d4.5.8.8-w64.128.192.320-s1-upC-segB-nearest"]
    from ffnet_nas.space import Arch

    strides = [Arch.parse(c).output_stride for c in codes]
    assert strides == [8, 8, 4, 4]
    seg_c = np.array([c.endswith("segC-nearest") for c in codes], float)
    frames = [pd.DataFrame({"code": codes, "stride": strides, "folder": f,
                            "truth": offset + 10.0 * (np.array(strides) == 4) + seg_c})
              for f, offset in (("a", 0.0), ("b", 30.0))]  # another run: another scale
    effects = bench.within_group_effects(pd.concat(frames, ignore_index=True)).set_index(["choice", "level"])
    assert effects.loc[("seg_head", "C"), "mean"] == pytest.approx(0.5)
    assert effects.loc[("seg_head", "B"), "mean"] == pytest.approx(-0.5)
    assert effects.loc[("seg_head", "C"), "points"] == 4 and effects.loc[("seg_head", "C"), "sem"] == pytest.approx(0.0)
    # the contrast C - B inside the groups, by least squares with one intercept per (folder, stride) group
    assert effects.loc[("seg_head", "C"), "vs_first"] == pytest.approx(1.0)
    assert effects.loc[("seg_head", "B"), "vs_first"] == 0.0
    noisy = pd.concat(frames, ignore_index=True)
    noisy["truth"] += np.array([0.2, -0.1, -0.3, 0.1, 0.1, 0.0, 0.2, -0.2])
    c = bench.within_group_effects(noisy).set_index(["choice", "level"]).loc[("seg_head", "C")]
    # by hand: each (folder, stride) group holds one C and one B, so the estimate is the mean paired
    # difference and its standard error that of a paired mean, sqrt(2 * sigma2 / 4) with sigma2 from 8 - 5 dof
    diffs = noisy["truth"].to_numpy()[0::2] - noisy["truth"].to_numpy()[1::2]
    assert c["vs_first"] == pytest.approx(diffs.mean())
    sigma2 = np.sum((diffs - diffs.mean()) ** 2) / 2 / 3  # each pair's residuals are +-(d - mean) / 2
    assert c["vs_first_se"] == pytest.approx(np.sqrt(2 * sigma2 / 4))
    # stem and up head change with the stride here: inside a group they are balanced, so they add nothing
    assert effects.loc[("stem", "B"), "mean"] == pytest.approx(0.0) and effects.loc[("up_head", "C"), "mean"] == pytest.approx(0.0)
    # without the folder, the two runs' scales would mix into the residuals
    mixed = bench.within_group_effects(pd.concat(frames, ignore_index=True).drop(columns="folder"))
    assert mixed.set_index(["choice", "level"]).loc[("seg_head", "C"), "sem"] > 1


def test_the_after_the_fact_rankers_drop_the_route_to_a_stride_and_read_the_seg_head(tmp_path):
    rng = np.random.default_rng(3)
    points = bench.held_out(_check_folder(tmp_path / "a", draw_seed=1, rng=rng).root)
    from ffnet_nas.space import Arch

    arches = [Arch.parse(c) for c in points["code"]]
    # the rule: every stride-4 point above every stride-8 point, and seg head C first inside a stride
    for i, a in enumerate(arches):
        for j, b in enumerate(arches):
            if a.output_stride < b.output_stride or (a.output_stride == b.output_stride and a.seg_head == "C" != b.seg_head):
                assert points["stride_then_seg"][i] > points["stride_then_seg"][j]
    # the reduced ridge cannot tell two points apart that differ only in how they reach their stride
    twins = ["stemB-basic-d4.5.8.8-w64.128.192.320-s2-upB-segC-nearest",
             "stemB-basic-d4.5.8.8-w64.128.192.320-s1-upB-segC-nearest-predown"]
    assert Arch.parse(twins[0]).output_stride == Arch.parse(twins[1]).output_stride
    from ffnet_nas.predictors.accuracy import fit_feature_set

    codes, y = list(points["code"]), [float(v) for v in points["truth"]]
    free = fit_feature_set(codes, y, feature_set="route_free", nsr={})
    assert free.predict(twins[0]) == pytest.approx(free.predict(twins[1]))
    assert np.isfinite(points["ridge_route_free"]).all()  # the bench ranks with it, fitted on the run's design
    full = fit_feature_set(codes, y, feature_set="choices", nsr={})
    assert full.predict(twins[0]) != pytest.approx(full.predict(twins[1]))  # the full ridge reads the route


def test_stride_first_ranks_by_stride_whatever_the_spread_inside_a_stride():
    # an mIoU-like spread (0 to 100) and a 0/1 indicator: neither lets a stride-16 point pass a stride-8 one
    for within in ([100.0, 0.0, 0.0, 55.0, 99.0], [1.0, 0.0, 0.0, 1.0, 1.0]):
        strides = [16, 8, 8, 4, 16]
        key = bench.stride_first(strides, within)
        order = sorted(range(5), key=lambda i: -key[i])
        assert [strides[i] for i in order] == [4, 8, 8, 16, 16]
        # inside a stride, `within` decides (higher first); equal values stay tied
        assert np.sign(key[0] - key[4]) == np.sign(within[0] - within[4])
        assert key[1] == key[2]
    # a point without a score stays unranked (NaN); the others' spread still sets the stride term
    key = bench.stride_first([16, 8, 8], [float("nan"), 100.0, 0.0])
    assert math.isnan(key[0]) and key[1] - key[2] == 100.0
    assert bench.stride_first([4, 8], [0.0, 100.0])[0] > bench.stride_first([4, 8], [0.0, 100.0])[1]
