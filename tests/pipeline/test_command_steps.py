"""Each command is a thin layer over its step (`ffnet_nas.steps`): its options become the step's
request, and what the step wrote is printed last. The steps are replaced by recorders here, so
these check the mapping, not the work (tests/pipeline/test_steps.py runs the real steps)."""

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from ffnet_nas import steps
from ffnet_nas.budgets import finetune_config
from ffnet_nas.cli import main
from ffnet_nas.workspace import Workspace
from tests.helpers.distill import NUM_CLASSES, tiny_teacher

CODE = "stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest"


@pytest.fixture
def asked(monkeypatch):
    """name -> the request the command handed to that step (the step itself does nothing)."""
    requests = {}

    def recorder(name, result):
        def step(*, workspace, request, **_kw):
            requests[name] = (workspace, request)
            return result(request) if callable(result) else result
        monkeypatch.setattr(steps, name, step)

    rows = pd.DataFrame([{"code": CODE, "init": "distilled", "measured_miou": 50.0}])
    recorder("evaluate", steps.EvaluateResult(rows=rows))
    from ffnet_nas.predictors.accuracy import CHOICE_FEATURES

    predictor = SimpleNamespace(alpha=1.0, feature_names=CHOICE_FEATURES,
                                validation=SimpleNamespace(n=4, kendall_tau=0.5, spearman=0.6, mae=1.0))
    recorder("fit_predictor", lambda r: steps.PredictorResult(predictor=predictor, folder=Path("p"), fitted_now=True))
    recorder("report", SimpleNamespace(figures=[], notes=[], written=[Path("r/index.html")], index=Path("r/index.html")))
    recorder("measure_latency", SimpleNamespace(table=_Table(), n_keys=0, n_new=0, calibration=None, validation=None))
    return requests


class _Table(list):
    """What the latency step's result holds, as far as the command prints it: a length and a path."""

    path = Path("lut/t.csv")


def _teacher(ws: Workspace) -> None:
    from ffnet_nas.distill.teacher import save_teacher

    save_teacher(ws.teacher_path, tiny_teacher(), data="synthetic", input_hw=[32, 64], miou=0.0)


def test_evaluate_builds_its_request_from_the_options(tmp_path, asked, capsys):
    argv = ["evaluate", CODE, "--steps", "7", "--batch-size", "2", "--lr", "0.02", "--kd-weight", "0.5",
            "--val-images", "3", "--init", "random", "--redo", "--lut", "cpu-fp32-eager-b1-32x64-t1",
            "--workdir", str(tmp_path / "w")]
    assert main(argv) == 0
    ws, request = asked["evaluate"]
    assert ws == Workspace(tmp_path / "w") and [a.code for a in request.points] == [CODE]
    assert request.finetune == finetune_config(steps=7, batch_size=2, lr=0.02, kd_weight=0.5)
    assert (request.val_images, request.init, request.redo, request.device, request.lut) == \
        (3, "random", True, "cpu", "cpu-fp32-eager-b1-32x64-t1")
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {ws.evaluated_path}"


def _run_summary(ws: Workspace, *, amp: str | None, space: str = "mobile") -> None:
    """What `ffnet-nas run --budget micro [--amp ...]` records of its settings."""
    import json

    from ffnet_nas.budgets import budget_dict, get_budget

    ws.root.mkdir(parents=True, exist_ok=True)
    ws.run_summary_path.write_text(json.dumps({"budget": "micro", "space": "mobile", "device": "cpu", "provenance": {
        "budget": budget_dict(get_budget("micro")), "config": {"space": space, "amp": amp}}}))


def test_evaluate_and_fit_predictor_fine_tune_as_the_workdirs_run_did(tmp_path, asked, capsys):
    """A point added by hand to a run's workdir is fine-tuned and scored like the run's points
    (before: 300 steps on every image beside the quick run's 100 steps on 64, in one table)."""
    import dataclasses

    from ffnet_nas.budgets import get_budget

    ws = Workspace(tmp_path / "w")
    run = get_budget("micro").evaluate
    _run_summary(ws, amp="bf16")
    assert main(["evaluate", CODE, "--workdir", str(ws.root)]) == 0
    request = asked["evaluate"][1]
    assert request.finetune == dataclasses.replace(run.finetune, amp="bf16")  # the run's --amp too
    assert (request.val_images, request.score_at) == (run.val_images, run.score_at)
    assert f"{run.finetune.steps} steps" in capsys.readouterr().out
    # a flag given wins over the run's setting, and only that one
    assert main(["evaluate", CODE, "--steps", "5", "--val-images", "3", "--workdir", str(ws.root)]) == 0
    request = asked["evaluate"][1]
    assert request.finetune == dataclasses.replace(run.finetune, amp="bf16", steps=5) and request.val_images == 3
    # the held-BatchNorm fine-tune, asked for by flag
    assert main(["evaluate", CODE, "--freeze-bn", "on", "--grad-clip", "5", "--workdir", str(ws.root)]) == 0
    assert asked["evaluate"][1].finetune == dataclasses.replace(run.finetune, amp="bf16", freeze_bn=True, grad_clip=5.0)
    # float32 asked for where the run trained in bf16
    assert main(["evaluate", CODE, "--amp", "fp32", "--workdir", str(ws.root)]) == 0
    assert asked["evaluate"][1].finetune == run.finetune and run.finetune.amp is None
    _run_summary(ws, amp="bf16", space="mobile_peers")
    assert main(["fit-predictor", "--n", "4", "--workdir", str(ws.root)]) == 0
    request = asked["fit_predictor"][1]
    assert request.finetune == dataclasses.replace(run.finetune, amp="bf16") and request.val_images == run.val_images
    assert request.space.name == "mobile_peers"  # the space the run searched
    # no run summary: the command's own defaults
    assert main(["evaluate", CODE, "--workdir", str(tmp_path / "bare")]) == 0
    request = asked["evaluate"][1]
    assert request.finetune == finetune_config(steps=300) and request.val_images is None and request.score_at == "train"


