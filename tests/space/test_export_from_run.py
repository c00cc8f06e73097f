"""A found model taken away: `ffnet-nas export --from-run WORKDIR`, the ONNX metadata, and timm's `ffnet_nas_arch`.

The workdir is small but real: a teacher written by `save_teacher`, a fine-tuned point written by
`save_checkpoint` where `ffnet-nas evaluate` puts it, and a run_summary.json made from
`ffnet_nas.pipeline.RunSummary` the way `run_pipeline` writes it.
"""

import json
from dataclasses import asdict

import onnx
import pytest
import torch

from ffnet_nas.cli import main
from ffnet_nas.data.synthetic import CLASS_NAMES
from ffnet_nas.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ffnet_nas.distill.teacher import save_teacher
from ffnet_nas.run_summary import RunSummary
from ffnet_nas.space import InvalidInput, build_model
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.checkpoint import save_checkpoint
from ffnet_nas.space.deploy import read_onnx_metadata, run_onnx
from ffnet_nas.space.io import atomic_write_json, provenance
from ffnet_nas.workspace import Workspace

from tests.helpers.bn import randomise_bn

TEACHER = "stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest"
BEST = "stemB-basic-d1.1.1-w16.24.32-s2-upB-segB-nearest"
OTHER = "stemB-basic-d1.1.1.1-w16.24.32.40-s1-upB-segB-nearest"
HW = (32, 64)
K = len(CLASS_NAMES)


def _row(code: str, miou: float) -> dict:
    # the columns of ffnet_nas.evaluate.COLUMNS, as _finish_point fills them
    return {"code": code, "name": None, "init": "distilled", "params": 1, "macs": 1, "input_hw": f"{HW[0]}x{HW[1]}",
            "predicted_latency_ms": 1.0, "measured_latency_ms": 1.0, "latency_table": None, "predicted_miou": 10.0,
            "measured_miou": miou, "steps": 2, "seconds": 0.1, "checkpoint": None}


