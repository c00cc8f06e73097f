"""The predictor check (`fit-predictor --check K`): held-out points, two seeds, the baselines, resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as scipy_stats
from torch import nn

from ffnet_nas.budgets import finetune_config
from ffnet_nas.evaluate import evaluate_points, read_evaluated
from ffnet_nas.fit_predictor import fit_from_table
from ffnet_nas.predictor_check import MEASUREMENTS_FILE, SUMMARY_FILE, check_predictor, summarize
from ffnet_nas.data import fixed_batches
from ffnet_nas.predictors.zero_cost import grad_norm, zico
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.searchspace import from_dict
from ffnet_nas.stats import _tau_b, kendall_difference, kendall_interval
from tests.helpers.micro import TINY_SPACE, micro_workdir

HW = (32, 64)
TINY = TINY_SPACE
CONFIG = finetune_config(steps=3, batch_size=2, checkpoint_every=1)
VAL_IMAGES = 4
QUANTITIES = {"seed0", "seed1", "images_b", "zero_shot", "zero_shot_bn", "short1", "grad_norm", "zico", "latency_ms"}


def test_kendall_interval_is_scipys_tau_with_a_bootstrap_interval_around_it():
    rng = np.random.default_rng(0)
    a = rng.normal(size=20)
    b = np.round(a + rng.normal(size=20))  # ties on one side: tau-b
    r = kendall_interval(a, b)
    assert r.value == pytest.approx(scipy_stats.kendalltau(a, b).statistic) and r.n == 20
    assert -1 <= r.low < r.value < r.high <= 1
    idx = rng.integers(0, 20, size=(200, 20))
    expected = [scipy_stats.kendalltau(a[i], b[i]).statistic for i in idx]
    assert np.allclose(_tau_b(a[idx], b[idx]), expected, equal_nan=True)
    assert kendall_interval(a, a).text() == "1.00 [1.00, 1.00]"
    assert kendall_interval(a, -a).value == -1
    assert not np.isfinite(kendall_interval([1, 2], [1, 2]).value)  # too few pairs: undefined, never 0
    assert kendall_interval([1, np.nan, 3, 4], [1, 2, 3, 4]).n == 3  # non-finite pairs dropped
    noisy = kendall_interval(a[:6], b[:6])
    assert noisy.high - noisy.low > r.high - r.low  # fewer points, wider interval
    # pinned: what the implementation of 2026-12-05 (6b263d2) gave, so a rewrite cannot move a
    # stored interval unnoticed
    x = np.arange(16.0)
    y = x + 5 * np.sin(7 * x)
    assert kendall_interval(x, y).text(4) == "0.4833 [0.1817, 0.7455]"
    assert kendall_interval(np.round(x / 4), y, ties_at_random=True).text(4) == "0.4333 [0.1509, 0.6639]"
    assert kendall_interval([], []).n == 0 and not np.isfinite(kendall_interval([], []).value)  # no points: undefined
    with pytest.raises(ValueError, match="a has 20 values, b 19"):
        kendall_interval(a, b[:19])


def test_ties_at_random_is_the_expected_tau_of_the_rule_with_its_ties_broken_by_chance():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=12)
    stride = np.repeat([16.0, 8.0, 4.0], 4)[np.argsort(np.argsort(truth))]  # smaller stride, higher truth
    stride[[np.argmax(truth), np.argmin(truth)]] = 8.0  # mostly right across groups; ties most pairs
    rule = -stride
    broken = [scipy_stats.kendalltau(rule + 1e-6 * rng.random(12), truth).statistic for _ in range(5000)]
    fair = kendall_interval(rule, truth, ties_at_random=True)
    assert fair.value == pytest.approx(np.mean(broken), abs=0.005)  # brute force: random tie-breaks
    assert fair.value < kendall_interval(rule, truth).value  # plain tau-b credits the tied pairs
    assert fair.low <= fair.value <= fair.high
    # a ranker without ties is unchanged, its bootstrap interval too (a point drawn twice is tied
    # on both sides: never ranked against itself); one that ties everything scores 0, never undefined
    assert kendall_interval(truth, truth, ties_at_random=True).text() == "1.00 [1.00, 1.00]"
    noisy = truth + rng.normal(size=12)
    fair_noisy, plain_noisy = kendall_interval(noisy, truth, ties_at_random=True), kendall_interval(noisy, truth)
    assert np.allclose([fair_noisy.value, fair_noisy.low, fair_noisy.high], [plain_noisy.value, plain_noisy.low, plain_noisy.high])
    assert kendall_interval(np.zeros(12), truth, ties_at_random=True).value == 0
    assert not np.isfinite(kendall_interval(np.zeros(12), truth).value)
    close = truth + 0.01 * rng.normal(size=12)  # no ties: its tau is plain tau-b
    d = kendall_difference(close, rule, truth, ties_at_random=True)
    assert d.value == pytest.approx(scipy_stats.kendalltau(close, truth).statistic - fair.value) and d.low > 0
    groups = np.repeat(["run1", "run2"], 6)  # pooled: the mean of the per-group expected taus
    pooled = kendall_difference(rule, None, truth, groups=groups, ties_at_random=True)
    per_group = [kendall_interval(rule[groups == k], truth[groups == k], ties_at_random=True).value for k in ("run1", "run2")]
    assert pooled.value == pytest.approx(np.mean(per_group)) and pooled.low <= pooled.value <= pooled.high
    assert not np.isfinite(kendall_interval([1.0], [2.0], ties_at_random=True).value)  # too few points
    assert not np.isfinite(kendall_interval(rule, np.ones(12), ties_at_random=True).value)  # a constant truth


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))))


def _batches(n=3):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(2, 3, 8, 8, generator=g), torch.randint(0, 3, (2, 8, 8), generator=g)) for _ in range(n)]


def _oracle_grads(model, batches):
    """Each batch's weight gradients, computed with torch.autograd.grad on a fresh copy in train mode."""
    import copy

    grads = []
    for images, masks in batches:
        net = copy.deepcopy(model).train()
        weights = [net.conv.weight, net.head.weight]
        loss = torch.nn.functional.cross_entropy(net(images), masks, ignore_index=255)
        grads.append([g.numpy() for g in torch.autograd.grad(loss, weights)])
    return grads


