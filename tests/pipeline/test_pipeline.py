"""`ffnet-nas run` end to end on a micro setting, and killed (SIGKILL) at several steps.

The default suite reads one shared finished run (tests/pipeline/conftest.py): moved and run again, it
redoes nothing; a run killed once a point is fine-tuned keeps that point and finishes. The run killed at every step in turn
(about 100 s) is marked slow."""

import dataclasses
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ffnet_nas.pipeline import default_target, get_budget, nearest_published
from ffnet_nas.space import InvalidInput
from tests.helpers.micro import run_command, unbuffered_env


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
    # the micro space holds no published variant (its widths are 16-64): no rival, and the line says so
    assert summary["published_rivals"]["within"] == 0 and summary["published_rivals"]["strongest"] is None
    assert (workdir / "report" / "index.html").stat().st_size > 1000
    # the table's scale checked against the timings of every point fine-tuned with it (design points included)
    drift = summary["latency_drift"]
    assert drift["n"] == len(evaluated) and drift["low"] <= drift["ratio"] <= drift["high"]
    assert isinstance(drift["drifted"], bool)


def _without_provenance(obj):
    if isinstance(obj, dict):
        return {k: _without_provenance(v) for k, v in obj.items() if k != "provenance"}
    if isinstance(obj, list):
        return [_without_provenance(v) for v in obj]
    return obj


def test_run_micro_end_to_end_then_skips_everything_after_a_move(micro_run, tmp_path):
    assert "best found:" in micro_run.stdout and "time per step" in micro_run.stdout
    assert "the latency table against the " in micro_run.stdout and "points timed with it in this workdir" in micro_run.stdout
    # relocatable: the shared run, copied elsewhere, reads its own files only; no file records where
    # the run was made
    workdir = tmp_path / "elsewhere" / "run"
    shutil.copytree(micro_run.workdir, workdir)
    _check_artifacts(workdir)
    for path in workdir.rglob("*"):
        # report/ is written for people (it names its inputs) and never read back; provenance
        # records say where a file was made, which stays true after a move
        if path.suffix in (".json", ".csv", ".journal") and "report" not in path.relative_to(workdir).parts:
            text = path.read_text(errors="replace")
            if path.suffix == ".json":
                text = json.dumps(_without_provenance(json.loads(text)))
            assert str(micro_run.workdir) not in text, path
    evaluated_before = (workdir / "evaluated.csv").read_text()
    blocks_before = (workdir / "library" / "blocks.csv").read_text()
    again = subprocess.run(run_command(workdir, micro_run.space), capture_output=True, text=True, env=unbuffered_env(),
                           timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "teacher exists" in again.stdout and ", 0 trained now," in again.stdout and "(0 measured now)" in again.stdout
    assert (workdir / "library" / "blocks.csv").read_text() == blocks_before
    assert (workdir / "evaluated.csv").read_text() == evaluated_before  # nothing finished was redone


def test_run_killed_once_a_point_is_fine_tuned_keeps_it_and_finishes(tmp_path, space_file):
    """SIGKILL as soon as the first point's row is on disk (the predictor's design points are the
    first fine-tuned): the next run keeps that row as it was and finishes. (Every step killed in
    turn: the slow test below.)"""
    workdir = tmp_path / "run"
    log = tmp_path / "killed.log"
    with log.open("w") as out:
        proc = subprocess.Popen(run_command(workdir, space_file), stdout=out, stderr=subprocess.STDOUT,
                                env=unbuffered_env())
        deadline = time.time() + 600
        # rows are written atomically (a whole new file), so a row read here is a finished point
        while proc.poll() is None and time.time() < deadline:
            if (workdir / "evaluated.csv").exists() and len(pd.read_csv(workdir / "evaluated.csv")) >= 1:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    seen = log.read_text()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{seen[-2000:]}"
    assert "[7/7]" not in seen, f"the kill landed after the last step began:\n{seen[-2000:]}"
    before = pd.read_csv(workdir / "evaluated.csv").set_index(["code", "init"])
    assert len(before) >= 1
    final = subprocess.run(run_command(workdir, space_file), capture_output=True, text=True, env=unbuffered_env(),
                           timeout=900)
    assert final.returncode == 0, final.stderr[-2000:]
    assert "teacher exists" in final.stdout and ", 0 trained now," in final.stdout  # what finished was not redone
    _check_artifacts(workdir)
    after = pd.read_csv(workdir / "evaluated.csv").set_index(["code", "init"])
    # a finished point is kept as it was: a redone one would have been timed again
    pd.testing.assert_frame_equal(after.loc[before.index], before)
    assert len(after) > len(before)


SLOW_STEPS = {"budget": {"name": "micro", "distill": {"block": {"steps": 100}},
                         "latency": {"protocol": {"min_repeats": 10, "max_repeats": 20, "max_seconds": 0.5}},
                         "search": {"trials": 600}, "evaluate": {"top": 3, "finetune": {"steps": 60}}}}


@pytest.mark.slow
def test_run_survives_sigkill_at_every_step(tmp_path, space_file):
    workdir = tmp_path / "run"
    config = tmp_path / "slow.yaml"
    config.write_text(yaml.safe_dump(SLOW_STEPS))
    cmd = [*run_command(workdir, space_file), "--config", str(config)]
    del cmd[cmd.index("--budget"):cmd.index("--budget") + 2]  # a --budget flag would override the file's
    # kill shortly after each of these steps starts, then re-run; the last run finishes
    for marker, delay in (("[2/7] distill", 2.0), ("[3/7] latency", 1.5), ("[4/7] predictor", 3.0),
                          ("[5/7] search", 1.0), ("[6/7] evaluate", 1.0)):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=unbuffered_env())
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
    final = subprocess.run(cmd, capture_output=True, text=True, env=unbuffered_env(), timeout=900)
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
    from ffnet_nas.closing import describe
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
    assert "published variants within the target" not in text  # a summary from before the rivals line
    assert "chase stopped" not in text  # a summary from before stalled chases stopped
    stopped = dataclasses.replace(summary, rounds=[{**summary.rounds[0], "stopped": "raised the best find by +0.10"}])
    assert "the rival chase stopped after round 1: it raised the best find by +0.10" in "\n".join(describe(stopped))
    assert "latency table against" not in text  # a summary from before the table's scale was checked
    drifted = dataclasses.replace(summary, latency_drift={"n": 22, "ratio": 0.75, "low": 0.71, "high": 0.79,
                                                          "drifted": True})
    assert ("the latency table against the 22 points timed with it in this workdir: they ran at 0.75x [0.71, 0.79] "
            "their predicted latency: this machine runs faster than the table says") in "\n".join(describe(drifted))
    few = dataclasses.replace(summary, latency_drift={"n": 2, "ratio": None, "low": None, "high": None, "drifted": False})
    assert "latency table against" not in "\n".join(describe(few))
    summary = dataclasses.replace(summary, beats_reference=False, held_out_confirms=None, rounds=[])
    text = "\n".join(describe(summary))
    assert "same device and data): no" in text and "held-out" not in text and "refine rounds" not in text
    rivals = {"limit_ms": 20.5, "within": 6, "measured": ["segmentation_ffnet74NS_CBB_mobile", "x"], "margin": -0.5,
              "beats": False, "strongest": {"name": "x", "code": "c", "accuracy": 47.86, "predicted_latency_ms": 18.0},
              "found_ms": 15.56}
    text = "\n".join(describe(dataclasses.replace(summary, published_rivals=rivals, win_check={"text": "w",
                                                                                              "largest_same_point": 0.8})))
    assert ("published variants within the target: 6, 2 of them measured in this workdir; "
            "the most accurate: x  mIoU 47.86  18.00 ms (table); the found point is more accurate: NO (-0.50), "
            "and it is faster (15.56 ms, table); the same point differed by up to 0.80 between seeds: "
            "the margin is NOT larger than that") in text
    checked = dataclasses.replace(summary, published_rivals=rivals, rival_check={"text": "win over the strongest published rival …"})
    lines = describe(checked)
    assert lines[[i for i, line in enumerate(lines) if line.startswith("published variants")][0] + 1] == \
        "win over the strongest published rival …"  # the rival's check right below its line