def _point(ws: Workspace, code: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = randomise_bn(build_model(code, num_classes=K), seed=seed).eval()
    save_checkpoint(ws.point_model_path(Arch.parse(code).stable_hash, "distilled"), model, data="synthetic:0",
                    init="distilled", steps=2)
    return model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished run's workdir: teacher, two evaluated points, evaluated.csv, run_summary.json."""
    import pandas as pd

    ws = Workspace(tmp_path_factory.mktemp("run"))
    torch.manual_seed(0)
    save_teacher(ws.teacher_path, build_model(TEACHER, num_classes=K).eval(), data="synthetic:0", input_hw=HW,
                 miou=0.0, class_names=CLASS_NAMES)
    models = {BEST: _point(ws, BEST, 1), OTHER: _point(ws, OTHER, 2)}
    rows = [_row(BEST, 40.0), _row(OTHER, 30.0)]
    for row in rows:
        row["checkpoint"] = ws.relative(ws.point_model_path(Arch.parse(row["code"]).stable_hash, "distilled"))
    pd.DataFrame(rows).to_csv(ws.evaluated_path, index=False)
    summary = RunSummary(budget="micro", space="mobile", device="cpu", target="latency<=1ms", best=rows[0])
    record = {**asdict(summary), "provenance": provenance(budget={}, config={"space": "mobile", "data": "synthetic:0"})}
    atomic_write_json(ws.run_summary_path, record)
    return ws, models


def _export(*argv: str) -> int:
    # the legacy tracer: a few seconds faster per file than dynamo, which the first test covers
    return main(["export", "--exporter", "torchscript", "--opset", "17", *argv])


def test_from_run_exports_the_best_model_with_its_weights_and_metadata(run_dir, tmp_path, capsys):
    ws, models = run_dir
    out = tmp_path / "best.onnx"
    # the command as documented: default exporter (dynamo) and opset
    assert main(["export", "--from-run", str(ws.root), "--onnx", str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    assert BEST in printed and "model.pt" in printed and ": OK" in printed
    # the file's outputs are the fine-tuned model's (not a fresh build of the code)
    x = torch.randn(1, 3, *HW, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = models[BEST](x)
    got = run_onnx(out, x)
    assert got.shape == ref.shape == (1, K, HW[0] // 4, HW[1] // 4)
    assert (got - ref).abs().max().item() <= 1e-4 * ref.abs().max().item()

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta == read_onnx_metadata(out)
    assert meta["arch"] == BEST and meta["num_classes"] == str(K)
    assert json.loads(meta["class_names"]) == list(CLASS_NAMES)
    assert meta["input_size"] == meta["train_input_size"] == f"{HW[0]}x{HW[1]}" and "deploy_input_size" not in meta
    assert json.loads(meta["mean"]) == list(IMAGENET_MEAN) and json.loads(meta["std"]) == list(IMAGENET_STD)
    assert meta["data"] == "synthetic:0" and meta["measured_miou"] == "40.00"
    assert meta["weights"] == f"evaluated/{Arch.parse(BEST).stable_hash}-distilled/model.pt"


def test_from_run_point_and_a_recorded_deployment_size(run_dir, tmp_path, capsys):
    ws, models = run_dir
    deployed = tmp_path / "deployed"
    # a copy of the run as one with --train-size 32x64 --input-size 64x128 writes it: both sizes in
    # the summary, and rows timed (input_hw) at the deployment size
    import shutil

    import pandas as pd

    shutil.copytree(ws.root, deployed)
    record = json.loads((deployed / "run_summary.json").read_text())
    record["train_hw"], record["input_hw"] = [32, 64], [64, 128]
    (deployed / "run_summary.json").write_text(json.dumps(record))
    rows = pd.read_csv(deployed / "evaluated.csv")
    rows["input_hw"], rows["train_hw"] = "64x128", "32x64"
    rows.to_csv(deployed / "evaluated.csv", index=False)
    out = tmp_path / "other.onnx"
    assert _export("--from-run", str(deployed), "--point", OTHER, "--onnx", str(out)) == 0
    meta = read_onnx_metadata(out)
    assert meta["arch"] == OTHER and meta["measured_miou"] == "30.00"
    assert meta["input_size"] == meta["deploy_input_size"] == "64x128" and meta["train_input_size"] == "32x64"
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        ref = models[OTHER](x)
    assert (run_onnx(out, x) - ref).abs().max().item() <= 1e-4 * ref.abs().max().item()


def test_named_export_records_code_size_and_normalisation(tmp_path):
    out = tmp_path / "named.onnx"
    assert _export(BEST, "--onnx", str(out), "--input-size", "32x64") == 0
    meta = read_onnx_metadata(out)
    assert meta["arch"] == BEST and meta["input_size"] == "32x64" and meta["weights"] == "random weights"
    assert json.loads(meta["mean"]) == list(IMAGENET_MEAN) and "class_names" not in meta


def _damaged(ws: Workspace, tmp_path, how: str):
    import shutil

    root = tmp_path / how
    shutil.copytree(ws.root, root)
    w = Workspace(root)
    best = w.point_model_path(Arch.parse(BEST).stable_hash, "distilled")
    if how == "no-summary":
        w.run_summary_path.unlink()
    elif how == "no-best":
        record = json.loads(w.run_summary_path.read_text())
        record["best"] = None
        w.run_summary_path.write_text(json.dumps(record))
    elif how == "no-model":
        best.unlink()
    elif how == "damaged-model":
        best.write_bytes(best.read_bytes()[:200])
    elif how == "torn-summary":
        w.run_summary_path.write_text(w.run_summary_path.read_text()[:40])
    return root


@pytest.mark.parametrize("how, says", [
    ("no-summary", "run_summary.json' is missing"),
    ("no-best", "records no best point"),
    ("no-model", "has no fine-tuned model"),
    ("damaged-model", "corrupt or truncated"),
    ("torn-summary", "run summary"),
])
def test_from_run_without_a_finished_run_is_one_line(run_dir, tmp_path, capsys, how, says):
    ws, _ = run_dir
    root = _damaged(ws, tmp_path, how)
    out = tmp_path / "x.onnx"
    assert _export("--from-run", str(root), "--onnx", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("argv, says", [
    (["--from-run", "{root}", BEST], "NAME_OR_CODE"),
    (["--from-run", "{root}", "--checkpoint", "x.pt"], "--checkpoint"),
    (["--point", BEST], "--from-run"),
    ([], "expected NAME_OR_CODE"),
    (["--from-run", "{root}/nowhere"], "no such folder"),
    (["--from-run", "{root}", "--point", "stemZ-nope"], "malformed arch code"),
])
def test_conflicting_or_missing_arguments_are_one_line(run_dir, tmp_path, capsys, argv, says):
    ws, _ = run_dir
    argv = [a.format(root=ws.root) for a in argv]
    assert _export(*argv, "--onnx", str(tmp_path / "x.onnx")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err


def test_timm_builds_any_code_and_loads_the_run_weights(run_dir):
    timm = pytest.importorskip("timm")
    import ffnet_nas.timm_models  # noqa: F401  (registers the names)

    ws, models = run_dir
    path = ws.point_model_path(Arch.parse(BEST).stable_hash, "distilled")
    # the three lines of docs/deployment.md
    model = timm.create_model("ffnet_nas_arch", arch=BEST, num_classes=K, pretrained=False)
    model.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    model.eval()
    x = torch.randn(1, 3, *HW)
    with torch.no_grad():
        assert torch.equal(model(x), models[BEST](x))
    assert model.arch.code == BEST and model.pretrained_cfg["num_classes"] == 19  # the code's cfg; classes as asked
    strict = timm.create_model("ffnet_nas_arch", arch=BEST, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert strict.num_classes == K
    with pytest.raises(InvalidInput, match="malformed arch code"):
        timm.create_model("ffnet_nas_arch", arch="stemZ-nope")
    with pytest.raises(InvalidInput, match="expected arch=CODE"):
        timm.create_model("ffnet_nas_arch")
