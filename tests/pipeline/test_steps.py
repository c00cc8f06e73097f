"""The step functions (`ffnet_nas.steps`) give what their commands give: a command switched to its
step writes the same files. Real loaders, a latency table whose every unit takes 1 ms and an
accuracy predictor with made-up coefficients (the formats their packages write)."""

import shutil

import pandas as pd
import pytest

from ffnet_nas import steps
from ffnet_nas.search.targets import parse_targets
from ffnet_nas.workspace import Workspace
from tests.helpers.predictor_files import write_made_up_predictor, write_unit_latency_table
from tests.helpers.search_standins import tiny_space, write_tiny_space


@pytest.fixture()
def workdir(tmp_path):
    ws = Workspace(tmp_path / "w")
    space = tiny_space()
    csv = write_unit_latency_table(ws.lut_dir, space)
    write_made_up_predictor(ws.predictor_dir, space)
    return ws, space, csv


def test_search_step_writes_what_the_search_command_writes(workdir, tmp_path):
    from ffnet_nas.cli import main

    ws, space, _ = workdir
    request = steps.SearchRequest(space=space, targets=parse_targets("latency<60ms"), trials=15, num_classes=19,
                                  seed=0, out_dir=ws.search_dir, study_subdir=True, latest_dir=ws.search_dir,
                                  evaluate_top=2)
    out = steps.search(workspace=ws, request=request, progress=False)
    assert out.result.study_name == "tiny.latency_lt_60" and out.storage == ws.journal_path
    assert out.paths["pareto"] == ws.search_dir / out.result.study_name / "pareto.csv"
    assert out.paths["latest_pareto"] == ws.pareto_path
    listed = pd.read_csv(ws.to_evaluate_path)
    assert tuple(listed["code"]) == out.to_evaluate and len(out.to_evaluate) == 2  # the list in hand = the file
    front = pd.read_csv(out.paths["pareto"])

    # the command on a copy of the same inputs: same study, same front
    other = Workspace(tmp_path / "cli")
    for folder in ("lut_dir", "predictor_dir"):
        shutil.copytree(getattr(ws, folder), getattr(other, folder))
    code = main(["search", "--space", write_tiny_space(tmp_path / "tiny.yaml"), "--target", "latency<60ms",
                 "--trials", "15", "--seed", "0", "--evaluate-top", "2", "--no-progress", "--workdir", str(other.root)])
    assert code == 0
    assert pd.read_csv(other.search_dir / out.result.study_name / "pareto.csv").equals(front)
    assert list(pd.read_csv(other.to_evaluate_path)["code"]) == list(listed["code"])


def test_search_step_names_the_study_by_its_predictors_for_run_and_refine(workdir):
    ws, space, csv = workdir
    request = steps.SearchRequest(space=space, targets=parse_targets("latency<60ms"), trials=5, num_classes=19,
                                  study_per_predictors=True, lut=csv.stem)
    out = steps.search(workspace=ws, request=request, progress=False)
    assert out.result.study_name.startswith("tiny.latency_lt_60.") and out.paths == {}  # nothing written
    assert out.predictors.lut_path == csv


def test_fit_predictor_step_reuses_an_existing_predictor(workdir):
    ws, _, _ = workdir
    kept = steps.fit_predictor(workspace=ws, request=steps.PredictorRequest(refit_only=True, reuse=True), progress=False)
    assert not kept.fitted_now and kept.folder == ws.predictor_dir and kept.predictor.intercept == 50.0
