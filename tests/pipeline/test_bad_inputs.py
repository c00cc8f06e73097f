"""Bad input, tried as a new user would: one clear line on stderr, exit status 2, no traceback,
and no file of the user's lost. Each row here is a row of the bad-input table, docs/bad-input.md."""

import errno
import json

import pytest

from ffnet_nas.cli import main
from ffnet_nas.space.io import atomic_write_json

TINY_CODE = "stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest"


def _lut(workdir, device="cpu"):
    """A (tiny) latency table as measure-latency writes it, for a given device in its metadata."""
    lut = workdir / "lut"
    lut.mkdir(parents=True)
    slug = "cpu-fp32-eager-b1-64x128-t1"
    from ffnet_nas.predictors.latency.lut import COLUMNS

    row = {c: 0 for c in COLUMNS} | {"key": "stem:B:c3:hw64x128", "kind": "stem", "estimate_ms": 0.1, "stable": True}
    (lut / f"{slug}.csv").write_text(",".join(COLUMNS) + "\n" + ",".join(str(row[c]) for c in COLUMNS) + "\n")
    from ffnet_nas.predictors.latency.build import make_spec

    # 8 classes: the embedded data's, what measure-latency times in a workdir without a teacher
    spec = make_spec(device="cpu", input_hw=(64, 128), threads=1, num_classes=8).to_dict() | {"device": device}
    atomic_write_json(lut / f"{slug}.json", {"spec": spec, "spaces": ["mobile"]})
    return lut / f"{slug}.csv"


def setup_none(tmp_path):
    return []


def setup_bad_yaml(tmp_path):
    (tmp_path / "bad.yaml").write_text("stems: [B\n")
    return [tmp_path / "bad.yaml"]


def setup_repeated_value_yaml(tmp_path):
    (tmp_path / "dup.yaml").write_text("base: mobile\nstems: [B, B]\n")
    return [tmp_path / "dup.yaml"]


def setup_string_boolean_yaml(tmp_path):
    (tmp_path / "str.yaml").write_text('base: mobile\npre_downs: ["false"]\n')
    return [tmp_path / "str.yaml"]


def _run_config(text: str):
    """A setup that writes `text` as {tmp}/run.yaml (a `run --config` file) and protects it."""
    def setup(tmp_path):
        (tmp_path / "run.yaml").write_text(text)
        return [tmp_path / "run.yaml"]

    return setup


setup_config_with_unknown_amp = _run_config("budget: quick\namp: fp64\n")
setup_config_with_negative_rivals = _run_config("budget:\n  name: quick\n  evaluate:\n    rivals: -1\n")
setup_config_with_chase_rival_not_a_boolean = _run_config("budget:\n  name: quick\n  evaluate:\n    chase_rival: maybe\n")
setup_config_with_negative_chase_margin = _run_config("budget:\n  name: quick\n  evaluate:\n    chase_margin: -0.5\n")


def setup_official_19_classes(tmp_path):
    """Official-format weights (a plain state dict) of a head with 19 classes (Cityscapes)."""
    import torch

    from ffnet_nas.space.builder import build_model

    path = tmp_path / "official.pth"
    torch.save(build_model("stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest", num_classes=19).state_dict(), path)
    return [path]


def setup_other_teacher(tmp_path):
    """A workdir whose teacher was loaded from official.pth; the user now names other.pth."""
    import torch

    from ffnet_nas.distill.teacher import save_teacher
    from ffnet_nas.space.builder import build_model

    model = build_model("stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest", num_classes=8)
    save_teacher(tmp_path / "w" / "teacher" / "teacher.pt", model, data="synthetic:0", input_hw=[32, 64], miou=0.1,
                 source=str(tmp_path / "official.pth"))
    torch.save(model.state_dict(), tmp_path / "other.pth")
    return [tmp_path / "w" / "teacher" / "teacher.pt", tmp_path / "other.pth"]


def setup_truncated_teacher(tmp_path):
    path = tmp_path / "w" / "teacher" / "teacher.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04truncated")
    return [path]