def test_kendall_difference_is_paired_and_pools_groups_without_ranking_across_them():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=16)
    good, poor = truth + rng.normal(scale=0.2, size=16), truth + rng.normal(scale=2.0, size=16)
    alone = kendall_difference(good, None, truth)
    assert alone.value == pytest.approx(scipy_stats.kendalltau(good, truth).statistic)
    assert alone.low <= alone.value <= alone.high and alone.n == 16
    d = kendall_difference(good, poor, truth)
    assert d.value == pytest.approx(scipy_stats.kendalltau(good, truth).statistic
                                    - scipy_stats.kendalltau(poor, truth).statistic)
    assert d.low > 0  # the paired interval sees what two overlapping intervals would not
    assert kendall_difference(good, good, truth).value == 0 and kendall_difference(good, good, truth).high == 0
    # two runs whose truths sit at different levels: ranking each run right is tau 1, whatever the offset
    groups = np.repeat(["run1", "run2"], 8)
    shifted = truth + np.where(groups == "run2", 100.0, 0.0)
    within = truth - np.where(groups == "run2", 100.0, 0.0)  # right within each run, wrong across them
    pooled = kendall_difference(within, None, shifted, groups=groups)
    per_run = [scipy_stats.kendalltau(within[groups == r], shifted[groups == r]).statistic for r in ("run1", "run2")]
    assert pooled.value == pytest.approx(np.mean(per_run)) and pooled.value > 0.9
    assert kendall_difference(within, None, shifted).value < pooled.value  # unpooled, the runs' offset counts
    assert not np.isfinite(kendall_difference(truth[:2], None, truth[:2]).value)  # too few points: undefined
    lost = within.copy()
    lost[groups == "run2"] = np.nan  # one run's ranker missing: no pooled figure from the other run alone
    assert not np.isfinite(kendall_difference(lost, None, shifted, groups=groups).value)
    with pytest.raises(ValueError, match="expected the same"):
        kendall_difference(good, poor[:3], truth)


