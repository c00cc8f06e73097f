"""Full evaluation and the accuracy predictor on a micro workdir (tiny teacher, tiny space)."""

import logging

import pandas as pd
import pytest
import torch

from ffnet_nas.distill.run import distill_space
from ffnet_nas.distill.teacher import save_teacher
from ffnet_nas.settings import BlockTrainConfig
from ffnet_nas.cli import main
from ffnet_nas.data import make_dataset
from ffnet_nas.budgets import finetune_config
from ffnet_nas.evaluate import evaluate_points, point_dir, read_evaluated
from ffnet_nas.fit_predictor import select_points
from ffnet_nas.fit_predictor import fit_from_table
from ffnet_nas.workspace import Workspace
from ffnet_nas.space import Arch, InvalidInput, build_model
from ffnet_nas.space.searchspace import from_dict, get_space

HW = (32, 64)
TINY = {"base": "mobile", "name": "tiny", "stems": ["B"], "up_heads": ["B"], "seg_heads": ["B", "C"],
        "stages": {4: {"depths": [[1, 2], [1], [1], [1]], "widths": [[16], [32], [48], [64]]}},
        "first_strides": [1, 2], "pre_downs": [False], "input_size": "32x64"}
CONFIG = finetune_config(steps=2, batch_size=2, checkpoint_every=1)
VAL_IMAGES = 4
SETTINGS = {"config": CONFIG, "val_images": VAL_IMAGES}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    torch.manual_seed(0)
    ws = Workspace(tmp_path_factory.mktemp("micro"))
    train = make_dataset("synthetic", "train", size_hw=HW, cache_dir=ws.data_dir)
    teacher = build_model("stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest", num_classes=train.num_classes).eval()
    save_teacher(ws.teacher_path, teacher, data="synthetic", input_hw=list(HW), miou=0.0)
    val = make_dataset("synthetic", "val", size_hw=HW, cache_dir=ws.data_dir)
    distill_space(from_dict(TINY), teacher_path=ws.teacher_path, train_data=train, val_data=val,
                  library_dir=ws.library_dir, data_spec="synthetic", config=BlockTrainConfig(steps=2, batch_size=4),
                  train_images=8, val_images=4, progress=False)
    return ws


def test_evaluate_writes_one_row_per_point_and_skips_finished(workdir, caplog):
    arch = from_dict(TINY).sample(0)
    frame = evaluate_points([arch], workspace=workdir, **SETTINGS, progress=False)
    assert list(frame["code"]) == [arch.code]
    row = frame.iloc[0]
    assert 0 <= row["measured_miou"] <= 100 and row["steps"] == 2 and row["init"] == "distilled"
    assert row["params"] == sum(p.numel() for p in build_model(arch, num_classes=8).parameters())
    folder = point_dir(workdir, arch, "distilled")
    assert (folder / "model.pt").exists() and not (folder / "finetune_state.pt").exists()  # no resume state left
    mtime = workdir.evaluated_path.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="ffnet_nas"):
        evaluate_points([arch], workspace=workdir, **SETTINGS, progress=True)  # finished: skipped
    assert "already evaluated" in caplog.text
    assert workdir.evaluated_path.stat().st_mtime_ns == mtime
    # random initialisation is a separate row of the same point
    evaluate_points([arch], workspace=workdir, **SETTINGS, init="random", progress=False)
    table = read_evaluated(workdir.evaluated_path)
    assert sorted(table[table["code"] == arch.code]["init"]) == ["distilled", "random"]


def test_point_outside_the_library_is_a_clear_error(workdir):
    outside = Arch.from_name("segmentation_ffnet46NS_CCC_mobile")
    with pytest.raises(InvalidInput, match="s4"):
        evaluate_points([outside], workspace=workdir, **SETTINGS, progress=False)


