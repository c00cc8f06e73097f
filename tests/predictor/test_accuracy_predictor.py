import math
import random

import numpy as np
import pytest

from ffnet_nas.predictors.accuracy import FEATURES, AccuracyPredictor, features, fit_accuracy_predictor, missing_blocks, nsr_table
from ffnet_nas.space import InvalidInput
from ffnet_nas.space.searchspace import get_space


def _library_for(points, rng):
    rows = []
    seen = set()
    for a in points:
        for b in a.blocks():
            if (b.position, b.choice) not in seen:
                seen.add((b.position, b.choice))
                rows.append({"position": b.position, "choice": b.choice, "status": "ok", "nsr_val": rng.uniform(0.05, 0.9)})
    return rows


def test_features_use_each_positions_nsr_and_params():
    rng = random.Random(0)
    points = get_space("mobile").sample_many(3, seed=0)
    nsr = nsr_table(_library_for(points, rng))
    f = features(points[0], nsr)
    assert f.shape == (len(FEATURES),)
    blocks = points[0].blocks()
    assert f[0] == pytest.approx(math.log10(nsr[(blocks[0].position, blocks[0].choice)]))
    assert 6 < f[-2] < 8  # log10 params of a mobile FFNet: 10M-100M
    assert f[-1] == math.log2(points[0].output_stride)


def test_missing_or_failed_blocks_are_named():
    points = get_space("mobile").sample_many(2, seed=1)
    rows = _library_for(points[:1], random.Random(0))
    rows[0]["status"] = "failed"
    nsr = nsr_table(rows)
    assert missing_blocks(points[0], nsr) == [f"{rows[0]['position']}:{rows[0]['choice']}"]
    with pytest.raises(InvalidInput, match="no usable block for") as e:
        features(points[0], nsr)
    assert rows[0]["choice"] in str(e.value)


def test_fit_recovers_a_ranking_it_can_learn(tmp_path):
    # mIoU that really is a (noisy) linear function of the features: LOO ranks must be high,
    # and a target made of pure noise must not look predictable.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, len(FEATURES)))
    y = 70 - 3 * x[:, 1] - 2 * x[:, 4] + rng.normal(scale=0.3, size=20)
    good = fit_accuracy_predictor(x, y, codes=[f"p{i}" for i in range(20)])
    assert good.validation.kendall_tau > 0.7 and good.validation.n == 20
    noise = fit_accuracy_predictor(x, rng.normal(size=20), codes=[f"p{i}" for i in range(20)])
    assert noise.validation.kendall_tau < 0.5

    path = good.save(tmp_path / "predictor.json")
    again = AccuracyPredictor.load(path)
    assert np.allclose(again.predict_features(x), good.predict_features(x))
    assert again.validation == good.validation


def test_too_few_points_and_corrupt_files_are_clear(tmp_path):
    with pytest.raises(InvalidInput, match="at least 4"):
        fit_accuracy_predictor(np.zeros((3, 6)), np.zeros(3), codes=["a", "b", "c"])
    bad = tmp_path / "p.json"
    bad.write_text('{"coef": [1')
    with pytest.raises(InvalidInput, match="corrupt or truncated"):
        AccuracyPredictor.load(bad)
    bad.write_text('{"coef": [1]}')
    with pytest.raises(InvalidInput, match="malformed"):
        AccuracyPredictor.load(bad)


def test_load_predictor_is_self_contained_and_names_unseen_blocks(tmp_path):
    from ffnet_nas.predictors.accuracy import PREDICTOR_FILE, load_predictor

    rng = random.Random(0)
    space = get_space("mobile")
    points = space.sample_many(6, seed=2)
    nsr = nsr_table(_library_for(points, rng))
    x = np.stack([features(a, nsr) for a in points])
    y = np.array([60.0 + i for i in range(6)])
    fit_accuracy_predictor(x, y, codes=[a.code for a in points], nsr=nsr).save(tmp_path / PREDICTOR_FILE)
    predict = load_predictor(tmp_path)
    direct = fit_accuracy_predictor(x, y, codes=[a.code for a in points], nsr=nsr)
    assert predict(points[0]) == pytest.approx(direct.predict(points[0], nsr))
    unseen = next(a for a in space.sample_many(200, seed=9) if missing_blocks(a, nsr))
    with pytest.raises(InvalidInput, match="no usable block"):
        predict(unseen)


