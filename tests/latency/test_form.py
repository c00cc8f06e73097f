"""The eager table times the deployable form (BN folded, channels_last where faster); old tables keep theirs."""

import json

import pytest
import torch
import yaml

from ffnet_nas.cli import main

SPACE = {"base": "mobile", "name": "tinyf", "stems": ["B"],
         "stages": {4: {"depths": [[1], [1, 2], [1], [1]], "widths": [[16], [32], [48], [64]]}},
         "first_strides": [1], "up_heads": ["B"], "seg_heads": ["B"], "pre_downs": [False], "input_size": "32x64"}
FAST = ["--threads", "1", "--clock", "cpu", "--rounds", "1", "--repeats", "3:6", "--tolerance", "0.5",
        "--max-seconds", "1", "--no-progress", "--calibrate", "1"]
SLUG = "cpu-fp32-eager-b1-32x64-t1"


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return str(path)


def test_new_table_is_deployable_and_records_its_probe(tmp_path, space):
    assert main(["measure-latency", "--space", space, "--workdir", str(tmp_path / "w"), *FAST]) == 0
    meta = json.loads((tmp_path / "w" / "lut" / f"{SLUG}.json").read_text())
    probe = meta["form_probe"]
    assert meta["spec"]["form"] == probe["chosen"] in ("folded", "folded_cl")
    assert set(probe["ms"]) == {"folded", "folded_cl"} and min(probe["ms"], key=probe["ms"].get) == probe["chosen"]


def test_an_old_table_keeps_its_form_and_keys(tmp_path, space, caplog):
    """A table written before `form` existed (no field): it loads as `module` and is extended as built."""
    w = tmp_path / "w"
    assert main(["measure-latency", "--space", space, "--workdir", str(w), "--form", "module", *FAST]) == 0
    lut = w / "lut"
    meta = json.loads((lut / f"{SLUG}.json").read_text())
    del meta["spec"]["form"]  # as an older version wrote it
    (lut / f"{SLUG}.json").write_text(json.dumps(meta))
    keys = set((lut / f"{SLUG}.csv").read_text().splitlines()[1:])
    from ffnet_nas.predictors.latency.lut import load_table

    assert load_table(lut / f"{SLUG}.csv").spec.form == "module"
    with caplog.at_level("WARNING"):
        assert main(["measure-latency", "--space", space, "--workdir", str(w), *FAST]) == 0  # default: deploy
    assert "extended in that form" in caplog.text
    meta = json.loads((lut / f"{SLUG}.json").read_text())
    assert meta["spec"]["form"] == "module" and "form_probe" not in meta
    assert set((lut / f"{SLUG}.csv").read_text().splitlines()[1:]) == keys  # nothing re-measured, same keys


def test_forms_compute_the_same_function():
    from ffnet_nas.predictors.latency.form import apply_form
    from ffnet_nas.space.arch import Arch
    from ffnet_nas.space.builder import build_model

    from tests.helpers.bn import randomise_bn

    torch.manual_seed(0)  # weights and input: the same numbers every run (they were unseeded, and one run in many
    # drew an output element 1.2e-4 off, over a fixed 1e-4 bound)
    model = build_model(Arch.parse("stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest"), num_classes=8).eval()
    randomise_bn(model)
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        ref = model(x)
        # folding reorders float32 arithmetic: the rounding it may change scales with the outputs' size
        atol = 1e-5 * float(ref.abs().max())
        for form in ("folded", "folded_cl"):
            m, (xf,) = apply_form(model, (x,), form)
            assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules())
            assert xf.is_contiguous(memory_format=torch.channels_last) == (form == "folded_cl")
            torch.testing.assert_close(m(xf), ref, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("args, match", [
    (["--form", "folded", "--backend", "onnxruntime"], "expected --form module or deploy"),
    (["--form", "fused"], "unknown form"),
])
def test_bad_form_is_one_line(tmp_path, capsys, args, match):
    assert main(["measure-latency", "--workdir", str(tmp_path / "w"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