def test_fit_predictor_cli_reports_loo_ranks(workdir, capsys):
    code = main(["fit-predictor", "--space", "x.yaml", "--workdir", str(workdir.root)])
    assert code == 2  # unknown space file: one line, exit 2
    space_file = workdir.root / "tiny.yaml"
    import yaml

    space_file.write_text(yaml.safe_dump(TINY))
    code = main(["fit-predictor", "--space", str(space_file), "--n", "4", "--steps", "2", "--batch-size", "2",
                 "--val-images", "4", "--workdir", str(workdir.root)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "leave-one-out Kendall tau" in out and "fine-tuned points" in out
    loo = pd.read_csv(workdir.predictor_dir / "loo.csv")
    assert len(loo) >= 4 and set(loo.columns) == {"code", "measured_miou", "loo_predicted_miou", "zero_shot_miou",
                                                  "zero_shot_loo_predicted_miou"}
    assert "zero-shot stage" in out and (workdir.predictor_dir / "zero_shot.json").exists()
    again = fit_from_table(workdir)  # refit on the table alone gives the same model
    assert again.validation.n == len(loo)
    # leave-one-out means it: each point's figure is the prediction of a fit on all the other points
    # (same ridge strength), and differs from the fit that saw it
    import re

    import numpy as np
    from scipy.stats import kendalltau

    from ffnet_nas.fit_predictor import library_nsr
    from ffnet_nas.predictors.accuracy import AccuracyPredictor, feature_set_of, point_features

    assert feature_set_of(again.feature_names) == "route_free"  # the default
    nsr = library_nsr(workdir)
    x = np.stack([point_features(Arch.parse(c), again.feature_names, nsr) for c in loo["code"]])
    y = loo["measured_miou"].to_numpy(float)
    alpha = again.alpha
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        # ridge on standardised features, written out here rather than taken from the predictor
        mean, scale = x[keep].mean(axis=0), x[keep].std(axis=0)
        scale[scale < 1e-12] = 1.0
        z = (x[keep] - mean) / scale
        coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y[keep] - y[keep].mean()))
        held_out = ((x[i] - mean) / scale) @ coef + y[keep].mean()
        assert loo["loo_predicted_miou"][i] == pytest.approx(held_out, abs=1e-6)
    in_sample = again.predict_features(x)
    assert np.abs(in_sample - loo["loo_predicted_miou"].to_numpy()).max() > 1e-6
    # and the reported rank figure is the one of those leave-one-out predictions
    printed = float(re.search(r"Kendall tau (-?[\d.]+|nan)", out).group(1))
    expected = kendalltau(loo["loo_predicted_miou"], y).statistic
    assert printed == pytest.approx(expected, abs=1e-3, nan_ok=True)
    assert isinstance(AccuracyPredictor.load(workdir.predictor_dir / "accuracy.json"), AccuracyPredictor)
    # --features nsr refits on the blocks' NSR; a later refit (and a refine round) keeps the workdir's set
    assert main(["fit-predictor", "--refit-only", "--features", "nsr", "--workdir", str(workdir.root)]) == 0
    assert "ridge on the nsr features" in capsys.readouterr().out
    assert feature_set_of(fit_from_table(workdir).feature_names) == "nsr"
    assert feature_set_of(fit_from_table(workdir, feature_set="choices").feature_names) == "choices"


def test_select_points_spreads_and_includes_published():
    space = get_space("mobile")
    published = [Arch.from_name("segmentation_ffnet40S_BBB_mobile"), Arch.from_name("segmentation_ffnet46NS_CCC_mobile")]
    points = select_points(space, 8, seed=0, published=published)
    assert len(set(points)) == 8 and all(p in space for p in points)
    assert set(published) <= set(points)
    assert {p.num_stages for p in points} == {3, 4}  # the design covers both backbone kinds


def test_a_contrast_design_pairs_points_of_one_stride_that_differ_in_one_choice():
    from ffnet_nas.fit_predictor import CONTRAST_FIELDS, structure_class
    from ffnet_nas.space.catalogue import variants

    space = get_space("mobile")
    published = [v.arch for v in variants()]
    spread = select_points(space, 10, seed=0, published=published)
    contrast = select_points(space, 10, seed=0, published=published, design="contrast")
    assert len(set(contrast)) == 10 and all(p in space for p in contrast)
    assert contrast[:5] == spread[:5]  # the published half is the same
    pool_classes = {structure_class(a) for a in space.sample_many(500, seed=0)}
    assert {structure_class(a) for a in contrast} == {structure_class(a) for a in spread} == pool_classes

    def one_choice_apart(a, b):
        differ = [f for f in ("stem", "block", "first_stride", "up_head", "seg_head", "upsample", "pre_down",
                              "num_stages", "depths", "widths") if getattr(a, f) != getattr(b, f)]
        return len(differ) == 1 and differ[0] in CONTRAST_FIELDS and a.output_stride == b.output_stride

    neighbours = [b for i, b in enumerate(contrast) if any(one_choice_apart(a, b) for a in contrast[:i])]
    assert len(neighbours) >= 3 and not any(any(one_choice_apart(a, b) for a in spread[:i])
                                            for i, b in enumerate(spread))
    # the seg head first: the one choice measured to matter inside a stride group
    first = neighbours[0]
    assert any(one_choice_apart(a, first) and a.seg_head != first.seg_head for a in contrast)