def test_kendall_difference_judges_b_against_its_own_truth_on_the_same_resampled_points():
    # two protocols measuring the same points, each ranked by its own predictor
    rng = np.random.default_rng(2)
    truth_a, truth_b = rng.normal(size=16), rng.normal(size=16)
    good_a, poor_b = truth_a + rng.normal(scale=0.2, size=16), truth_b + rng.normal(scale=2.0, size=16)
    d = kendall_difference(good_a, poor_b, truth_a, truth_b=truth_b)
    assert d.value == pytest.approx(scipy_stats.kendalltau(good_a, truth_a).statistic
                                    - scipy_stats.kendalltau(poor_b, truth_b).statistic)
    assert d.low > 0 and d.low <= d.value <= d.high
    # against its own truth a perfect ranker of B ties a perfect ranker of A on every resample
    same = kendall_difference(truth_a, truth_b, truth_a, truth_b=truth_b)
    assert same.value == 0 and same.low == 0 and same.high == 0
    # without truth_b, B is judged against A's truth (the unchanged default)
    assert kendall_difference(good_a, poor_b, truth_a).value == pytest.approx(
        scipy_stats.kendalltau(good_a, truth_a).statistic - scipy_stats.kendalltau(poor_b, truth_a).statistic)
    with pytest.raises(ValueError, match="expected the same"):
        kendall_difference(good_a, poor_b, truth_a, truth_b=truth_b[:3])
    with pytest.raises(ValueError, match="truth_b without b"):
        kendall_difference(good_a, None, truth_a, truth_b=truth_b)


def test_zero_cost_proxies_match_their_papers_formulas_and_leave_the_model_alone():
    torch.manual_seed(0)
    model = _Net().eval()
    batches = _batches()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = _oracle_grads(model, batches)
    assert grad_norm(model, batches) == pytest.approx(sum(np.linalg.norm(g) for g in grads[0]), rel=1e-5)
    expected = 0.0
    for layer in range(2):
        g = np.stack([grads[b][layer] for b in range(len(batches))])
        mean, std = np.abs(g).mean(0), g.std(0)
        expected += np.log((mean[std > 0] / std[std > 0]).sum())
    assert zico(model, batches) == pytest.approx(expected, rel=1e-4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics too
    assert not model.training and all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="at least 2 batches"):
        zico(model, batches[:1])


def test_fixed_batches_are_the_same_for_every_point_and_leave_the_global_rng():
    from ffnet_nas.data import make_dataset

    ds = make_dataset("synthetic", "train", size_hw=HW, augment=True)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    one, two = fixed_batches(ds, batch_size=2, n_batches=2, seed=0), fixed_batches(ds, batch_size=2, n_batches=2, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(one) == 2 and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(one, two))


