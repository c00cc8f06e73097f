"""Every artifact a finished `run` leaves, damaged every way a file gets damaged: the next `run`,
`search` and `report` repair it and finish, or stop with one line naming the file and saying what
to do. Never a traceback, never another exit status.

The whole matrix (24 artifacts x 5 damages x 3 commands, ~11 min here) is marked slow; the default
run takes one damage per kind of file through `run`, and plants a code-running pickle at every torch
file the tool reads."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

LUT = "lut/cpu-fp32-eager-b1-32x64-t1"
ARTIFACTS = {
    "teacher": "teacher/teacher.pt", "train_state": "teacher/train_state.pt", "library_meta": "library/library.json",
    "blocks_csv": "library/blocks.csv", "block_file": "library/blocks/*.pt", "features": "library/features/val.pt",
    "lut_csv": f"{LUT}.csv", "lut_meta": f"{LUT}.json", "lut_calibration": f"{LUT}.calibration.json",
    "lut_e2e": f"{LUT}.e2e.csv", "lut_validation": f"{LUT}.validation.csv", "predictor": "predictor/accuracy.json",
    "loo": "predictor/loo.csv", "evaluated": "evaluated.csv", "model": "evaluated/*/model.pt",
    "journal": "search/study.journal", "search_summary": "search/summary.json", "pareto": "search/pareto.csv",
    "run_summary": "run_summary.json", "data": "data/synthetic-v1-seed0-val-32x64-n128.pt",
    "zero_shot": "zero_shot.csv", "zero_shot_stage": "predictor/zero_shot.json", "reranked": "search/reranked.csv",
    "training_precision": "training_precision.json",
}
DAMAGES = ("truncate", "garble", "empty", "torn", "duplicate")  # the last two: text files only
TEXT = (".csv", ".json", ".journal")


def damage(kind: str, data: bytes) -> bytes:
    if kind == "truncate":
        return data[: len(data) // 2]
    if kind == "garble":  # bytes overwritten in the middle (a disk error, a bad copy)
        middle = len(data) // 2
        return data[:middle] + b"\xff\x00\xfe" * 6 + data[middle + 18:]
    if kind == "empty":
        return b""
    lines = data.rstrip(b"\n").splitlines()
    if kind == "torn":  # the last line cut in half, no newline after it
        return b"\n".join(lines[:-1] + [lines[-1][: max(1, len(lines[-1]) // 2)]])
    if kind == "duplicate":
        return data + lines[-1] + b"\n"
    raise ValueError(kind)


def _commands(space: Path) -> dict[str, list[str]]:
    return {"run": ["run", "--budget", "micro", "--space", str(space), "--no-progress", "--threads", "1"],
            "search": ["search", "--target", "latency<5ms", "--space", str(space), "--no-progress"],
            "report": ["report", "--format", "html"]}


def _check(micro_run, tmp_path, artifact: str, kind: str, command: str) -> None:
    from ffnet_nas.cli import main

    # the session's shared run (tests/pipeline/conftest.py), damaged in a copy
    base, space = micro_run.workdir, micro_run.space
    workdir = tmp_path / "w"
    shutil.copytree(base, workdir)
    matches = sorted(workdir.glob(ARTIFACTS[artifact]))
    assert matches, f"the micro run left no {ARTIFACTS[artifact]}"
    target = matches[0]
    if kind in ("torn", "duplicate") and target.suffix not in TEXT:
        pytest.skip("a binary file has no rows")
    target.write_bytes(damage(kind, target.read_bytes()))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(_commands(space)[command] + ["--workdir", str(workdir)])
    out, err = out.getvalue(), err.getvalue()
    assert "Traceback" not in out + err, err[-3000:]
    assert code in (0, 2), (code, err[-2000:])
    errors = [line for line in err.splitlines() if ": error: " in line]
    if code == 2:
        assert len(errors) == 1, err[-2000:]
        assert target.name in errors[0], f"the error line does not name {target.name}: {errors[0]}"
    else:
        assert not errors, err[-2000:]
        if command == "run":  # finished: what it left reads back cleanly
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as again:
                assert main(_commands(space)["report"] + ["--workdir", str(workdir)]) == 0, again.getvalue()[-2000:]


# one damage per kind of file, through `run` (the default suite)
QUICK = [("evaluated", "torn"), ("blocks_csv", "garble"), ("lut_csv", "duplicate"), ("lut_e2e", "empty"),
         ("journal", "garble"), ("block_file", "garble"), ("teacher", "truncate"), ("predictor", "torn"),
         ("zero_shot", "garble"), ("zero_shot_stage", "truncate"), ("training_precision", "empty")]


@pytest.mark.parametrize("artifact, kind", QUICK, ids=[f"{a}-{k}" for a, k in QUICK])
def test_run_after_damage_repairs_or_names_the_file(micro_run, tmp_path, artifact, kind):
    _check(micro_run, tmp_path, artifact, kind, "run")


@pytest.mark.slow
@pytest.mark.parametrize("command", ("run", "search", "report"))
@pytest.mark.parametrize("kind", DAMAGES)
@pytest.mark.parametrize("artifact", list(ARTIFACTS))
def test_every_damage_of_every_artifact(micro_run, tmp_path, artifact, kind, command):
    _check(micro_run, tmp_path, artifact, kind, command)


PICKLED = [a for a, pattern in ARTIFACTS.items() if pattern.endswith(".pt")]


@pytest.mark.parametrize("command", ("run", "report"))
@pytest.mark.parametrize("artifact", PICKLED)
def test_a_pickle_planted_at_any_weight_path_never_runs(micro_run, tmp_path, artifact, command):
    """Every torch file the tool reads from a workdir, replaced by a pickle whose loading would
    create a file: nothing is created, and the command repairs or names the file."""
    import torch

    from ffnet_nas.cli import main
    from tests.helpers.hostile import Planted

    base, space = micro_run.workdir, micro_run.space
    workdir = tmp_path / "w"
    shutil.copytree(base, workdir)
    target = sorted(workdir.glob(ARTIFACTS[artifact]))[0]
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "payload": Planted(marker)}, target)
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(_commands(space)[command] + ["--workdir", str(workdir)])
    assert not marker.exists(), f"loading {target.name} ran code"
    assert code in (0, 2) and "Traceback" not in err.getvalue(), err.getvalue()[-2000:]
    if code == 2:
        assert target.name in err.getvalue().splitlines()[-1]