def test_the_table_drift_counts_only_timings_taken_against_the_table_as_it_is(micro_run, tmp_path, capsys):
    from bench.bench_table_drift import drift_of, main

    summary = json.loads((micro_run.workdir / "run_summary.json").read_text())
    _, drift = drift_of(micro_run.workdir)
    assert drift.to_dict() == summary["latency_drift"]  # the bench's figure is the run's own
    main([str(micro_run.workdir)])
    assert f"| {drift.n} | {drift.ratio:.2f}x" in capsys.readouterr().out
    # rows timed against an older table of the same name (measured again since) predict other
    # milliseconds than the table does now: they are left out, not compared with it
    workdir = tmp_path / "run"
    shutil.copytree(micro_run.workdir, workdir)
    evaluated = pd.read_csv(workdir / "evaluated.csv")
    evaluated.loc[evaluated.index[:2], "predicted_latency_ms"] *= 1.5
    evaluated.to_csv(workdir / "evaluated.csv", index=False)
    _, fewer = drift_of(workdir)
    assert fewer.n == drift.n - 2


def test_evaluate_alone_prints_the_tables_drift_over_the_workdirs_timed_points(micro_run, tmp_path, capsys):
    from bench.bench_table_drift import drift_of
    from ffnet_nas.cli import main

    workdir = tmp_path / "run"
    shutil.copytree(micro_run.workdir, workdir)
    _, before = drift_of(workdir)  # the micro run's own ratio: whatever this machine's load made it
    evaluated = pd.read_csv(workdir / "evaluated.csv")
    # every timing scaled so the whole interval ends at half the table's milliseconds: the machine "ran
    # twice as fast" as its table says, which the line must show (scaled from the run's own interval,
    # not from 1: the micro run's timings drift with the machine's load)
    scale = 0.5 / before.high
    evaluated["measured_latency_ms"] *= scale
    evaluated.to_csv(workdir / "evaluated.csv", index=False)
    table, drift = drift_of(workdir)
    # a geometric mean and its bootstrap percentiles (same resamples) scale with the timings
    assert drift.n == before.n and drift.ratio == pytest.approx(scale * before.ratio)
    assert drift.high == pytest.approx(0.5) and drift.drifted
    assert main(["evaluate", evaluated["code"].iloc[0], "--workdir", str(workdir)]) == 0  # already there
    out = capsys.readouterr().out
    assert f"{table}: {drift.text()}" in out and "this machine runs faster than the table says" in out


def test_a_table_no_longer_in_lut_or_never_named_has_no_drift(micro_run, tmp_path):
    from ffnet_nas.evaluate.drift import table_drifts
    from ffnet_nas.workspace import Workspace

    workdir = tmp_path / "run"
    shutil.copytree(micro_run.workdir, workdir)
    ws = Workspace(workdir)
    name = pd.read_csv(workdir / "evaluated.csv")["latency_table"].dropna().iloc[0]
    assert set(table_drifts(ws, [name, float("nan"), "", name])) == {name}  # once; no name is no table
    (ws.lut_dir / name).unlink()  # deleted, as the drift line tells a user to do
    assert table_drifts(ws, [name]) == {}