def setup_truncated_lut(tmp_path):
    csv = _lut(tmp_path / "w")
    csv.write_text(csv.read_text()[:20])  # cut inside the header, as an interrupted copy would
    (tmp_path / "w" / "predictor").mkdir()
    (tmp_path / "w" / "predictor" / "accuracy.json").write_text("{}")
    return [csv]


def setup_lut_cut_mid_row(tmp_path):
    csv = _lut(tmp_path / "w")
    header, row = csv.read_text().splitlines()
    # a row cut after its estimate, followed by a whole one (a torn *last* row is dropped and measured again)
    csv.write_text(f"{header}\n{','.join(row.split(',')[:3])}\n{row.replace('hw64x128', 'hw32x64')}\n")
    return [csv]


def setup_binary_yaml(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"name: x\n\x00\x01\xff\xfe binary")
    return [tmp_path / "bin.yaml"]


def _evaluated(tmp_path, rows: str):
    path = tmp_path / "w" / "evaluated.csv"
    path.parent.mkdir(parents=True)
    path.write_text("code,name,init,params,macs,input_hw,measured_miou,checkpoint\n" + rows)
    return [path]


def setup_conflicting_evaluated_rows(tmp_path):
    return _evaluated(tmp_path, f"{TINY_CODE},,distilled,1,1,32x64,15.94,m.pt\n{TINY_CODE},,distilled,1,1,32x64,1.0,m.pt\n")


def setup_nan_evaluated_miou(tmp_path):
    return _evaluated(tmp_path, f"{TINY_CODE},,distilled,1,1,32x64,nan,m.pt\n")


def setup_damaged_training_state(tmp_path):
    import torch

    path = tmp_path / "w" / "teacher" / "train_state.pt"
    path.parent.mkdir(parents=True)
    # a digest that does not match the weights: what a flipped byte inside a tensor gives
    torch.save({"step": 1, "model": {"w": torch.ones(8)}, "optimizer": {}, "rng": {}, "fingerprint": {},
                "weights_sha1": "0" * 16}, path)
    return [path]


def setup_journal_damaged_inside(tmp_path):
    from ffnet_nas.space.searchspace import get_space
    from tests.helpers.predictor_files import write_made_up_predictor, write_unit_latency_table

    space = get_space("mobile")
    files = [write_unit_latency_table(tmp_path / "w" / "lut", space, num_classes=8),
             write_made_up_predictor(tmp_path / "w" / "predictor", space)]
    journal = tmp_path / "w" / "search" / "study.journal"
    journal.parent.mkdir(parents=True)
    journal.write_bytes(b'{"op_code": 0, "worker_id": "a"}\n\xff\xfe garbled \x00\n{"op_code": 0}\n')
    return [*files, journal]


def setup_lut_lacking_keys(tmp_path):
    from ffnet_nas.space.searchspace import get_space
    from tests.helpers.predictor_files import write_made_up_predictor

    csv = _lut(tmp_path / "w")  # one stem key: far from what the mobile space needs
    return [csv, write_made_up_predictor(tmp_path / "w" / "predictor", get_space("mobile"))]


def setup_corrupt_evaluated(tmp_path):
    path = tmp_path / "w" / "evaluated.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00\xff\x00garbage\n\x01")
    return [path]


def setup_corrupt_predictor(tmp_path):
    csv = _lut(tmp_path / "w")
    path = tmp_path / "w" / "predictor" / "accuracy.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"coef": [0.1, ')
    return [csv, path]


def setup_foreign_lut(tmp_path):
    return [_lut(tmp_path / "w", device="cuda:0")]  # its file name says cpu, its metadata another device