def test_summarize_ranks_against_the_mean_of_the_seeds_overall_and_within_the_largest_group():
    points = pd.DataFrame({
        "code": list("abcdefgh"), "stride": [8, 8, 8, 8, 8, 16, 16, 4],
        "seed0": [40.0, 42, 44, 46, 48, 30, 31, 60], "seed1": [41.0, 41.5, 45, 45.5, 49, 29, 32, 61],
        "predicted": [1.0, 2, 3, 4, 5, 0, -1, 9], "params": [5.0, 4, 3, 2, 1, 6, 7, 8],
    })
    evaluated = pd.DataFrame({"init": ["distilled", "distilled", "random", "distilled"],
                              "predicted_miou": [50.0, 40.0, 10.0, np.nan], "measured_miou": [45.0, 44.0, 0.0, 1.0]})
    check = summarize(points, seeds=(0, 1), short_steps=10, evaluated=evaluated, loo_tau=0.5, predictor="predictor",
                      steps=100, val_images=64, feature_set="nsr")
    truth = (points["seed0"] + points["seed1"]) / 2
    assert check.largest_group == "stride 8 (5 points)"
    assert check.yardstick.value == pytest.approx(scipy_stats.kendalltau(points["seed0"], points["seed1"]).statistic)
    by = {r.name: r for r in check.rankers}
    nsr = "accuracy predictor (NSR ridge, every point of the search)"
    assert by[nsr].overall.value == pytest.approx(scipy_stats.kendalltau(points["predicted"], truth).statistic)
    assert by[nsr].within.value == pytest.approx(1.0)
    assert by["params"].within.value == pytest.approx(-1.0)
    assert by["output stride alone (smaller first)"].overall.value > 0.5  # stride 4 best, 16 worst here
    assert not np.isfinite(by["output stride alone (smaller first)"].within.value)  # one stride: no ranking
    chosen = by["output stride alone, ties broken at random (what choosing by it gets)"]
    names = [r.name for r in check.rankers]
    assert names.index(chosen.name) == names.index("output stride alone (smaller first)") + 1
    # the pairs inside a group count as coin flips: lower than plain tau-b, and 0 within a group
    assert 0 < chosen.overall.value < by["output stride alone (smaller first)"].overall.value
    assert chosen.within.value == 0
    assert not np.isfinite(by["ZiCo (zero-cost)"].overall.value)  # not measured: undefined, not 0
    assert check.out_of_sample.n == 2 and check.out_of_sample_mae == pytest.approx(4.5)  # distilled, predicted rows
    assert not np.isfinite(by["accuracy predictor, zero-shot stage (the re-ranking of --rerank-by zero-shot)"].overall.value)
    assert not np.isfinite(check.scoring.value) and f"| {nsr} | 0." in check.table()
    json.dumps(check.to_dict(), allow_nan=True)
    assert check.yardstick_fewer is None and "both scored on the first" not in check.table()
    assert not any("not used by this run" in name for name in by)  # no other ridge's column: no row


def test_summarize_puts_the_other_feature_sets_ridge_beside_the_runs_predictor():
    points = pd.DataFrame({"code": list("abcde"), "stride": [8, 8, 8, 8, 16], "seed0": [40.0, 42, 44, 46, 30],
                           "seed1": [41.0, 41.5, 45, 45.5, 29], "predicted": [1.0, 2, 3, 4, 0],
                           "predicted_nsr": [4.0, 3, 2, 1, 5]})
    check = summarize(points, seeds=(0, 1), short_steps=10, evaluated=pd.DataFrame(), loo_tau=0.5,
                      predictor="predictor", steps=100, val_images=64, feature_set="choices")
    by = {r.name: r for r in check.rankers}
    assert by["accuracy predictor (choices ridge, every point of the search)"].within.value == pytest.approx(1.0)
    assert by["the NSR ridge on the same design points (not used by this run)"].within.value == pytest.approx(-1.0)


def test_summarize_puts_the_yardstick_on_fewer_images_beside_the_full_one():
    points = pd.DataFrame({
        "code": list("abcdef"), "stride": [8, 8, 8, 8, 16, 16],
        "seed0": [40.0, 42, 44, 46, 30, 31], "seed1": [41.0, 41.5, 45, 45.5, 29, 32],
        "seed0@16": [40.0, 45, 43, 46, 33, 30], "seed1@16": [44.0, 41, 45, 42, 29, 31],
        "zero_shot@16": [1.0, 2, 3, 4, 0, 0.5],
    })
    check = summarize(points, seeds=(0, 1), short_steps=10, evaluated=pd.DataFrame(), loo_tau=0.5,
                      predictor="predictor", steps=100, val_images=64, fewer_images=16, feature_set="route_free")
    fa, fb = points["seed0@16"], points["seed1@16"]
    assert check.yardstick_fewer.value == pytest.approx(scipy_stats.kendalltau(fa, fb).statistic)
    assert check.yardstick_fewer_within.n == 4 and check.seed_difference_fewer == pytest.approx(np.mean(np.abs(fa - fb)))
    assert check.yardstick_fewer.value < check.yardstick.value  # fewer images, noisier here by construction
    by = {r.name: r for r in check.rankers}
    truth = (points["seed0"] + points["seed1"]) / 2  # judged against the full-image truth
    assert by["distilled model, no fine-tuning, first 16 images"].overall.value == pytest.approx(
        scipy_stats.kendalltau(points["zero_shot@16"], truth).statistic)
    assert "both scored on the first 16 images only" in check.table()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    space = from_dict(TINY)
    ws = micro_workdir(tmp_path_factory.mktemp("check"), TINY, hw=HW)
    design = list(dict.fromkeys(space.sample(i) for i in range(8)))[:4]
    evaluate_points(design, workspace=ws, config=CONFIG, val_images=VAL_IMAGES, progress=False)
    fit_from_table(ws, val_images=VAL_IMAGES, progress=False)
    return ws, space


