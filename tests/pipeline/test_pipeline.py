"""`ffnet-nas run` end to end on a micro setting, and killed (SIGKILL) at several steps."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ffnet_nas.pipeline import default_target, get_budget, nearest_published
from ffnet_nas.space import InvalidInput

TINY = {"base": "mobile", "name": "tiny", "stems": ["B"], "up_heads": ["B"], "seg_heads": ["B", "C"],
        "stages": {4: {"depths": [[1, 2], [1], [1], [1]], "widths": [[16], [32], [48], [64]]}},
        "first_strides": [1, 2], "pre_downs": [False], "input_size": "32x64"}


def _cmd(workdir: Path, space: Path) -> list[str]:
    return [sys.executable, "-m", "ffnet_nas", "run", "--budget", "micro", "--space", str(space),
            "--workdir", str(workdir), "--no-progress", "--threads", "1"]


def _env():
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _check_artifacts(workdir: Path) -> None:
    summary = json.loads((workdir / "run_summary.json").read_text())
    for name in ("teacher", "library", "lut", "search", "evaluated", "report"):
        recorded = Path(summary["files"][name])
        assert not recorded.is_absolute(), (name, recorded)  # relative to the workdir: it can be moved
        assert (workdir / recorded).exists(), name
    blocks = pd.read_csv(workdir / "library" / "blocks.csv")
    assert not blocks.duplicated(["position", "choice"]).any() and (blocks["status"] == "ok").all()
    lut = pd.read_csv(workdir / summary["files"]["lut"])
    assert not lut.duplicated("key").any()
    evaluated = pd.read_csv(workdir / "evaluated.csv")
    assert not evaluated.duplicated(["code", "init"]).any()
    assert evaluated["measured_miou"].between(0, 100).all()
    assert evaluated["measured_latency_ms"].notna().all()
    pareto = pd.read_csv(workdir / "search" / "pareto.csv")
    assert len(pareto) >= 1 and "code" in pareto.columns
    assert summary["target"].startswith("latency<=")
    assert summary["best"] is not None
    assert (workdir / "report" / "index.html").stat().st_size > 1000


def _without_provenance(obj):
    if isinstance(obj, dict):
        return {k: _without_provenance(v) for k, v in obj.items() if k != "provenance"}
    if isinstance(obj, list):
        return [_without_provenance(v) for v in obj]
    return obj


@pytest.fixture()
def space_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_run_micro_end_to_end_then_skips_everything(tmp_path, space_file):
    workdir = tmp_path / "run"
    first = subprocess.run(_cmd(workdir, space_file), capture_output=True, text=True, env=_env(), timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    _check_artifacts(workdir)
    assert "best found:" in first.stdout and "time per step" in first.stdout
    evaluated_before = (workdir / "evaluated.csv").read_text()
    blocks_before = (workdir / "library" / "blocks.csv").read_text()
    second = subprocess.run(_cmd(workdir, space_file), capture_output=True, text=True, env=_env(), timeout=900)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "teacher exists" in second.stdout and "0 trained now" in second.stdout and "(0 measured now)" in second.stdout
    assert (workdir / "library" / "blocks.csv").read_text() == blocks_before
    assert (workdir / "evaluated.csv").read_text() == evaluated_before  # nothing finished was redone
    # relocatable: no file records where the workdir was; moved, it reads its own files only
    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    workdir.rename(moved)
    for path in moved.rglob("*"):
        # report/ is written for people (it names its inputs) and never read back; provenance
        # records say where a file was made, which stays true after a move
        if path.suffix in (".json", ".csv", ".journal") and "report" not in path.relative_to(moved).parts:
            text = path.read_text(errors="replace")
            if path.suffix == ".json":
                text = json.dumps(_without_provenance(json.loads(text)))
            assert str(workdir) not in text, path
    third = subprocess.run(_cmd(moved, space_file), capture_output=True, text=True, env=_env(), timeout=900)
    assert third.returncode == 0, third.stderr[-2000:]
    assert "0 trained now" in third.stdout and "(0 measured now)" in third.stdout
    assert (moved / "evaluated.csv").read_text() == evaluated_before
    assert not workdir.exists()


# Each step made long enough (5-20 s here) that a kill 1-3 s after its marker lands inside it;
# the test checks that it did, so a step that got faster cannot turn the test into a no-op.
SLOW_STEPS = {"budget": {"name": "micro", "distill": {"block": {"steps": 100}},
                         "latency": {"protocol": {"min_repeats": 10, "max_repeats": 20, "max_seconds": 0.5}},
                         "search": {"trials": 600}, "evaluate": {"top": 3, "finetune": {"steps": 60}}}}


def test_run_survives_sigkill_at_every_step(tmp_path, space_file):
    workdir = tmp_path / "run"
    config = tmp_path / "slow.yaml"
    config.write_text(yaml.safe_dump(SLOW_STEPS))
    cmd = [*_cmd(workdir, space_file), "--config", str(config)]
    del cmd[cmd.index("--budget"):cmd.index("--budget") + 2]  # a --budget flag would override the file's
    # kill shortly after each of these steps starts, then re-run; the last run finishes
    for marker, delay in (("[2/7] distill", 2.0), ("[3/7] latency", 1.5), ("[4/7] predictor", 3.0),
                          ("[5/7] search", 1.0), ("[6/7] evaluate", 1.0)):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
        seen = ""
        deadline = time.time() + 600
        for line in proc.stdout:
            seen += line
            if marker in line or time.time() > deadline:
                break
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen += proc.stdout.read()  # what it printed up to the kill
        assert marker in seen, seen[-2000:]
        # the kill landed in the step it targets: the pipeline never announced the next one
        step = int(marker[1])
        assert f"[{step + 1}/7]" not in seen, f"the kill meant for {marker} landed later:\n{seen[-1500:]}"
    final = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    assert final.returncode == 0, final.stderr[-2000:]
    _check_artifacts(workdir)
    # no trial lost or duplicated in the journal-backed study, although the search was killed once:
    # exactly the budget's COMPLETE trials (fewer: lost; more: the resume ran some again), the
    # trial the kill interrupted failed on resume (not left RUNNING), and no number used twice
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(workdir / "search" / "study.journal")))
    summaries = optuna.study.get_all_study_summaries(storage)
    assert len(summaries) == 1, [s.study_name for s in summaries]
    study = optuna.load_study(study_name=summaries[0].study_name, storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == SLOW_STEPS["budget"]["search"]["trials"]
    assert optuna.trial.TrialState.RUNNING not in states
    assert states.count(optuna.trial.TrialState.FAIL) <= 1
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers)))


def test_default_target_and_reference_choice():
    ms = {"a": 10.0, "b": 20.0, "c": 30.0}
    assert default_target(ms) == "latency<=20.0ms"
    assert nearest_published(ms, 25.0) == "b"  # slowest one within the limit
    assert nearest_published(ms, 5.0) == "a"  # none within: the fastest
    with pytest.raises(InvalidInput):
        default_target({})
    with pytest.raises(InvalidInput, match="did you mean: quick"):
        get_budget("quik")


def test_run_rejects_bad_input_before_any_work(tmp_path, space_file, capsys):
    from ffnet_nas.cli import main

    for argv, fragment in (
        (["--budget", "huge"], "unknown budget"),
        (["--target", "latency<<3ms"], "latency"),
        (["--device", "cuda:0"], "cuda"),
        (["--space", "nosuch"], "unknown space"),
    ):
        assert main(["run", "--space", str(space_file), "--workdir", str(tmp_path / "w"), *argv]) == 2
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1, err
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").rglob("*.pt"))


def test_closing_lines_give_verdict_held_out_check_and_rounds():
    from ffnet_nas.pipeline import describe
    from ffnet_nas.run_summary import RunSummary

    best = {"code": "stemC-basic-d8.24.8-w64.128.256-s2-upC-segC-nearest", "measured_miou": 47.36,
            "measured_latency_ms": 15.52, "predicted_latency_ms": 15.56, "held_out_miou": 45.82}
    ref = {"code": "stemC-basic-d8.12.16-w64.128.256-s2-upB-segB-nearest", "measured_miou": 46.17,
           "measured_latency_ms": 19.40, "held_out_miou": 46.0}
    summary = RunSummary(budget="quick", space="mobile", device="cpu", target="latency<=20.5ms",
                         reference="segmentation_ffnet74NS_CBB_mobile", best=best, reference_row=ref,
                         beats_reference=True, held_out_confirms=False,
                         rounds=[{"index": 1, "fitted_on": 15, "kendall_tau": 0.61, "points": ["a", "b", "c"]}])
    text = "\n".join(describe(summary))
    assert "best found: stemC-basic-d8.24.8" in text and "mIoU 47.36  15.52 ms" in text
    assert "beats it (higher measured mIoU at lower measured latency, same device and data): yes" in text
    assert "45.82 vs 46.00, NOT more accurate there too" in text
    assert "refine rounds: 1, 3 more point(s) evaluated; last predictor fitted on 15 points" in text
    summary = dataclasses.replace(summary, beats_reference=False, held_out_confirms=None, rounds=[])
    text = "\n".join(describe(summary))
    assert "same device and data): no" in text and "held-out" not in text and "refine rounds" not in text