def test_choice_features_encode_what_the_point_is_made_of():
    from ffnet_nas.predictors.accuracy import CHOICE_FEATURES, choice_features
    from ffnet_nas.space.arch import Arch

    a = Arch.parse("stemB-basic-d5.8.8.5-w64.128.192.320-s1-upB-segC-nearest")
    b = Arch.parse("stemC-basic-d8.12.16-w64.128.256-s2-upC-segB-nearest-predown")
    fa, fb = (dict(zip(CHOICE_FEATURES, choice_features(p))) for p in (a, b))
    assert len(choice_features(a)) == len(CHOICE_FEATURES) == len(set(CHOICE_FEATURES))
    assert fa["log2_output_stride"] == 2 and fb["log2_output_stride"] == 3  # stride 4; 3 stages + pre_down: 8
    assert (fa["stem=B"], fa["stem=C"], fb["stem=B"], fb["stem=C"]) == (1, 0, 0, 1)
    assert (fa["up_head=B"], fa["up_head=C"], fa["seg_head=C"], fb["up_head=C"], fb["seg_head=C"]) == (1, 0, 1, 1, 0)
    assert (fa["pre_down=True"], fb["pre_down=True"], fa["num_stages=3"], fb["num_stages=3"]) == (0, 1, 0, 1)
    assert fa["first_stride=2"] == 0 and fa["upsample=nearest"] == 1 and fa["block=bottleneck"] == 0
    # a level is one indicator: exactly one per field is set (or none, for the domain's first level)
    assert sum(v for k, v in fa.items() if k.startswith("up_head=")) == 1
    assert 6 < fa["log_params"] < 8
    # needs no block library: every point of every built-in space has them
    for point in get_space("all").sample_many(20, seed=3):
        assert np.isfinite(choice_features(point)).all()


def test_a_choices_predictor_predicts_any_point_and_says_a_new_level_is_unsure(tmp_path):
    from ffnet_nas.predictors.accuracy import (CHOICE_FEATURES, PREDICTOR_FILE, choice_features, feature_set_of,
                                               load_predictor)

    points = get_space("mobile").sample_many(12, seed=4)
    x = np.stack([choice_features(a) for a in points])
    # mIoU that is a function of the choices: finer output stride and the C up-head are better
    y = np.array([60.0 - 5 * math.log2(a.output_stride) + 1.5 * (a.up_head == "C") for a in points])
    fitted = fit_accuracy_predictor(x, y, codes=[a.code for a in points], feature_names=CHOICE_FEATURES)
    assert feature_set_of(fitted.feature_names) == "choices" and fitted.block_nsr == ()
    assert fitted.validation.kendall_tau > 0.8
    fitted.save(tmp_path / PREDICTOR_FILE)
    predict = load_predictor(tmp_path)  # no NSR table needed, none stored
    assert predict(points[0]) == pytest.approx(fitted.predict(points[0]))
    # a bottleneck point: a level the mobile design never used predicts, with a much wider spread
    known = choice_features(points[0])
    new = choice_features(points[0].replace(block="bottleneck"))
    _, (s_known, s_new) = fitted.predict_with_std(np.stack([known, new]))
    assert s_new > 1.5 * s_known


def test_feature_set_of_names_a_stored_predictors_features_or_refuses():
    from ffnet_nas.predictors.accuracy import CHOICE_FEATURES, feature_set_of

    assert feature_set_of(FEATURES) == "nsr" and feature_set_of(list(CHOICE_FEATURES)) == "choices"
    from ffnet_nas.predictors.accuracy import ROUTE_FREE_FEATURES, point_features

    assert feature_set_of(ROUTE_FREE_FEATURES) == "route_free"
    assert set(CHOICE_FEATURES) - set(ROUTE_FREE_FEATURES) == {"first_stride=2", "pre_down=True"}
    # the route-free features are the choices features less the two that say how a point reaches its stride
    arch = get_space("mobile").sample_many(1, seed=3)[0]
    full = point_features(arch, CHOICE_FEATURES, {})
    assert list(point_features(arch, ROUTE_FREE_FEATURES, {})) == [v for n, v in zip(CHOICE_FEATURES, full)
                                                                    if n in ROUTE_FREE_FEATURES]
    with pytest.raises(InvalidInput, match="expected one of the feature sets"):
        feature_set_of(("log_params",))


def test_a_damaged_predictor_file_is_one_line_and_does_not_block_the_refit_that_replaces_it(tmp_path, caplog):
    from ffnet_nas.fit_predictor import stored_feature_set
    from ffnet_nas.predictors.accuracy import CHOICE_FEATURES, PREDICTOR_FILE, choice_features
    from ffnet_nas.workspace import Workspace

    points = get_space("mobile").sample_many(6, seed=7)
    fitted = fit_accuracy_predictor(np.stack([choice_features(a) for a in points]), np.arange(6.0),
                                    codes=[a.code for a in points], feature_names=CHOICE_FEATURES)
    ws = Workspace(tmp_path)
    ws.predictor_dir.mkdir(parents=True)
    path = fitted.save(ws.predictor_dir / PREDICTOR_FILE)
    assert stored_feature_set(ws) == "choices"
    import json

    d = json.loads(path.read_text())
    d["coef"] = d["coef"][:-1]  # one coefficient short: one line, not a numpy traceback at the first prediction
    path.write_text(json.dumps(d))
    with pytest.raises(InvalidInput, match="malformed .*17 feature names but 17/17/16"):
        AccuracyPredictor.load(path)
    d["feature_names"] = ["depth"] * 16 + ["x"]
    d["coef"] = d["coef"] + [0.0]
    path.write_text(json.dumps(d))
    # the default set: what a stored predictor of the old "choices" set keeps is its own, a damaged one the default
    assert stored_feature_set(ws) == "route_free" and "refitting on the route_free features" in caplog.text


