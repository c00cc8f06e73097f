"""`ffnet-nas space list|show|sample` and `export`, run in-process; one run of the installed entry point."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ffnet_nas.cli import main
from ffnet_nas.space import build_model, get_variant


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_published_mobile(capsys):
    code, out, err = run(capsys, "space", "list", "--published", "--space", "mobile")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["name", "family", "input", "params", "(M)"]
    row = next(line for line in lines if line.startswith("segmentation_ffnet40S_BBB_mobile "))
    # params, GMACs at the published input, README/paper mIoU and the S21 latency of the reference file
    assert row.split()[1:] == ["mobile", "512x1024", "13.91", "60.1", "79.7", "78.2", "22.5"]
    assert len(lines) - 1 == 36 and all("gpu" not in line.split()[1] for line in lines[1:])


def test_list_published_gpu_latencies_and_classifiers(capsys):
    code, out, _ = run(capsys, "space", "list", "--published", "--space", "gpu_large", "--task", "all")
    assert code == 0
    assert "2080Ti fp16 ms" in out.splitlines()[0]
    row = next(line for line in out.splitlines() if line.startswith("segmentation_ffnet122N_CBB "))
    assert row.split()[-3:] == ["58", "44", "71"]  # 2080Ti fp32, fp16, 1080Ti fp32 (ms)
    assert "classification_ffnet46N_CBX" in out


def test_list_space_summary(capsys):
    code, out, _ = run(capsys, "space", "list", "--space", "mobile")
    assert code == 0
    assert out.startswith("space mobile: 16,432 points")
    assert "stem           B, C" in out and "published variants in this space: 36" in out


def test_list_yaml_space(capsys, tmp_path):
    (tmp_path / "s.yaml").write_text("base: mobile\nname: tiny\nstems: [B]\npre_downs: [false]\n")
    code, out, _ = run(capsys, "space", "list", "--space", str(tmp_path / "s.yaml"), "--published")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert "segmentation_ffnet40S_BBB_mobile" in names
    assert not any(n.endswith("_pre_down") or "NS_" in n for n in names)  # stem C and pre_down are outside


def test_show_published(capsys):
    code, out, _ = run(capsys, "space", "show", "segmentation_ffnet40S_BBB_mobile")
    assert code == 0
    v = get_variant("segmentation_ffnet40S_BBB_mobile")
    assert f"code            {v.arch.code}" in out
    assert "input           512x1024 (published input)" in out
    assert "output          128x256 (stride 4)" in out
    assert f"params          13.91M ({v.n_params:,})" in out
    assert f"MACs            {v.macs / 1e9:.2f}G at 512x1024" in out
    assert "mIoU README                 79.7" in out and "S21 DSP int8  22.5 ms" in out
    for position in ("s4", "s8", "s16", "s32", "head"):
        assert any(line.startswith(position + " ") for line in out.splitlines())


def test_show_code_at_input_size(capsys):
    code_ = get_variant("segmentation_ffnet46NS_CCC_mobile").arch.code
    code, out, _ = run(capsys, "space", "show", code_, "--input-size", "256x512")
    assert code == 0
    assert "published name  segmentation_ffnet46NS_CCC_mobile" in out  # a code finds its published name
    assert "MACs            7.00G at 256x512" in out  # 28.0 GMACs at 512x1024, a quarter of the pixels
    code, out, _ = run(capsys, "space", "show", "stemB-basic-d1.1.1.1-w8.16.24.32-s1-upB-segB-nearest-predown")
    assert "(not a published variant)" in out and "input           1024x2048 (default, doubled for pre_down)" in out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["space", "show", "segmentation_ffnet40S_BBB_mobil"], "did you mean: segmentation_ffnet40S_BBB_mobile"),
        (["space", "show", "stemB-basic-d4.5-w64"], "malformed arch code"),
        (["space", "show", "stemD-basic-d1.1.1.1-w8.16.24.32-s1-upB-segB-nearest"], "stem"),
        (["space", "show", "segmentation_ffnet40S_BBB_mobile", "--input-size", "512by1024"], "expected HxW"),
        (["space", "list", "--space", "mobil"], "did you mean: mobile"),
        (["space", "sample", "--space", "mobile", "-n", "0"], "positive number"),
        (["export", "segmentation_ffnet40S_BBB_mobil", "--onnx", "x.onnx"], "did you mean"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, expected):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_sample(capsys):
    code, out, _ = run(capsys, "space", "sample", "--space", "mobile", "-n", "4", "--seed", "3")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4 and len({line.split()[0] for line in lines}) == 4
    for line in lines:
        code_, params = line.split()[:2]
        assert code_.startswith("stem") and params.endswith("M")
    assert run(capsys, "space", "sample", "--space", "mobile", "-n", "4", "--seed", "3")[1] == out  # seeded


def test_export_cli_with_checkpoint_fold_and_check(capsys, tmp_path):
    arch = "stemB-basic-d1.1.1.1-w8.16.24.32-s1-upB-segB-nearest"
    torch.save({"state_dict": build_model(arch, num_classes=4).state_dict()}, tmp_path / "w.pth")
    code, out, err = run(
        capsys, "export", arch, "--onnx", str(tmp_path / "m.onnx"), "--input-size", "64x128",
        "--checkpoint", str(tmp_path / "w.pth"), "--fold-bn", "--check", "--exporter", "torchscript", "--opset", "17",
    )
    assert code == 0, err
    assert f"wrote {tmp_path / 'm.onnx'}" in out and "BN folded" in out
    assert "output 1x4x16x32" in out and ": OK" in out  # classes read from the checkpoint
    assert (tmp_path / "m.onnx").stat().st_size > 0


def test_installed_entry_point_bad_name_exit_2():
    exe = shutil.which("ffnet-nas") or str(Path(sys.executable).with_name("ffnet-nas"))
    proc = subprocess.run([exe, "space", "show", "segmentation_ffnet40S_BBB_mobil"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("ffnet-nas space: error: unknown FFNet variant")
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