def test_evaluate_from_search_reads_the_workspace_list(tmp_path, asked, capsys):
    ws = Workspace(tmp_path / "w")
    assert main(["evaluate", "--from-search", "--workdir", str(ws.root)]) == 2
    assert "ffnet-nas search" in capsys.readouterr().err
    ws.pareto_path.parent.mkdir(parents=True)
    pd.DataFrame({"code": [CODE, "x"]}).to_csv(ws.pareto_path, index=False)
    assert main(["evaluate", "--from-search", "--top", "1", "--workdir", str(ws.root)]) == 0
    assert [a.code for a in asked["evaluate"][1].points] == [CODE]  # no list: the front
    pd.DataFrame({"rank": [1]}).to_csv(ws.to_evaluate_path, index=False)
    assert main(["evaluate", "--from-search", "--workdir", str(ws.root)]) == 2  # the list wins, and is checked
    assert str(ws.to_evaluate_path) in capsys.readouterr().err


def test_fit_predictor_builds_its_request_and_says_where_it_wrote(tmp_path, asked, capsys):
    w = str(tmp_path / "w")
    assert main(["fit-predictor", "--n", "5", "--seed", "3", "--steps", "9", "--val-images", "4", "--lut", "t",
                 "--workdir", w]) == 0
    _, request = asked["fit_predictor"]
    assert (request.points, request.seed, request.val_images, request.lut, request.refit_only) == (5, 3, 4, "t", False)
    assert request.finetune == finetune_config(steps=9) and request.space.name == "mobile"
    assert capsys.readouterr().out.splitlines()[-1] == "wrote p/accuracy.json and p/loo.csv"
    assert main(["fit-predictor", "--refit-only", "--workdir", w]) == 0
    assert asked["fit_predictor"][1] == steps.PredictorRequest(refit_only=True)
    assert main(["fit-predictor", "--refit-only", "--features", "nsr", "--workdir", w]) == 0
    assert asked["fit_predictor"][1] == steps.PredictorRequest(refit_only=True, features="nsr")
    assert "ridge on the choices features" in capsys.readouterr().out


def test_report_builds_its_request(tmp_path, asked, capsys):
    assert main(["report", "--pareto", "--format", "html", "--out", str(tmp_path / "r"), "--lut", "t",
                 "--study", "s", "--workdir", str(tmp_path / "w")]) == 0
    assert asked["report"][1] == steps.ReportRequest(formats=("html",), paper=False, pareto=True,
                                                     out_dir=tmp_path / "r", lut="t", study="s")
    assert main(["report", "--workdir", str(tmp_path / "w")]) == 0
    request = asked["report"][1]
    assert request.paper and request.pareto and request.out_dir is None  # neither flag: both; the workdir's folder


@pytest.mark.parametrize("teacher, extra, classes", [
    (False, [], 8),  # no teacher: the embedded data's 8 classes, not Cityscapes' 19
    (False, ["--data", "cityscapes:/nowhere"], 19),  # the data named (its class count needs no files)
    (True, [], NUM_CLASSES),  # the teacher's
    (True, ["--num-classes", "3"], 3),  # an explicit override wins
])
def test_measure_latency_times_the_head_for_the_workdirs_classes(tmp_path, asked, capsys, teacher, extra, classes):
    ws = Workspace(tmp_path / "w")
    if teacher:
        _teacher(ws)
    argv = ["measure-latency", "--input-size", "32x64", "--threads", "1", "--calibrate", "0", *extra,
            "--workdir", str(ws.root)]
    assert main(argv) == 0
    assert asked["measure_latency"][1].spec.num_classes == classes
    assert f"head of {classes} classes" in capsys.readouterr().out


def test_workdir_num_classes_teacher_then_table_then_data(tmp_path):
    from ffnet_nas.predictors.latency.build import make_spec
    from ffnet_nas.space.io import atomic_write_json

    ws = Workspace(tmp_path / "w")
    assert steps.workdir_num_classes(ws) == 8 and steps.workdir_num_classes(ws, data="ade20k:/x") == 150
    lut = ws.lut_dir / "cpu-fp32-eager-b1-32x64-t1.csv"
    lut.parent.mkdir(parents=True)
    lut.write_text("key,kind,estimate_ms,median_ms,p25_ms,min_ms,max_ms,iqr_ms,n,stable,seconds,rounds,round_ms\n")
    atomic_write_json(lut.with_suffix(".json"),
                      {"spec": make_spec(device="cpu", input_hw=(32, 64), threads=1, num_classes=19).to_dict()})
    assert steps.workdir_num_classes(ws, lut_path=lut) == 19  # the head the search's table timed
    _teacher(ws)
    assert steps.workdir_num_classes(ws, lut_path=lut, data="ade20k:/x") == NUM_CLASSES  # the teacher first