def test_select_points_adds_to_points_already_evaluated_and_refuses_an_unknown_design():
    space = get_space("mobile")
    base = select_points(space, 8, seed=0)
    for design in ("spread", "contrast"):
        more = select_points(space, 4, seed=0, already=base, design=design)
        assert len(set(more)) == 4 and not set(more) & set(base)
        assert select_points(space, 4, seed=0, already=base + base[:3], design=design) == more  # repeats count once
    with pytest.raises(InvalidInput, match="design 'grid': expected one of spread, contrast"):
        select_points(space, 4, design="grid")


def test_evaluate_cli_rejects_bad_points_before_training(workdir, capsys):
    assert main(["evaluate", "segmentation_ffnet40S_BBB_mobil", "--workdir", str(workdir.root)]) == 2
    err = capsys.readouterr().err
    assert "segmentation_ffnet40S_BBB_mobile" in err and err.count("\n") == 1
    assert main(["evaluate", "--workdir", str(workdir.root)]) == 2


def test_held_out_miou_scores_only_the_images_the_scores_did_not_use(workdir):
    from ffnet_nas.evaluate import held_out_miou
    from ffnet_nas.training import evaluate
    from ffnet_nas.space.checkpoint import load_model

    arch = from_dict(TINY).sample(0)
    evaluate_points([arch], workspace=workdir, **SETTINGS, progress=False)
    held = held_out_miou([arch.code, "stemB-never-evaluated"], workspace=workdir, val_images=VAL_IMAGES)
    assert set(held) == {arch.code}
    table = read_evaluated(workdir.evaluated_path)
    row = table[(table["code"] == arch.code) & (table["init"] == "distilled")].iloc[0]
    assert row["checkpoint"] == f"evaluated/{arch.stable_hash}-distilled/model.pt"  # relative to the workdir
    model = load_model(workdir.resolve(row["checkpoint"])).eval()
    val = make_dataset("synthetic", "val", size_hw=HW, cache_dir=workdir.data_dir)
    rest = torch.utils.data.Subset(val, range(VAL_IMAGES, len(val)))
    rest.num_classes, rest.ignore_index = val.num_classes, val.ignore_index
    after = evaluate(model, rest, progress=False)
    first = evaluate(model, val, limit=VAL_IMAGES, progress=False)
    assert held[arch.code] == pytest.approx(100 * after.miou)
    assert first.miou == pytest.approx(row["measured_miou"] / 100)  # the scoring images are the first ones
    assert held_out_miou([arch.code], workspace=workdir, val_images=None) == {}  # nothing held out


