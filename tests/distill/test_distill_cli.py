"""`ffnet-nas distill` end to end on the embedded data, and its bad-input behaviour."""

from __future__ import annotations

import pytest
import torch
import yaml

from ffnet_nas.distill.assemble import assemble
from ffnet_nas.distill.library import BlockLibrary
from ffnet_nas.distill.teacher import save_teacher
from tests.helpers.distill import TINY, one_thread
from ffnet_nas.cli import main
from ffnet_nas.space.builder import build_model

SMALL = dict(TINY, stages={4: {"depths": [[1], [1], [1], [1]], "widths": [[24], [40], [56], [72]]}},
             first_strides=[1], pre_downs=[False])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_thread()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    torch.manual_seed(0)
    teacher = build_model("stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest", num_classes=8).eval()
    save_teacher(root / "teacher" / "teacher.pt", teacher, data="synthetic", input_hw=[32, 64], miou=0.0)
    (root / "space.yaml").write_text(yaml.safe_dump(SMALL))
    return root


def _distill(workdir, *extra):
    return main(["distill", "--space", str(workdir / "space.yaml"), "--steps", "2", "--batch-size", "4",
                 "--train-images", "8", "--val-images", "4", "--no-progress", "--workdir", str(workdir), *extra])


def test_distill_writes_the_library_and_resumes(workdir, capsys):
    assert _distill(workdir) == 0
    out = capsys.readouterr().out
    lib = BlockLibrary(workdir / "library")
    assert f"table: {lib.table_path}" in out and "5 trained now" in out
    assert (workdir / "library" / "features" / "train.pt").is_file()
    assert len(lib.table()) == 5 and set(lib.table().status) == {"ok"}
    model = assemble("stemB-basic-d1.1.1.1-w24.40.56.72-s1-upB-segB-nearest", lib)
    assert model(torch.randn(1, 3, 32, 64)).shape == (1, 8, 8, 16)
    assert _distill(workdir) == 0
    assert "0 trained now, 5 already there" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--teacher", "/nonexistent/teacher.pt"], "teacher file '/nonexistent/teacher.pt' not found"),
    (["--steps", "0"], "--steps 0: expected an integer >= 1"),
    (["--space", "mobil"], "unknown space 'mobil'"),
    (["--data", "cityscapes:/nonexistent"], "cityscapes"),
])
def test_bad_input_is_one_line_and_exit_2(workdir, capsys, args, message):
    argv = ["distill", "--workdir", str(workdir), "--no-progress", "--space", str(workdir / "space.yaml"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
