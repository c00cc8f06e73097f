"""`ffnet-nas run` on the user's data in its real layout, trained at one size and deployed at
another: every step uses the data, the class count is the data's, and each file says which size
it is at. Also a teacher the user brings (--teacher), and the refusals that cost nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.helpers.trees import make_tree, write_pool

REPO = Path(__file__).resolve().parents[2]
TRAIN, DEPLOY = "32x64", "64x128"


def _run(workdir: Path, space: Path, *extra: str, score_at: str = "train") -> subprocess.CompletedProcess:
    config = workdir.parent / f"{workdir.name}.yaml"  # the micro budget, scoring at `score_at`
    config.write_text(yaml.safe_dump({"budget": {"name": "micro", "evaluate": {"score_at": score_at}}}))
    cmd = [sys.executable, "-m", "ffnet_nas", "run", "--config", str(config), "--space", str(space), "--workdir",
           str(workdir), "--no-progress", "--threads", "1", "--train-size", TRAIN, "--input-size", DEPLOY, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)})


def _check(workdir: Path, *, classes: int, data_kind: str, stdout: str, score_hw: str) -> dict:
    summary = json.loads((workdir / "run_summary.json").read_text())
    for name in ("teacher", "library", "lut", "search", "evaluated", "report"):
        assert (workdir / summary["files"][name]).exists(), name
    assert summary["data"].startswith(f"{data_kind}:") and summary["train_hw"] == [32, 64]
    assert summary["input_hw"] == [64, 128]
    assert f"trained at {TRAIN}, deployment input {DEPLOY}" in stdout
    teacher = torch.load(workdir / "teacher" / "teacher.pt", weights_only=True)
    assert teacher["num_classes"] == classes and teacher["data"].startswith(f"{data_kind}:")
    assert teacher["input_hw"] == [32, 64]
    lut = workdir / summary["files"]["lut"]
    meta = json.loads(lut.with_suffix(".json").read_text())
    assert tuple(meta["spec"]["input_hw"]) == (64, 128) and meta["spec"]["num_classes"] == classes
    assert "64x128" in lut.stem
    evaluated = pd.read_csv(workdir / "evaluated.csv")
    assert (evaluated["input_hw"] == DEPLOY).all() and (evaluated["train_hw"] == TRAIN).all()
    assert (evaluated["score_hw"] == score_hw).all()
    assert evaluated["measured_latency_ms"].notna().all() and evaluated["measured_miou"].between(0, 100).all()
    blocks = pd.read_csv(workdir / "library" / "blocks.csv")
    assert (blocks["status"] == "ok").all()
    return summary


def test_run_on_a_cityscapes_tree_trains_small_and_deploys_large(tmp_path, space_file):
    root = tmp_path / "cityscapes"
    make_tree(root, hw=(48, 96), cities=("aachen", "bochum", "cologne", "dusseldorf"))  # 8 images per split
    out = _run(tmp_path / "run", space_file, "--data", f"cityscapes:{root}", score_at="input")
    assert out.returncode == 0, out.stderr[-3000:]
    _check(tmp_path / "run", classes=19, data_kind="cityscapes", stdout=out.stdout, score_hw=DEPLOY)
    # what it found, taken away at the deployment size with the data's class names
    from ffnet_nas.cli import main
    from ffnet_nas.data.cityscapes import CLASS_NAMES
    from ffnet_nas.space.deploy import read_onnx_metadata

    onnx_file = tmp_path / "best.onnx"
    assert main(["export", "--from-run", str(tmp_path / "run"), "--onnx", str(onnx_file), "--exporter", "torchscript",
                 "--opset", "17"]) == 0
    meta = read_onnx_metadata(onnx_file)
    assert meta["input_size"] == meta["deploy_input_size"] == DEPLOY and meta["train_input_size"] == TRAIN
    assert json.loads(meta["class_names"]) == list(CLASS_NAMES) and meta["data"].startswith("cityscapes:")


def test_run_on_a_folder_with_three_classes_and_a_teacher_it_is_given(tmp_path, space_file):
    root = tmp_path / "folder"
    write_pool(root, 40, hw=(40, 80), classes=3)  # 36 train, 4 val
    first = _run(tmp_path / "run", space_file, "--data", f"folder:{root}", score_at="native")
    assert first.returncode == 0, first.stderr[-3000:]
    _check(tmp_path / "run", classes=3, data_kind="folder", stdout=first.stdout, score_hw="native")
    # the teacher of that run, given to a new one: loaded (strict), not trained; rescored on this data
    given = tmp_path / "run" / "teacher" / "teacher.pt"
    second = _run(tmp_path / "again", space_file, "--data", f"folder:{root}", "--teacher", str(given), score_at="native")
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"teacher loaded from {given}" in second.stdout
    a = torch.load(given, weights_only=True)
    b = torch.load(tmp_path / "again" / "teacher" / "teacher.pt", weights_only=True)
    assert b["source"] == str(given) and b["steps"] == 0
    assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())
    # the same workdir with another teacher: refused, nothing replaced
    other = tmp_path / "other.pt"
    other.write_bytes(given.read_bytes())
    third = _run(tmp_path / "again", space_file, "--data", f"folder:{root}", "--teacher", str(other), score_at="native")
    assert third.returncode == 2 and "expected the same --teacher" in third.stderr and third.stderr.count("\n") == 1


def test_an_official_teacher_of_another_class_count_names_both_counts(tmp_path, space_file):
    from ffnet_nas.pipeline import get_budget
    from ffnet_nas.space.builder import build_model

    root = tmp_path / "folder"
    write_pool(root, 12, hw=(40, 80), classes=3)
    official = tmp_path / "ffnet_official.pth"  # a plain state dict, as the official files are
    torch.save(build_model(get_budget("micro").teacher.arch, num_classes=19).state_dict(), official)
    out = _run(tmp_path / "run", space_file, "--data", f"folder:{root}", "--teacher", str(official))
    assert out.returncode == 2, out.stderr[-2000:]
    line = out.stderr.strip()
    assert "predicts 19 classes" in line and "has 3" in line and "\n" not in line and "Traceback" not in out.stderr
    assert not (tmp_path / "run" / "teacher" / "teacher.pt").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--device", "cuda"], "cuda"),
    (["--amp", "fp16"], "float16 autocast needs a CUDA device"),
    (["--train-size", "32by64"], "malformed input size '32by64'"),
    (["--input-size", "4x4"], "out of range"),
    (["--teacher", "/nonexistent/teacher.pt"], "teacher file '/nonexistent/teacher.pt' not found"),
    (["--init", "imagenet:/nonexistent.pth"], "init file '/nonexistent.pth' not found"),
    (["--init", "resnet.pth"], "expected imagenet:FILE"),
    (["--data", "cityscapes:/nonexistent"], "cityscapes"),
])
def test_bad_run_settings_are_one_line_before_any_work(tmp_path, space_file, capsys, argv, fragment):
    from ffnet_nas.cli import main

    if torch.cuda.is_available() and "cuda" in argv[-1]:
        pytest.skip("this machine has a GPU")
    workdir = tmp_path / "w"
    assert main(["run", "--budget", "micro", "--space", str(space_file), "--workdir", str(workdir), *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not workdir.exists() or not any(workdir.rglob("*.pt"))