def test_held_out_miou_says_when_the_scores_used_every_image(tmp_path, caplog):
    """A user's split no larger than the scoring images (a small folder, or val_images set to its
    size) leaves nothing to hold out: an empty result, and a warning that says why."""
    from ffnet_nas.evaluate import held_out_miou
    from tests.helpers.trees import write_pool

    write_pool(tmp_path / "pool", 20, hw=(32, 64))  # 2 validation images
    ws = Workspace(tmp_path / "work")
    teacher = build_model("stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest", num_classes=4).eval()
    save_teacher(ws.teacher_path, teacher, data=f"folder:{tmp_path / 'pool'}", input_hw=list(HW), miou=0.0)
    for val_images in (2, 102):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ffnet_nas.evaluate"):
            assert held_out_miou(["stemB-any"], workspace=ws, val_images=val_images) == {}
        assert [r.getMessage() for r in caplog.records] == [
            f"no validation image is held out (the scores used the first {val_images}, the split holds 2): "
            "the held-out check is skipped"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ffnet_nas.evaluate"):
        assert held_out_miou(["stemB-any"], workspace=ws, val_images=1) == {}  # nothing evaluated, one image out
    assert not caplog.records  # one image held out is enough to score


def test_the_embedded_data_holds_out_as_many_images_as_the_scores_use(workdir, caplog):
    """Scores on the whole default split (128 images) no longer leave the held-out check without
    images: the embedded split grows to 256, and the check scores the 128 after the scoring ones."""
    from ffnet_nas.data import validation_split
    from ffnet_nas.evaluate import held_out_miou
    from ffnet_nas.training import evaluate
    from ffnet_nas.space.checkpoint import load_model

    arch = from_dict(TINY).sample(0)
    evaluate_points([arch], workspace=workdir, **SETTINGS, progress=False)
    with caplog.at_level(logging.WARNING, logger="ffnet_nas.evaluate"):
        held = held_out_miou([arch.code], workspace=workdir, val_images=128)
    assert not caplog.records
    val = validation_split("synthetic", scored=128, size_hw=HW, cache_dir=workdir.data_dir)
    assert len(val) == 256
    model = load_model(workdir.point_model_path(arch.stable_hash, "distilled")).eval()
    assert held[arch.code] == pytest.approx(100 * evaluate(model, val, start=128, progress=False).miou)
    # a check that states the split's size (--val-split) gets exactly that many from Resources.load itself
    from ffnet_nas.evaluate import Resources

    assert len(Resources.load(workdir, val_images=64, val_split=200).val_ds) == 200


def test_int8_precision_scores_the_quantised_model_on_the_same_images(workdir):
    """evaluate --precision int8: the fine-tuned model.pt quantised (ONNX Runtime QDQ) and scored on the
    scoring images; the float score stays, a re-run scores nothing again."""
    from ffnet_nas.predictors.latency.int8 import calibration_images, score_int8
    from ffnet_nas.space.checkpoint import load_model

    arch = from_dict(TINY).sample(1)
    frame = evaluate_points([arch], workspace=workdir, **SETTINGS, progress=False, precision="int8")
    row = frame.iloc[0]
    assert 0 <= row["int8_miou"] <= 100 and 0 <= row["measured_miou"] <= 100
    # the same recipe by hand gives the same number
    model = load_model(workdir.point_model_path(arch.stable_hash, "distilled")).eval()
    val = make_dataset("synthetic", "val", size_hw=HW, cache_dir=workdir.data_dir)
    calibration = calibration_images("synthetic", size_hw=HW, cache_dir=workdir.data_dir)
    again = score_int8(model, calibration=calibration, images=[val[i] for i in range(VAL_IMAGES)],
                       num_classes=8, fp32_too=True)
    assert 100 * again.miou == pytest.approx(row["int8_miou"])
    assert 100 * again.fp32_miou == pytest.approx(row["measured_miou"], abs=0.5)  # the ONNX float graph ≈ torch
    mtime = workdir.evaluated_path.stat().st_mtime_ns
    evaluate_points([arch], workspace=workdir, **SETTINGS, progress=False, precision="int8")
    assert workdir.evaluated_path.stat().st_mtime_ns == mtime
    with pytest.raises(InvalidInput, match="precision 'int4'"):
        evaluate_points([arch], workspace=workdir, **SETTINGS, progress=False, precision="int4")


def test_an_int8_fit_scores_fp32_rows_in_int8_first_and_learns_the_int8_miou(workdir):
    """fit-predictor --precision int8 (and an INT8 run): rows evaluated in fp32 only get their int8_miou
    first; the ridge is fitted on it, and the predictor and its LOO table say so."""
    from ffnet_nas.evaluate import held_out_miou
    from ffnet_nas.evaluate.int8 import Int8Scorer
    from ffnet_nas.space.checkpoint import load_model

    archs = [from_dict(TINY).sample(i) for i in range(4)]
    evaluate_points(archs, workspace=workdir, **SETTINGS, progress=False)  # fp32 only
    out = workdir.root / "int8-predictor"
    predictor = fit_from_table(workdir, out_dir=out, val_images=VAL_IMAGES, precision="int8")
    table = read_evaluated(workdir.evaluated_path)
    table = table[table["init"] == "distilled"].set_index("code")
    assert table["int8_miou"].notna().all()  # every usable row was scored in INT8, once
    loo = pd.read_csv(out / "loo.csv").set_index("code")
    assert "int8_miou" in loo.columns and "measured_miou" not in loo.columns
    assert loo["int8_miou"].to_dict() == pytest.approx(table.loc[loo.index, "int8_miou"].to_dict())
    assert predictor.meta["accuracy"] == "int8_miou" and predictor.validation.n == len(table)
    # the same rows, fitted in fp32: the other column, and the INT8 scores are not redone
    mtime = workdir.evaluated_path.stat().st_mtime_ns
    assert fit_from_table(workdir, out_dir=workdir.root / "fp32-predictor", val_images=VAL_IMAGES).meta["accuracy"] \
        == "measured_miou"
    fit_from_table(workdir, out_dir=out, val_images=VAL_IMAGES, precision="int8")
    assert workdir.evaluated_path.stat().st_mtime_ns == mtime
    # the held-out check of an INT8 run: the quantised model on the images after the scoring ones
    model = load_model(workdir.point_model_path(archs[0].stable_hash, "distilled")).eval()
    held = held_out_miou([archs[0].code], workspace=workdir, val_images=VAL_IMAGES, precision="int8")
    scorer = Int8Scorer(workdir)
    assert held[archs[0].code] == pytest.approx(scorer.miou(model, start=VAL_IMAGES))
    assert scorer.miou(model, stop=VAL_IMAGES) == pytest.approx(table.loc[archs[0].code, "int8_miou"])
    with pytest.raises(InvalidInput, match="precision 'fp16': expected one of fp32, int8"):
        held_out_miou([archs[0].code], workspace=workdir, val_images=VAL_IMAGES, precision="fp16")


def test_an_int8_fit_with_no_scoreable_row_says_how_to_get_one(workdir, tmp_path):
    import shutil

    ws = Workspace(tmp_path)  # the library and the teacher, nothing evaluated
    shutil.copytree(workdir.library_dir, ws.library_dir)
    with pytest.raises(InvalidInput, match="int8_miou.*evaluate --precision int8"):
        fit_from_table(ws, precision="int8")


def test_a_stored_predictor_is_reused_only_for_the_accuracy_it_learned(workdir, tmp_path, caplog):
    """A workdir re-run under an INT8 table must not search with the float predictor of its first run:
    `reuse` keeps a predictor only when it learned the accuracy asked for. A fit without --precision
    keeps the workdir's (its predictor's, else its run's)."""
    import json
    import shutil

    from ffnet_nas import steps
    from ffnet_nas.fit_predictor import workdir_precision

    evaluate_points([from_dict(TINY).sample(i) for i in range(4)], workspace=workdir, **SETTINGS, progress=False)
    out = workdir.root / "reused"

    def fit(precision):
        return steps.fit_predictor(workspace=workdir, progress=False, request=steps.PredictorRequest(
            refit_only=True, reuse=True, out_dir=out, val_images=VAL_IMAGES, precision=precision))

    assert fit("fp32").fitted_now and not fit("fp32").fitted_now
    with caplog.at_level(logging.INFO):
        int8 = fit("int8")
    assert int8.fitted_now and int8.predictor.meta["accuracy"] == "int8_miou"
    assert "learned measured_miou; this step needs int8_miou" in caplog.text
    assert not fit("int8").fitted_now
    # the default precision of a fit: fp32 on a bare workdir, the run's, then the predictor's
    ws = Workspace(tmp_path)
    assert workdir_precision(ws) == "fp32"
    ws.run_summary_path.write_text(json.dumps({"budget": "micro", "space": "tiny", "device": "cpu",
                                               "accuracy": "int8_miou"}))
    assert workdir_precision(ws) == "int8"
    ws.predictor_dir.mkdir(parents=True)
    shutil.copy(workdir.root / "fp32-predictor" / "accuracy.json", ws.predictor_dir / "accuracy.json")
    assert workdir_precision(ws) == "fp32"


def test_evaluate_in_an_int8_workdir_scores_int8_without_being_told(workdir, tmp_path, capsys):
    import json
    import shutil

    root = tmp_path / "w"
    shutil.copytree(workdir.root, root, ignore=shutil.ignore_patterns("predictor", "*-predictor", "reused"))
    ws = Workspace(root)
    ws.run_summary_path.write_text(json.dumps({"budget": "micro", "space": "tiny", "device": "cpu",
                                               "accuracy": "int8_miou"}))
    arch = from_dict(TINY).sample(5)
    assert main(["evaluate", arch.code, "--steps", "2", "--batch-size", "2", "--val-images", str(VAL_IMAGES),
                 "--workdir", str(root)]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if "measured_miou" in line)
    assert "int8_miou" in header  # the printed table has the column
    table = read_evaluated(ws.evaluated_path)
    table = table[table["init"] == "distilled"].set_index("code")  # other tests of the module add random-init rows
    assert pd.notna(table.loc[arch.code, "int8_miou"])