def test_the_check_measures_held_out_points_without_touching_the_run_and_resumes(workdir):
    ws, space = workdir
    evaluated_before = ws.evaluated_path.read_bytes()
    predictor_before = (ws.predictor_dir / "accuracy.json").read_bytes()
    args = {"workspace": ws, "space": space, "k": 4, "config": CONFIG, "val_images": VAL_IMAGES, "short_steps": 1,
            "progress": False}
    check = check_predictor(**args)
    measured = pd.read_csv(ws.predictor_check_dir / MEASUREMENTS_FILE)
    codes = set(measured["code"])
    assert len(codes) == 4 and not codes & set(read_evaluated(ws.evaluated_path)["code"])  # never evaluated
    assert all(set(measured.loc[measured["code"] == c, "quantity"]) == QUANTITIES for c in codes)
    assert np.isfinite(measured["value"]).all()
    # the run's own files are untouched: the held-out points must not leak into the next fit
    assert ws.evaluated_path.read_bytes() == evaluated_before
    assert (ws.predictor_dir / "accuracy.json").read_bytes() == predictor_before
    assert not list(ws.predictor_check_dir.glob("*-seed*.pt"))  # resume states deleted once scored
    summary = json.loads((ws.predictor_check_dir / SUMMARY_FILE).read_text())
    assert summary["n_points"] == 4 and len(summary["rankers"]) == len(check.rankers) == 15  # 14 rankers + stride with its ties broken
    # the run fitted the default route-free ridge; the other feature sets' ridges on the same design are ranked beside it
    names = [r.name for r in check.rankers]
    assert "accuracy predictor (choices ridge without the route to a stride, every point of the search)" in names
    for key, label in (("nsr", "NSR ridge"), ("choices", "choices ridge"),
                       ("within_stride", "ridge within stride groups, with stage depths")):
        other = next(r for r in check.rankers if r.name == f"the {label} on the same design points (not used by this run)")
        assert other.overall.n == 4 and all(np.isfinite(p[f"predicted_{key}"]) for p in summary["points"])
    # the search's second stage is checked too, from the zero-shot scores the check measured
    stage = next(r for r in check.rankers if "zero-shot stage" in r.name)
    assert stage.overall.n == 4 and all(np.isfinite(p["predicted_zero_shot"]) for p in summary["points"])
    assert check.out_of_sample.n == 0  # the design's rows were evaluated before any predictor existed
    # resume: what is recorded is not measured again; a lost row is measured again, alone
    lost = measured.iloc[0]
    kept = measured.drop(index=0)
    kept.to_csv(ws.predictor_check_dir / MEASUREMENTS_FILE, index=False)
    again = check_predictor(**args)
    remeasured = pd.read_csv(ws.predictor_check_dir / MEASUREMENTS_FILE).set_index(["code", "quantity"])["value"]
    assert len(remeasured) == len(measured)
    assert all(remeasured[(c, q)] == v for c, q, v in zip(kept["code"], kept["quantity"], kept["value"]))
    assert np.isfinite(remeasured[(lost["code"], lost["quantity"])])
    assert again.n_points == 4
    # the yardstick on fewer images: the same points, only the missing quantities measured
    fewer = check_predictor(**args, fewer_images=VAL_IMAGES // 2)
    added = pd.read_csv(ws.predictor_check_dir / MEASUREMENTS_FILE)
    few = {f"seed0@{VAL_IMAGES // 2}", f"seed1@{VAL_IMAGES // 2}", f"zero_shot@{VAL_IMAGES // 2}"}
    assert all(set(added.loc[added["code"] == c, "quantity"]) == QUANTITIES | few for c in codes)
    assert fewer.yardstick_fewer.n == 4 and fewer.fewer_images == VAL_IMAGES // 2


def test_the_check_refuses_what_it_cannot_measure(workdir, tmp_path):
    from ffnet_nas.workspace import Workspace

    ws, space = workdir
    args = {"space": space, "config": CONFIG, "val_images": VAL_IMAGES, "short_steps": 1, "progress": False}
    with pytest.raises(InvalidInput, match="expected at least 4 points"):
        check_predictor(workspace=ws, k=3, **args)
    with pytest.raises(InvalidInput, match="only 12 never-evaluated points"):
        check_predictor(workspace=ws, k=13, **args)
    with pytest.raises(InvalidInput, match=f"fewer_images {VAL_IMAGES}: expected a positive count below"):
        check_predictor(workspace=ws, k=4, **{**args, "fewer_images": VAL_IMAGES})
    with pytest.raises(InvalidInput, match="short_steps 3: expected 1 to 2"):
        check_predictor(workspace=ws, k=4, **{**args, "short_steps": 3})
    with pytest.raises(InvalidInput, match="no accuracy predictor"):
        check_predictor(workspace=Workspace(tmp_path / "empty"), k=4, **args)


def test_the_image_count_bench_rescores_the_checks_z_exactly_scores_the_first_images_and_resumes(workdir, capsys):
    """bench/bench_zero_shot_images.py on this module's check (measured here when no test before did)."""
    from bench import bench_zero_shot_images as bench
    from ffnet_nas.evaluate import Resources
    from ffnet_nas.predictor_check import latest_predictor_dir
    from ffnet_nas.space import Arch
    from ffnet_nas.zero_shot import STAGE_BN_BATCHES, score_point

    ws, space = workdir
    check_predictor(workspace=ws, space=space, k=4, config=CONFIG, val_images=VAL_IMAGES, short_steps=1, progress=False)
    points = bench.measure(ws.root, fewer=2)
    assert len(points) == 4
    # all the images: the check's stored score, to the bit (measure refuses a drift)
    assert (points["z_full"] == points["zero_shot_bn"]).all()
    # the first 2: what the zero-shot stage itself scores on 2 images
    r = Resources.load(ws, predictor_dir=latest_predictor_dir(ws), val_images=VAL_IMAGES)
    direct = score_point(Arch.parse(points["code"].iloc[0]), library=ws.library_dir, val_ds=r.val_ds, val_images=2,
                         train_ds=r.train_ds, bn_batches=STAGE_BN_BATCHES)
    assert points["z_fewer"].iloc[0] == direct
    assert (points["s_full"] > 0).all() and (points["s_fewer"] > 0).all()
    kept = pd.read_csv(ws.predictor_check_dir / bench.FILE)
    assert len(kept) == 8 and set(kept["images"]) == {2, VAL_IMAGES}
    # resume: nothing scored again, the same seconds read back
    again = bench.measure(ws.root, fewer=2)
    assert list(again["s_full"]) == list(points["s_full"])
    bench.main([str(ws.root), str(ws.root), "--images", "2"])
    out = capsys.readouterr().out
    assert out.count("| fewer minus all (paired) |") == 3 and "pooled over 2 checks" in out
    with pytest.raises(SystemExit, match=f"--images {VAL_IMAGES}: expected fewer than the {VAL_IMAGES} images"):
        bench.measure(ws.root, fewer=VAL_IMAGES)


def test_the_signals_bench_reproduces_the_checks_z_keeps_its_values_and_pools_folders(workdir, capsys):
    """bench/bench_zero_shot_signals.py on this module's check (measured here when no test before did)."""
    from bench import bench_zero_shot_signals as bench

    ws, space = workdir
    check_predictor(workspace=ws, space=space, k=4, config=CONFIG, val_images=VAL_IMAGES, short_steps=1, progress=False)
    points = bench.measure(ws.root)
    assert len(points) == 4
    assert np.allclose(points["z"], points["zero_shot_bn"], atol=1e-3, rtol=0)  # the stage's Z (measure refuses a drift)
    assert (points["kd"] > 0).all() and (points["ce"] > 0).all() and points["agree"].between(0, 100).all()
    assert points["z_recal4x"].notna().all() and (points["seconds"] > 0).all()
    kept = pd.read_csv(ws.predictor_check_dir / bench.FILE)
    assert len(kept) == 4 and set(bench.SIGNALS) <= set(kept.columns)
    again = bench.measure(ws.root)  # resume: nothing measured again, the same seconds read back
    assert list(again["seconds"]) == list(points["seconds"])
    bench.main([str(ws.root), str(ws.root)])
    out = capsys.readouterr().out
    assert "pooled over 2 checks" in out and out.count("| KL to the teacher (end-to-end KD loss) |") == 3


def test_the_pair_gaps_bench_reads_a_real_check(workdir, capsys):
    """bench/bench_pair_gaps.py on this module's check: Z's pairs of one stride, counted and scored."""
    from bench import bench_pair_gaps as bench
    from bench._workdir import check_points

    ws, space = workdir
    check_predictor(workspace=ws, space=space, k=4, config=CONFIG, val_images=VAL_IMAGES, short_steps=1, progress=False)
    points, _ = check_points(ws.root)
    z, truth, stride = (points[c].to_numpy(float) for c in ("zero_shot_bn", "truth", "stride"))
    same = [(i, j) for i in range(4) for j in range(i + 1, 4) if stride[i] == stride[j] and z[i] != z[j]]
    across = sum(stride[i] != stride[j] for i in range(4) for j in range(i + 1, 4))
    bench.main([str(ws.root), "--quantiles", "0"])
    out = capsys.readouterr().out
    if same and across:
        agreement = np.mean([np.sign(z[i] - z[j]) * np.sign(truth[i] - truth[j]) for i, j in same])
        assert f"| all | {len(same)} | " in out and f" | {agreement:.3f} | " in out
    else:
        assert f"Z, the zero-shot stage: {len(same)} pairs of one stride and {across} across strides" in out
    assert "10 fine-tuning steps: not in every check (short10), left out" in out  # this check's short fine-tune is 1 step


def test_the_short_finetunes_bench_repeats_the_checks_short_finetune_under_another_seed(workdir):
    """bench/bench_short_finetunes.py on this module's check: the check's own short fine-tune, run by
    the function both share, under a seed the truth does not use; kept and resumed; its report."""
    from bench import bench_short_finetunes as bench
    from ffnet_nas.evaluate import Resources
    from ffnet_nas.predictor_check import RunSettings, latest_predictor_dir, short_finetune
    from ffnet_nas.space import Arch

    ws, space = workdir
    check_predictor(workspace=ws, space=space, k=4, config=CONFIG, val_images=VAL_IMAGES, short_steps=1, progress=False)
    settings = RunSettings(space="tiny", config=CONFIG, val_images=VAL_IMAGES, score_at="train")
    points = bench.measure(ws.root, steps=[1, 2], seeds=[2], settings=settings)
    assert len(points) == 4 and points[["ft1_s2", "ft2_s2"]].notna().all().all()
    assert points["ft1_s2"].between(0, 100).all() and (points["ft1_s2_seconds"] > 0).all()
    # the check's own baseline (1 step under seed 0) is what short_finetune gives under seed 0, to the bit
    r = Resources.load(ws, predictor_dir=latest_predictor_dir(ws), val_images=VAL_IMAGES)
    code = points["code"].iloc[0]
    assert short_finetune(Arch.parse(code), r=r, workspace=ws, config=CONFIG, steps=1, seed=0,
                          val_images=VAL_IMAGES) == points["short1"].iloc[0]
    kept = pd.read_csv(ws.predictor_check_dir / bench.FILE)
    assert len(kept) == 8 and set(kept["steps"]) == {1, 2} and set(kept["seed"]) == {2}
    again = bench.measure(ws.root, steps=[1, 2], seeds=[2], settings=settings)  # resume: nothing fine-tuned again
    assert list(again["ft2_s2_seconds"]) == list(points["ft2_s2_seconds"])
    lines = bench.report(points, steps=[1, 2], seeds=[2])
    row = next(line for line in lines if line.startswith("| 1 steps, seed 2 |"))
    s, truth = points["ft1_s2"].to_numpy(float), points["truth"].to_numpy(float)
    cell = lambda k: float(row.split(" | ")[k].split(" [")[0])  # noqa: E731  (a figure of the row, 2 decimals)
    assert cell(1) == pytest.approx(scipy_stats.kendalltau(s, truth).statistic, abs=0.0051)
    lean = (scipy_stats.kendalltau(s, points["seed_a"]).statistic - scipy_stats.kendalltau(s, points["seed_b"]).statistic)
    assert cell(3) == pytest.approx(lean, abs=0.0051)
    assert any(line.startswith("| 1 steps, seed a (the check's short fine-tune) |") for line in lines)
    with pytest.raises(InvalidInput, match=r"--seeds \[1\]: the truth's seeds are \[0, 1\]; expected others"):
        bench.measure(ws.root, steps=[1], seeds=[3, 1], settings=settings)
    with pytest.raises(InvalidInput, match=r"--steps \[3\]: expected 1 to 2"):
        bench.measure(ws.root, steps=[3], seeds=[2], settings=settings)
    # a second seed: only its fine-tunes are added; each length gets its own yardstick row
    both = bench.measure(ws.root, steps=[1, 2], seeds=[2, 3], settings=settings)
    assert list(both["ft2_s2_seconds"]) == list(points["ft2_s2_seconds"]) and both["ft1_s3"].notna().all()
    assert len(pd.read_csv(ws.predictor_check_dir / bench.FILE)) == 16
    own = next(line for line in bench.report(both, steps=[1, 2], seeds=[2, 3]) if line.startswith("| 1 steps, seed 2 against seed 3"))
    x, y = both["ft1_s2"].to_numpy(float), both["ft1_s3"].to_numpy(float)
    assert float(own.split(" | ")[1].split(" [")[0]) == pytest.approx(scipy_stats.kendalltau(x, y).statistic, abs=0.0051)


def test_the_re_ranked_points_that_were_evaluated_are_the_stages_out_of_sample_record(tmp_path):
    from ffnet_nas.predictor_check import _staged_record

    listed = tmp_path / "reranked.csv"
    assert _staged_record(listed, pd.DataFrame({"code": ["a"], "init": ["distilled"], "measured_miou": [1.0]})) == {}
    evaluated = pd.DataFrame({"code": list("abcdx"), "init": ["distilled"] * 3 + ["random", "distilled"],
                              "measured_miou": [49.0, 49.5, 45.0, 10.0, 5.0]})
    # re-ranked by the predictor itself (no zero-shot scores): not the stage's record
    pd.DataFrame({"code": list("abcde"), "miou": [50.0, 48.0, 46.0, 44.0, 30.0],
                  "zero_shot_miou": [float("nan")] * 5}).to_csv(listed, index=False)
    assert _staged_record(listed, evaluated) == {}
    pd.DataFrame({"code": list("abcde"), "miou": [50.0, 48.0, 46.0, 44.0, 30.0],
                  "zero_shot_miou": [20.0, 19, 18, 17, 10]}).to_csv(listed, index=False)
    record = _staged_record(listed, evaluated)  # a, b, c: d was evaluated from random init, e never
    assert record["zero_shot_out_of_sample"].n == 3
    assert record["zero_shot_out_of_sample"].value == pytest.approx(scipy_stats.kendalltau([50, 48, 46], [49, 49.5, 45]).statistic)
    assert record["zero_shot_out_of_sample_mae"] == pytest.approx((1 + 1.5 + 1) / 3)