def test_within_stride_features_are_stride_steps_the_route_free_choices_and_stage_depths():
    from ffnet_nas.predictors.accuracy import (ROUTE_FREE_FEATURES, WITHIN_STRIDE_FEATURES, feature_set_of,
                                               point_features)
    from ffnet_nas.space.arch import Arch

    assert feature_set_of(WITHIN_STRIDE_FEATURES) == "within_stride"
    four = Arch.parse("stemB-basic-d16.8.6.4-w64.128.192.320-s1-upB-segC-nearest")  # stride 4
    three = Arch.parse("stemC-basic-d8.12.16-w64.128.256-s2-upC-segB-nearest-predown")  # 3 stages, stride 8
    f4, f3 = (dict(zip(WITHIN_STRIDE_FEATURES, point_features(a, WITHIN_STRIDE_FEATURES, {}))) for a in (four, three))
    assert [f4[f"output_stride>={s}"] for s in (8, 16, 32)] == [0, 0, 0]
    assert [f3[f"output_stride>={s}"] for s in (8, 16, 32)] == [1, 0, 0]
    assert [f4[f"log2_depth_stage{k}"] for k in (1, 2, 3, 4)] == [math.log2(17), math.log2(9), math.log2(7), math.log2(5)]
    assert f3["log2_depth_stage4"] == 0.0  # a 3-stage point's missing fourth stage: depth 0
    # every route-free choice but the stride, which the steps replace
    assert "log2_output_stride" not in f4 and set(ROUTE_FREE_FEATURES[1:]) <= set(f4)
    assert f3["seg_head=C"] == 0 and f3["num_stages=3"] == 1 and f4["seg_head=C"] == 1


def _within_stride_design():
    """24 mobile points of strides 4 and 16 only, whose mIoU is a level per stride (10 apart) plus
    a small effect of the first stage's depth that the choices cannot see."""
    space = get_space("mobile")
    pool = [a for a in space.sample_many(2000, seed=11) if a.output_stride in (4, 16)]
    design = pool[:12] + [a for a in pool if a.output_stride == 4][:6] + [a for a in pool if a.output_stride == 16][:6]
    design = list(dict.fromkeys(design))
    y = np.array([50.0 - 10 * (a.output_stride == 16) + 0.5 * math.log2(1 + a.depths[0]) for a in design])
    return design, y


def test_the_within_stride_ridge_leaves_the_stride_levels_unshrunk():
    from ffnet_nas.predictors.accuracy import FEATURE_SETS, point_features

    design, y = _within_stride_design()
    gaps = {}
    for name in ("within_stride", "route_free"):
        names = FEATURE_SETS[name]
        x = np.stack([point_features(a, names, {}) for a in design])
        # a strong ridge, as leave-one-out may choose on a noisy design: it shrinks what it penalises
        fitted = fit_accuracy_predictor(x, y, codes=[a.code for a in design], feature_names=names, alphas=(30.0,))
        pred = fitted.predict_features(x)
        stride = np.array([a.output_stride for a in design])
        gaps[name] = pred[stride == 4].mean() - pred[stride == 16].mean()
    true_gap = y[[a.output_stride == 4 for a in design]].mean() - y[[a.output_stride == 16 for a in design]].mean()
    assert gaps["within_stride"] == pytest.approx(true_gap, abs=0.3)  # the levels come from the points
    assert gaps["route_free"] < 0.7 * true_gap  # the stride term shrunk with everything else


def test_a_stride_the_design_lacks_takes_its_neighbours_levels_with_a_wide_spread():
    from ffnet_nas.predictors.accuracy import WITHIN_STRIDE_FEATURES, point_features

    design, y = _within_stride_design()
    names = WITHIN_STRIDE_FEATURES
    x = np.stack([point_features(a, names, {}) for a in design])
    fitted = fit_accuracy_predictor(x, y, codes=[a.code for a in design], feature_names=names)
    inside = next(a for a in design if a.output_stride == 4)
    eight = next(a for a in get_space("mobile").sample_many(500, seed=12) if a.output_stride == 8)
    (m_in, m_8), (s_in, s_8) = fitted.predict_with_std(np.stack([point_features(a, names, {}) for a in (inside, eight)]))
    # ">=8" and ">=16" are one column on this design: stride 8 lands midway between the levels it saw
    assert m_8 == pytest.approx(45.0 + 0.5 * math.log2(1 + eight.depths[0]), abs=1.0)
    # unsure, as a level the design never used is (~1/alpha), not the 1e4-fold of its tiny penalty
    assert 1.5 * s_in < s_8 < 100 * s_in