def setup_file_as_workdir(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    return [tmp_path / "afile"]


def setup_planted_training_state(tmp_path):
    import torch

    from tests.helpers.hostile import Planted

    path = tmp_path / "w" / "teacher" / "train_state.pt"
    path.parent.mkdir(parents=True)
    torch.save({"step": 1, "payload": Planted(tmp_path / "pwned")}, path)
    return [path]


_HELD = []  # locks taken by setups, held until the test process ends


def setup_workdir_in_use(tmp_path):
    from ffnet_nas.lock import hold
    from ffnet_nas.workspace import Workspace

    held = hold(Workspace(tmp_path / "w").lock_path, command="run")
    held.__enter__()  # flock conflicts across descriptors, even within one process
    _HELD.append(held)
    return []


ROWS = [
    # (id, argv, setup, fragment of the one-line message)
    ("searching the peers' reference-point space", ["search", "--space", "peers_paper", "--target", "latency<25ms",
                                                    "--workdir", "{tmp}/w"], setup_none, "expected mobile_peers"),
    ("malformed Dask scheduler address", ["distill", "--scheduler", "not-an-address", "--workdir", "{tmp}/w"], setup_none,
     "expected PROTOCOL://HOST:PORT"),
    ("Dask scheduler with --jobs", ["distill", "--scheduler", "tcp://127.0.0.1:8786", "--jobs", "2", "--workdir",
                                    "{tmp}/w"], setup_none, "expected one of them"),
    ("run with a teacher file that is not there", ["run", "--budget", "micro", "--teacher", "{tmp}/nope.pt", "--workdir",
                                                  "{tmp}/w"], setup_none, "teacher file"),
    ("run with a data folder that is not there", ["run", "--budget", "micro", "--data", "cityscapes:{tmp}/none",
                                                 "--workdir", "{tmp}/w"], setup_none, "cityscapes"),
    ("fp16 autocast on the CPU", ["run", "--budget", "micro", "--amp", "fp16", "--workdir", "{tmp}/w"], setup_none,
     "float16 autocast needs a CUDA device"),
    ("a run config with an unknown training precision", ["run", "--config", "{tmp}/run.yaml", "--workdir", "{tmp}/w"],
     setup_config_with_unknown_amp, "expected bf16, fp16, fp32 or null"),
    ("a run config with a negative count of published rivals", ["run", "--config", "{tmp}/run.yaml", "--workdir", "{tmp}/w"],
     setup_config_with_negative_rivals, "budget.evaluate.rivals=-1: expected an integer >= 0"),
    ("a run config whose chase_rival is not true or false", ["run", "--config", "{tmp}/run.yaml", "--workdir", "{tmp}/w"],
     setup_config_with_chase_rival_not_a_boolean, "budget.evaluate.chase_rival: expected true or false, got 'maybe'"),
    ("a run config with a negative chase margin", ["run", "--config", "{tmp}/run.yaml", "--workdir", "{tmp}/w"],
     setup_config_with_negative_chase_margin, "budget.evaluate.chase_margin=-0.5: expected a number of mIoU >= 0"),
    ("a teacher and an ImageNet init together", ["run", "--budget", "micro", "--teacher", "{tmp}/t.pt", "--init",
                                                 "imagenet:{tmp}/i.pth", "--workdir", "{tmp}/w"], setup_none,
     "expected one"),
    ("malformed ImageNet init", ["train-teacher", "--init", "resnet18.pth", "--workdir", "{tmp}/w"], setup_none,
     "expected imagenet:FILE"),
    ("teacher of another class count", ["train-teacher", "--arch", "stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest",
                                        "--checkpoint", "{tmp}/official.pth", "--input-size", "32x64", "--eval-images",
                                        "2", "--no-progress", "--device", "cpu", "--workdir", "{tmp}/w"],
     setup_official_19_classes, "predicts 19 classes but synthetic has 8"),
    ("run with another teacher than the workdir's", ["run", "--budget", "micro", "--teacher", "{tmp}/other.pth",
                                                     "--workdir", "{tmp}/w"], setup_other_teacher,
     "expected the same --teacher"),
    ("unknown published name", ["space", "show", "segmentation_ffnet40S_BBB_mobil"], setup_none, "did you mean: segmentation_ffnet40S_BBB_mobile"),
    ("negative re-ranking pool", ["search", "--evaluate-top", "2", "--rerank", "-1", "--workdir", "{tmp}/w"], setup_none,
     "--rerank -1: expected 0 (off) or a positive number of candidates"),
    ("negative per-class quota", ["search", "--rerank-per-class", "-1", "--workdir", "{tmp}/w"], setup_none,
     "--rerank-per-class -1: expected an integer >= 0"),
    ("unknown re-ranker", ["search", "--rerank-by", "oracle", "--workdir", "{tmp}/w"], setup_none,
     "unknown rerank by 'oracle': expected one of predictor, zero-shot"),
    ("unknown predictor features", ["fit-predictor", "--features", "bogus", "--workdir", "{tmp}/w"], setup_none,
     "unknown features 'bogus': expected one of route_free, within_stride, choices, nsr"),
    ("unknown reference to beat", ["search", "--evaluate-top", "2", "--reference", "segmentation_ffnet40S_BBB_mobil",
                                   "--workdir", "{tmp}/w"], setup_none, "did you mean: segmentation_ffnet40S_BBB_mobile"),
    ("malformed code", ["space", "show", "stemB-basic-d4.5.6-w64.128.192.320-s1-upB-segB-nearest"], setup_none, "widths"),
    ("code with a bad part", ["space", "show", "stemB-basic-d4.5.6.4-w64.128.192.320-s3-upB-segB-nearest"], setup_none, "'s3'"),
    ("unknown space", ["space", "list", "--space", "mobil"], setup_none, "did you mean: mobile"),
    ("missing space file", ["space", "list", "--space", "{tmp}/nope.yaml"], setup_none, "not found"),
    ("invalid YAML space", ["space", "list", "--space", "{tmp}/bad.yaml"], setup_bad_yaml, "not valid YAML"),
    ("YAML space repeats a value", ["space", "sample", "--space", "{tmp}/dup.yaml"], setup_repeated_value_yaml,
     "stems repeats 'B'"),
    ("string for a boolean in a YAML space", ["space", "list", "--space", "{tmp}/str.yaml"], setup_string_boolean_yaml,
     "pre_downs has 'false'"),
    ("malformed target", ["search", "--target", "latency<<25ms", "--workdir", "{tmp}/w"], setup_none, "at character 9"),
    ("unknown target unit", ["search", "--target", "latency<25parsecs", "--workdir", "{tmp}/w"], setup_none, "unit"),
    ("unknown target metric", ["search", "--target", "speed<25ms", "--workdir", "{tmp}/w"], setup_none, "latency"),
    ("CUDA without a GPU", ["measure-latency", "--device", "cuda:0", "--workdir", "{tmp}/w"], setup_none, "no CUDA GPU"),
    ("unknown device", ["measure-latency", "--device", "tpu", "--workdir", "{tmp}/w"], setup_none, "cpu"),
    ("malformed input size", ["measure-latency", "--input-size", "512by1024", "--workdir", "{tmp}/w"], setup_none, "HxW"),
    ("unknown backend", ["measure-latency", "--backend", "tensorrt", "--workdir", "{tmp}/w"], setup_none, "backend"),
    ("fp16 on a CPU without fp16", ["measure-latency", "--dtype", "fp16", "--workdir", "{tmp}/w"], setup_none, "fp16"),
    ("LUT from another device", ["measure-latency", "--device", "cpu", "--input-size", "64x128", "--threads", "1",
                                 "--workdir", "{tmp}/w"], setup_foreign_lut, "was measured for"),
    ("truncated teacher file", ["distill", "--space", "mobile", "--workdir", "{tmp}/w"], setup_truncated_teacher, "corrupt"),
    ("truncated latency table", ["measure-latency", "--device", "cpu", "--input-size", "64x128", "--threads", "1",
                                 "--workdir", "{tmp}/w"], setup_truncated_lut, "latency table"),
    ("latency table cut mid-row", ["measure-latency", "--device", "cpu", "--input-size", "64x128", "--threads", "1",
                                   "--workdir", "{tmp}/w"], setup_lut_cut_mid_row, "line 2 has 3 fields, not the header's 13"),
    ("corrupt evaluated table", ["evaluate", TINY_CODE, "--workdir", "{tmp}/w"], setup_corrupt_evaluated, "is not text"),
    ("corrupt accuracy predictor", ["search", "--target", "latency<25ms", "--lut", "cpu-fp32-eager-b1-64x128-t1",
                                    "--workdir", "{tmp}/w"], setup_corrupt_predictor, "corrupt or truncated"),
    ("missing data root", ["train-teacher", "--data", "cityscapes:{tmp}/nowhere", "--workdir", "{tmp}/w"], setup_none, "leftImg8bit"),
    ("unknown data kind", ["train-teacher", "--data", "imagenet:/x", "--workdir", "{tmp}/w"], setup_none, "synthetic"),
    ("unknown level of the embedded data", ["run", "--data", "synthetic:0:harder", "--workdir", "{tmp}/w"], setup_none,
     "unknown level 'harder'; expected synthetic:SEED or synthetic:SEED:hard"),
    ("workdir is a file", ["report", "--paper", "--workdir", "{tmp}/afile"], setup_file_as_workdir, "afile"),
    ("unknown budget", ["run", "--budget", "huge", "--workdir", "{tmp}/w"], setup_none, "expected one of micro, quick, full"),
    ("thread count beyond the machine", ["measure-latency", "--threads", "100000", "--workdir", "{tmp}/w"], setup_none,
     "(the cores this machine has)"),
    ("infinite target", ["search", "--target", "latency<1e999ms", "--workdir", "{tmp}/w"], setup_none, "a finite number"),
    ("study name with a path", ["search", "--target", "latency<25ms", "--study", "../../x", "--workdir", "{tmp}/w"],
     setup_none, "expected a name without path separators"),
    ("predictor check of too few points", ["fit-predictor", "--check", "2", "--workdir", "{tmp}/w"], setup_none,
     "--check 2: expected at least 4 points"),
    ("predictor check with one seed", ["fit-predictor", "--check", "8", "--check-seeds", "0", "--workdir", "{tmp}/w"],
     setup_none, "expected two different fine-tuning seeds"),
    ("no validation images", ["evaluate", TINY_CODE, "--val-images", "0", "--redo", "--workdir", "{tmp}/w"], setup_none,
     "expected a positive number of validation images"),
    ("averaged tail beyond the run", ["evaluate", TINY_CODE, "--average-tail", "2", "--workdir", "{tmp}/w"], setup_none,
     "average_tail=2.0: expected a fraction of the steps in [0, 1] (0: off)"),
    ("averaged weights without precise BatchNorm", ["evaluate", TINY_CODE, "--precise-bn", "0", "--workdir", "{tmp}/w"],
     setup_none, "average_tail=0.5: expected 0 unless precise_bn or freeze_bn is set too"),
    ("negative gradient clip", ["evaluate", TINY_CODE, "--freeze-bn", "on", "--grad-clip", "-1", "--workdir", "{tmp}/w"],
     setup_none, "grad_clip=-1.0: expected None or a finite gradient norm >= 0 (0: no clipping)"),
    ("code planted in a training checkpoint", ["train-teacher", "--steps", "2", "--input-size", "32x64", "--batch-size", "2",
                                               "--eval-images", "2", "--no-progress", "--device", "cpu", "--workdir", "{tmp}/w"],
     setup_planted_training_state, "could run code"),
    ("workdir in use", ["distill", "--space", "mobile", "--workdir", "{tmp}/w"], setup_workdir_in_use,
     "is in use by 'ffnet-nas run' (pid"),
    ("binary file as a YAML space", ["space", "list", "--space", "{tmp}/bin.yaml"], setup_binary_yaml,
     "is not text (byte 10 is not UTF-8)"),
    ("batch larger than the data", ["train-teacher", "--steps", "1", "--input-size", "32x64", "--batch-size", "100000000",
                                    "--no-progress", "--device", "cpu", "--workdir", "{tmp}/w"], setup_none,
     "batch size 100000000 is larger than the training set (512 images)"),
    ("two different rows for one point", ["evaluate", TINY_CODE, "--workdir", "{tmp}/w"],
     setup_conflicting_evaluated_rows, "two different rows for code/init"),
    ("NaN where a measurement belongs", ["evaluate", TINY_CODE, "--workdir", "{tmp}/w"], setup_nan_evaluated_miou,
     "line 2: measured_miou is 'nan', expected a finite number"),
    ("weights damaged inside a tensor", ["train-teacher", "--steps", "2", "--input-size", "32x64", "--batch-size", "2",
                                         "--eval-images", "2", "--no-progress", "--device", "cpu", "--workdir", "{tmp}/w"],
     setup_damaged_training_state, "is damaged: its weights hash to"),
    ("no teacher in the workdir", ["evaluate", TINY_CODE, "--workdir", "{tmp}/w"], setup_none,
     "in this workdir (run it first, or use the --workdir that holds the teacher)"),
    ("learning rate out of range", ["train-teacher", "--steps", "1", "--input-size", "32x64", "--lr", "1e308",
                                    "--no-progress", "--device", "cpu", "--workdir", "{tmp}/w"], setup_none,
     "expected a positive learning rate, at most 10"),
    ("journal damaged inside", ["search", "--target", "latency<25ms", "--workdir", "{tmp}/w"],
     setup_journal_damaged_inside, "is damaged at line 2 (not a JSON record)"),
    ("latency table lacks keys the space needs", ["search", "--target", "latency<25ms", "--lut", "cpu-fp32-eager-b1-64x128-t1",
                                                  "--workdir", "{tmp}/w"], setup_lut_lacking_keys,
     "keys space 'mobile' needs (first:"),
]


@pytest.mark.parametrize("argv, setup, fragment", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_exit_2_and_nothing_lost(tmp_path, capsys, argv, setup, fragment):
    if "fp16" in argv and "--amp" not in argv:  # a latency table in fp16 (autocast fp16 needs CUDA on any CPU)
        from ffnet_nas.predictors.latency.protocol import cpu_flags

        if {"avx512_fp16", "amx_fp16"} & cpu_flags():
            pytest.skip("this CPU does run fp16 natively")
    kept = {p: p.read_bytes() for p in setup(tmp_path)}
    assert not (tmp_path / "pwned").exists()
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert fragment in err, err
    _one_error_line(err, out)
    for path, content in kept.items():  # the user's files are untouched
        assert path.read_bytes() == content, path
    assert not (tmp_path / "pwned").exists(), "a file read from the workdir executed code"


def test_disk_full_is_one_line_and_keeps_the_old_file(tmp_path, capsys, monkeypatch):
    from ffnet_nas.space import io as space_io

    out_dir = tmp_path / "report"
    assert main(["report", "--paper", "--out", str(out_dir), "--workdir", str(tmp_path / "w"), "--format", "html"]) == 0
    index = out_dir / "index.html"
    before = index.read_bytes()
    capsys.readouterr()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(space_io.os, "fsync", full)
    code = main(["report", "--paper", "--out", str(out_dir), "--workdir", str(tmp_path / "w"), "--format", "html"])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err, err
    _one_error_line(err, "")
    assert index.read_bytes() == before  # the previous report is intact
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".tmp")]


def _one_error_line(err: str, out: str) -> None:
    """Exactly one error line, and it is the last thing on stderr (progress bars may precede it)."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err + out, err


def test_the_documented_table_lists_every_row():
    from pathlib import Path

    table = (Path(__file__).resolve().parents[2] / "docs" / "bad-input.md").read_text()
    for row_id, *_ in ROWS:
        assert f"| {row_id} |" in table, row_id
    assert "| disk full |" in table
    assert json  # noqa: the module is used by setups through atomic_write_json
