"""The zero-shot stage: predictive spread, P(beats the reference), the cached scores, the re-ranked search list."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from ffnet_nas.budgets import finetune_config
from ffnet_nas.distill.assemble import assemble
from ffnet_nas.evaluate import Resources, evaluate_points
from ffnet_nas.fit_predictor import choose_by_loo_rank, fit_from_table, zero_shot_data_key
from ffnet_nas.predictors.accuracy import (ZERO_SHOT_FEATURE_SETS, ZERO_SHOT_FEATURES, ZERO_SHOT_FILE,
                                           AccuracyPredictor, Validation, fit_accuracy_predictor, zero_shot_features)
from ffnet_nas.predictors.load import load_zero_shot_predictor
from ffnet_nas.space.arch import resolve
from ffnet_nas.space.searchspace import from_dict, get_space
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.stats import expected_gain, probability_greater
from ffnet_nas.training import evaluate
from ffnet_nas.averaging import recalibrate_bn
from ffnet_nas.zero_shot import BN_BATCHES, STAGE_BN_BATCHES, rerank, score_point, zero_shot_scores
from tests.helpers.micro import TINY_SPACE, micro_workdir

HW = (32, 64)
TINY = TINY_SPACE
VAL_IMAGES = 4


def test_probability_greater_and_expected_gain_are_those_of_the_normal_difference():
    from scipy import integrate

    rng = np.random.default_rng(0)
    ma, sa, mb, sb = rng.normal(size=20), rng.uniform(0.1, 2, 20), rng.normal(size=20), rng.uniform(0.1, 2, 20)
    spread = np.sqrt(sa ** 2 + sb ** 2)
    assert np.allclose(probability_greater(ma, sa, mb, sb), scipy_stats.norm.cdf((ma - mb) / spread))
    assert list(probability_greater([2.0, 1.0, 0.0], 0.0, 1.0, 0.0)) == [1.0, 0.5, 0.0]  # no spread: by the means
    # E[max(D, 0)], D ~ N(ma - mb, spread^2), integrated numerically
    oracle = [integrate.quad(lambda x: x * scipy_stats.norm.pdf(x, d, s), 0, np.inf)[0] for d, s in zip(ma - mb, spread)]
    assert np.allclose(expected_gain(ma, sa, mb, sb), oracle, atol=1e-7)
    assert list(expected_gain([2.0, 0.0], 0.0, 1.0, 0.0)) == [1.0, 0.0]


def test_a_prediction_far_from_the_design_is_less_sure_and_the_file_keeps_it(tmp_path):
    rng = np.random.default_rng(1)
    zs = rng.uniform(10, 20, 12)
    strides = rng.choice([2.0, 3.0], 12)
    x = np.column_stack([zs, strides])
    y = 1.5 * zs - 4 * strides + rng.normal(0, 0.5, 12)
    stage = fit_accuracy_predictor(x, y, codes=[f"p{i}" for i in range(12)], feature_names=ZERO_SHOT_FEATURES)
    assert stage.feature_names == ZERO_SHOT_FEATURES
    v = stage.validation
    assert v.rmse == pytest.approx(math.sqrt(np.mean((np.array(v.loo_predictions) - y) ** 2)))
    mean, std = stage.predict_with_std(np.array([[15.0, 2.5], [40.0, 2.5]]))
    assert mean[1] > mean[0] and std[1] > 2 * std[0]  # extrapolation: much wider
    assert std[0] >= v.rmse  # never surer than its own leave-one-out error
    stage.save(tmp_path / ZERO_SHOT_FILE)
    back = load_zero_shot_predictor(tmp_path)
    assert back == stage
    assert np.allclose(back.predict_with_std(np.array([[40.0, 2.5]])), stage.predict_with_std(np.array([[40.0, 2.5]])))
    # a file written before the spread was recorded: the LOO error alone, as its normal-error RMSE
    legacy = AccuracyPredictor(feature_names=ZERO_SHOT_FEATURES, mean=(0.0, 0.0), scale=(1.0, 1.0), coef=(1.0, 0.0),
                               intercept=0.0, alpha=1.0, validation=Validation(4, 1.0, 1.0, 2.0, (0.0,) * 4), codes=("a",) * 4)
    assert legacy.predict_with_std(np.array([[3.0, 3.0]]))[1][0] == pytest.approx(math.sqrt(math.pi / 2) * 2 * math.sqrt(1.25))


def _stride_points():
    space = get_space("mobile")
    by_stride = {}
    for a in space.sample_many(400, seed=0):
        by_stride.setdefault(a.output_stride, []).append(a)
    return by_stride[4], by_stride[16]


def test_rerank_prefers_the_unsure_point_when_the_reference_is_ahead_and_the_better_mean_when_far_behind():
    # mean = zero-shot mIoU; spread from the stride alone (leverage log2(stride)^2): stride 4 sure, 16 unsure
    stage = AccuracyPredictor(feature_names=ZERO_SHOT_FEATURES, mean=(0.0, 0.0), scale=(1.0, 1.0), coef=(1.0, 0.0),
                              intercept=0.0, alpha=1.0, validation=Validation(10**6, 1.0, 1.0, 1.0, (), rmse=1.0),
                              codes=(), inverse_gram=((0.0, 0.0), (0.0, 1.0)))
    fours, sixteens = _stride_points()
    sure, unsure, reference = fours[0], sixteens[0], fours[1]
    rows = [{"code": sure.code, "latency_ms": 1.0, "miou": 30.0}, {"code": unsure.code, "latency_ms": 2.0, "miou": 31.0}]
    for ref_score, first in ((10.0, unsure), (-50.0, sure)):
        scores = {sure.code: 5.0, unsure.code: 4.9, reference.code: ref_score}
        frame = rerank(rows, stage=stage, scores=scores, reference=reference)
        assert list(frame["rank"]) == [1, 2] and frame["code"][0] == first.code
        ref_std = math.sqrt(1 + 4)
        for r in frame.to_dict("records"):
            log2s = 2.0 if r["code"] == sure.code else 4.0
            assert r["miou_std"] == pytest.approx(math.sqrt(1 + log2s ** 2), rel=1e-5)
            spread = math.sqrt(r["miou_std"] ** 2 + ref_std ** 2)
            assert r["p_beats_reference"] == pytest.approx(scipy_stats.norm.cdf((r["miou"] - ref_score) / spread))
            assert r["expected_gain"] == pytest.approx(expected_gain(r["miou"], r["miou_std"], ref_score, ref_std)[0])
        assert frame["expected_gain"].is_monotonic_decreasing
        assert list(frame["search_miou"]) == [row["miou"] for row in sorted(rows, key=lambda r: r["code"] != first.code)]
    by_mean = rerank(rows, stage=stage, scores={sure.code: 5.0, unsure.code: 4.9})  # no reference: the mean ranks
    assert by_mean["code"][0] == sure.code and by_mean["p_beats_reference"].isna().all()
    assert by_mean["expected_gain"].isna().all()
    assert rerank([], stage=stage, scores={}).empty


def test_rerank_by_predictor_orders_by_the_expected_gain_of_the_searchs_own_predictor():
    from ffnet_nas.predictors.accuracy import CHOICE_FEATURES, choice_features, fit_accuracy_predictor
    from ffnet_nas.search.summary import reranked_text
    from ffnet_nas.zero_shot import rerank_by_predictor

    space = get_space("mobile")
    design = space.sample_many(12, seed=5)
    y = [50.0 - 4 * math.log2(a.output_stride) + (a.up_head == "C") + 0.1 * i for i, a in enumerate(design)]
    predictor = fit_accuracy_predictor(np.stack([choice_features(a) for a in design]), np.array(y),
                                       codes=[a.code for a in design], feature_names=CHOICE_FEATURES)
    candidates = [a for a in space.sample_many(40, seed=6) if a not in design][:6]
    rows = [{"code": a.code, "latency_ms": float(i), "miou": predictor.predict(a)} for i, a in enumerate(candidates)]
    reference = candidates[-1]
    frame = rerank_by_predictor(rows, predictor=predictor, reference=reference)
    assert sorted(frame["code"]) == sorted(a.code for a in candidates) and frame["zero_shot_miou"].isna().all()
    assert frame["expected_gain"].is_monotonic_decreasing
    means, stds = predictor.predict_with_std(np.stack([choice_features(c) for c in frame["code"]]))
    assert np.allclose(frame["miou"], means) and np.allclose(frame["miou_std"], stds)
    assert np.allclose(frame["search_miou"], means)  # the same mean the search ranked by, now with its spread
    (ref_mean,), (ref_std,) = predictor.predict_with_std(choice_features(reference)[None])
    assert np.allclose(frame["p_beats_reference"],
                       scipy_stats.norm.cdf((means - ref_mean) / np.sqrt(stds ** 2 + ref_std ** 2)))
    assert "re-ranked by the search's predictor" in reranked_text(frame)
    assert rerank_by_predictor([], predictor=predictor).empty


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    space = from_dict(TINY)
    ws = micro_workdir(tmp_path_factory.mktemp("zero_shot"), TINY, hw=HW)
    design = list(dict.fromkeys(space.sample(i) for i in range(8)))[:5]
    evaluate_points(design, workspace=ws, config=finetune_config(steps=2, batch_size=2), val_images=VAL_IMAGES,
                    progress=False)
    return ws, space, design


def test_recalibration_sets_batchnorm_statistics_to_the_average_over_the_batches_and_nothing_else():
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    model[1].running_mean.fill_(5.0)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    batches = [(torch.randn(4, 3, 8, 8) * (i + 1), None) for i in range(3)]
    with torch.no_grad():
        outs = [model[0](x) for x, _ in batches]
    recalibrate_bn(model, batches)
    means = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    variances = torch.stack([o.transpose(0, 1).reshape(4, -1).var(dim=1, unbiased=True) for o in outs]).mean(0)
    assert torch.allclose(model[1].running_mean, means, atol=1e-5)
    assert torch.allclose(model[1].running_var, variances, rtol=1e-4)
    assert not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


def test_zero_shot_scores_are_the_assembled_models_miou_cached_by_what_they_depend_on(workdir):
    ws, space, design = workdir
    r = Resources.load(ws)
    key = zero_shot_data_key(r)
    first = zero_shot_scores(design[:2], workspace=ws, val_ds=r.val_ds, val_images=VAL_IMAGES, data_key=key, progress=False)
    for arch in design[:2]:
        direct = 100 * evaluate(assemble(arch, ws.library_dir), r.val_ds, limit=VAL_IMAGES, progress=False).miou
        assert first[arch.code] == pytest.approx(direct)
    stamp = ws.zero_shot_path.stat().st_mtime_ns
    assert zero_shot_scores(design[:2], workspace=ws, val_ds=r.val_ds, val_images=VAL_IMAGES, data_key=key,
                            progress=False) == first
    assert ws.zero_shot_path.stat().st_mtime_ns == stamp  # nothing measured again, nothing written
    # other images: another signature, measured again beside the first rows (never reused)
    zero_shot_scores(design[:1], workspace=ws, val_ds=r.val_ds, val_images=2, data_key=key, progress=False)
    table = pd.read_csv(ws.zero_shot_path)
    assert len(table) == 3 and table["signature"].nunique() == 3
    # recalibrated BatchNorm: its own signature, and the score of score_point
    recal = zero_shot_scores(design[:1], workspace=ws, val_ds=r.val_ds, val_images=VAL_IMAGES, data_key=key,
                             train_ds=r.train_ds, bn_batches=BN_BATCHES, progress=False)
    direct = score_point(design[0], library=ws.library_dir, val_ds=r.val_ds, val_images=VAL_IMAGES,
                         train_ds=r.train_ds, bn_batches=BN_BATCHES)
    assert recal[design[0].code] == pytest.approx(direct) and len(pd.read_csv(ws.zero_shot_path)) == 4
    # recalibration asked for without the images to do it: refused, not quietly scored as distilled
    with pytest.raises(ValueError, match=f"bn_batches={BN_BATCHES}: recalibrating BatchNorm needs train_ds"):
        zero_shot_scores(design[2:3], workspace=ws, val_ds=r.val_ds, val_images=VAL_IMAGES, data_key=key,
                         bn_batches=BN_BATCHES, progress=False)
    assert len(pd.read_csv(ws.zero_shot_path)) == 4


def test_a_fit_writes_the_stage_and_the_search_lists_what_it_ranks_first(workdir, caplog):
    from ffnet_nas import steps
    from ffnet_nas.search.targets import parse_targets

    ws, space, design = workdir
    fit_from_table(ws, val_images=VAL_IMAGES, progress=False)
    stage = load_zero_shot_predictor(ws.predictor_dir)
    assert stage is not None and stage.validation.n == 5 and stage.meta["val_images"] == VAL_IMAGES
    assert stage.feature_names in ZERO_SHOT_FEATURE_SETS and stage.meta["bn_batches"] == STAGE_BN_BATCHES
    loo = pd.read_csv(ws.predictor_dir / "loo.csv")
    assert {"zero_shot_miou", "zero_shot_loo_predicted_miou"} <= set(loo.columns)
    # the stage is fitted on recalibrated scores (STAGE_BN_BATCHES), not on the models as distilled
    r = Resources.load(ws, val_images=VAL_IMAGES)
    fitted = loo.set_index("code")["zero_shot_miou"]
    recalibrated = score_point(design[0], library=ws.library_dir, val_ds=r.val_ds, val_images=VAL_IMAGES,
                               train_ds=r.train_ds, bn_batches=STAGE_BN_BATCHES)
    as_distilled = score_point(design[0], library=ws.library_dir, val_ds=r.val_ds, val_images=VAL_IMAGES)
    assert STAGE_BN_BATCHES > 0 and fitted[design[0].code] == pytest.approx(recalibrated)
    assert recalibrated != pytest.approx(as_distilled)
    reference = design[0]
    request = dict(space=space, targets=parse_targets(""), trials=12, num_classes=8, seed=0, storage=None,
                   evaluate_top=2, out_dir=ws.search_dir / "ranked")
    found = steps.search(workspace=ws, progress=False,
                         request=steps.SearchRequest(**request, rerank=6, rerank_by="zero-shot", reference=reference.code))
    frame = found.reranked
    assert 1 <= len(frame) <= 6 and reference.code not in set(frame["code"])
    assert frame["expected_gain"].is_monotonic_decreasing
    assert list(found.to_evaluate) == list(frame["code"][:2])
    assert list(pd.read_csv(found.paths["to_evaluate"])["code"]) == list(found.to_evaluate)
    assert pd.read_csv(found.paths["reranked"])["code"].tolist() == frame["code"].tolist()
    scored = set(pd.read_csv(ws.zero_shot_path)["code"])
    assert set(frame["code"]) | {reference.code} <= scored
    assert frame["zero_shot_miou"].notna().all()
    first = frame["code"][0]
    assert frame["zero_shot_miou"][0] == pytest.approx(score_point(
        resolve(first), library=ws.library_dir, val_ds=r.val_ds, val_images=VAL_IMAGES, train_ds=r.train_ds,
        bn_batches=STAGE_BN_BATCHES))  # scored as the stage was fitted: recalibrated
    # the default: the search's own predictor re-ranks, with no forward pass
    before = ws.zero_shot_path.read_bytes()
    own = steps.search(workspace=ws, progress=False, request=steps.SearchRequest(
        **{**request, "out_dir": ws.search_dir / "own"}, rerank=6, reference=reference.code))
    assert own.reranked["zero_shot_miou"].isna().all() and own.reranked["expected_gain"].is_monotonic_decreasing
    assert list(own.to_evaluate) == list(own.reranked["code"][:2]) and ws.zero_shot_path.read_bytes() == before
    off = steps.search(workspace=ws, progress=False,
                       request=steps.SearchRequest(**{**request, "out_dir": ws.search_dir / "plain"}, rerank=0))
    assert off.reranked is None and "reranked" not in off.paths
    # a stage fitted before the stage recalibrated (meta bn_batches 0) is not used on raw scores: the
    # predictor re-ranks instead, and the log says how to refit
    path = ws.predictor_dir / ZERO_SHOT_FILE
    fresh = path.read_bytes()
    dataclasses.replace(stage, meta={**stage.meta, "bn_batches": 0}).save(path)
    try:
        with caplog.at_level(logging.INFO, logger="ffnet_nas.steps.explore"):
            old = steps.search(workspace=ws, progress=False, request=steps.SearchRequest(
                **{**request, "out_dir": ws.search_dir / "old"}, rerank=6, rerank_by="zero-shot", reference=reference.code))
    finally:
        path.write_bytes(fresh)
    assert old.reranked["zero_shot_miou"].isna().all()
    assert list(old.reranked["code"]) == list(own.reranked["code"])
    assert "without BatchNorm recalibration (an older fit)" in caplog.text and "fit-predictor --refit-only" in caplog.text
    with pytest.raises(InvalidInput, match="--rerank-by 'oracle': expected one of predictor, zero-shot"):
        steps.SearchRequest(**request, rerank=6, rerank_by="oracle")
    # a space whose blocks the library lacks: refused before any trial (the choices ridge would score its points)
    with pytest.raises(InvalidInput, match="lacks .* blocks space 'mobile' needs .*ffnet-nas distill --space mobile"):
        steps.search(workspace=ws, progress=False, request=steps.SearchRequest(**{**request, "space": get_space("mobile")}))


def test_the_stage_keeps_the_feature_set_whose_leave_one_out_ranks_best():
    rng = np.random.default_rng(3)
    zs = rng.uniform(5, 40, 10)
    strides = rng.choice([2.0, 3.0, 4.0], 10)
    y = zs + rng.normal(0, 0.3, 10)  # the score alone decides; the stride only adds noise to the fit
    fits = [fit_accuracy_predictor(np.column_stack([zs, strides])[:, :len(names)], y, codes=[str(i) for i in range(10)],
                                   feature_names=names) for names in ZERO_SHOT_FEATURE_SETS]
    chosen = choose_by_loo_rank(fits)
    taus = [f.validation.kendall_tau for f in fits]
    assert chosen.validation.kendall_tau == max(taus)
    assert choose_by_loo_rank(fits[::-1]).validation.kendall_tau == max(taus)
    assert list(zero_shot_features("segmentation_ffnet40S_BBB_mobile", 12.5, ("zero_shot_miou",))) == [12.5]

    with pytest.raises(InvalidInput, match="expected some of"):
        zero_shot_features("segmentation_ffnet40S_BBB_mobile", 12.5, ("zero_shot_miou", "depth"))


def test_the_rerank_pool_keeps_the_best_of_every_structure_class_in_the_searchs_order():
    from ffnet_nas.fit_predictor import structure_class
    from ffnet_nas.space.arch import Arch
    from ffnet_nas.steps.explore import rerank_pool

    three = [f"stemC-basic-d{d}.8.8-w64.128.256-s2-upC-segB-nearest" for d in (6, 8, 16)]
    four_s1 = [f"stemC-basic-d4.5.{d}.4-w64.128.192.320-s1-upC-segC-nearest" for d in (6, 8, 12)]
    predown = "stemC-basic-d6.8.8-w64.128.256-s2-upC-segC-nearest-predown"
    rows = [{"code": c, "miou": 50 - i} for i, c in enumerate(three + four_s1 + [predown])]  # the search's order
    assert len({structure_class(Arch.parse(r["code"])) for r in rows}) == 3
    plain = rerank_pool(rows, k=3)
    assert [r["code"] for r in plain] == three  # without a quota: the best three, all of one class
    pool = rerank_pool(rows, k=4, per_class=1)
    # one of each class (the best of each), then the best of the rest, in the search's order
    assert [r["code"] for r in pool] == [three[0], three[1], four_s1[0], predown]
    # two of each (the predown class has one), then the best of the rest (three[2]), in the search's order
    assert [r["code"] for r in rerank_pool(rows, k=6, per_class=2)] == three + four_s1[:2] + [predown]
    # more classes than room: the classes whose best comes first keep their places
    assert [r["code"] for r in rerank_pool(rows, k=2, per_class=1)] == [three[0], four_s1[0]]
    assert rerank_pool(rows, k=0, per_class=2) == [] and rerank_pool([], k=4, per_class=2) == []
