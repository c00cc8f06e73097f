"""Devices Python cannot reach: measure-latency --export-units, import-latency, and the round trip.

The "device" is ONNX Runtime here (bench/time_exported_units.py), so the round trip is real: the
exported files are timed, the times imported, and the imported table's predictions are checked
against a table the onnxruntime backend measured directly on the same graphs.
"""

import json
import math
import shutil

import pandas as pd
import pytest
import yaml

from ffnet_nas.cli import main
from ffnet_nas.space.errors import InvalidInput

SPACE = {"base": "mobile", "name": "tiny", "stems": ["B"],
         "stages": {4: {"depths": [[1, 2], [1, 2], [1], [1]], "widths": [[16], [32], [48], [64]]}},
         "first_strides": [1], "up_heads": ["B"], "seg_heads": ["B"], "pre_downs": [False], "input_size": "32x64"}
# CPU time of one thread: on a shared 2-core machine wall time mostly measures the scheduler
FAST = ["--threads", "1", "--clock", "cpu", "--repeats", "5:20", "--tolerance", "0.1", "--max-seconds", "1",
        "--no-progress"]
DEVICE = ["--device-name", "Galaxy S24", "--runtime", "onnxruntime 1.x (stand-in)", "--precision", "fp32"]
N_UNITS, N_CAL = 8, 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny space exported once (units + 2 calibration networks), and its times from ONNX Runtime."""
    from bench.time_exported_units import time_folder, write_csv

    root = tmp_path_factory.mktemp("export")
    space = root / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    assert main(["measure-latency", "--space", str(space), "--workdir", str(root / "w0"), "--calibrate", str(N_CAL),
                 "--export-units", str(root / "units"), "-q"]) == 0
    times = time_folder(root / "units", threads=1, rounds=1, clock="cpu", min_repeats=5, max_repeats=20,
                        max_seconds=1.0, tolerance=0.1)
    write_csv(times, root / "times.csv")
    return root


def _copy(exported, tmp_path):
    shutil.copytree(exported / "units", tmp_path / "units")
    shutil.copy(exported / "tiny.yaml", tmp_path / "tiny.yaml")
    return tmp_path / "units"


def _import(tmp_path, times, *extra):
    return main(["import-latency", str(times), "--units", str(tmp_path / "units"), "--workdir", str(tmp_path / "w"),
                 *DEVICE, *extra])


def test_export_writes_one_file_per_key_and_a_manifest(exported):
    from ffnet_nas.predictors.latency.keys import space_units
    from ffnet_nas.space.searchspace import get_space

    manifest = json.loads((exported / "units" / "manifest.json").read_text())
    space = get_space(str(exported / "tiny.yaml"))
    keys = {u.key for u in space_units(space, (32, 64), num_classes=8)}
    units = [e for e in manifest["entries"] if not e["key"].startswith("net:")]
    assert {e["key"] for e in units} == keys and len(keys) == N_UNITS
    assert len([e for e in manifest["entries"] if e["kind"] == "calibration"]) == N_CAL
    for e in manifest["entries"]:
        assert (exported / "units" / e["file"]).stat().st_size > 0 and e["inputs"][0]["shape"][0] == 1
    assert manifest["input_hw"] == [32, 64] and manifest["num_classes"] == 8
    assert manifest["export"]["onnx_exporter"] and not (exported / "w0").exists()  # exporting writes no workdir


def test_round_trip_agrees_with_the_onnxruntime_backend(exported, tmp_path, capsys):
    """export -> time with ORT -> import -> predict, vs measure-latency --backend onnxruntime (same graphs)."""
    from ffnet_nas.predictors.latency import predict_latency
    from ffnet_nas.predictors.load import choose_lut
    from ffnet_nas.space.searchspace import get_space

    _copy(exported, tmp_path)
    assert _import(tmp_path, exported / "times.csv") == 0
    assert "use it with --lut ext-galaxy-s24-fp32-" in capsys.readouterr().out
    lut = tmp_path / "w" / "lut"
    imported = choose_lut(lut_dir=lut, input_hw=(32, 64), lut="ext-galaxy-s24-fp32-onnxruntime-1-x-stand-in-b1-32x64")
    meta = json.loads(imported.with_suffix(".json").read_text())
    assert meta["external"]["device_name"] == "Galaxy S24" and meta["external"]["precision"] == "fp32"
    assert meta["external"]["runtime"] == "onnxruntime 1.x (stand-in)" and meta["external"]["toolchain"] == "unrecorded"
    # the only table at its size: chosen without a name, and by its device name in any case
    assert choose_lut(lut_dir=lut, input_hw=(32, 64)) == imported
    assert choose_lut(lut_dir=lut, input_hw=(32, 64), lut="galaxy s24") == imported
    assert main(["measure-latency", "--space", str(tmp_path / "tiny.yaml"), "--workdir", str(tmp_path / "w"),
                 "--backend", "onnxruntime", "--calibrate", str(N_CAL), "--rounds", "1", *FAST]) == 0
    direct = lut / "cpu-fp32-onnxruntime-b1-32x64-t1.csv"
    # two tables at one size: a command that names no device must be told which; one timing here gets its own
    with pytest.raises(InvalidInput, match="several latency tables.*cpu-fp32-onnxruntime.*ext-galaxy-s24"):
        choose_lut(lut_dir=lut, input_hw=(32, 64))
    assert choose_lut(lut_dir=lut, input_hw=(32, 64), device="cpu") == direct
    assert choose_lut(lut_dir=lut, input_hw=(32, 64), lut="Galaxy S24") == imported
    space = get_space(str(tmp_path / "tiny.yaml"))
    for arch in space.sample_many(space.size, seed=0):
        a, b = predict_latency(arch, imported), predict_latency(arch, direct)
        # the same graphs, session options and protocol, timed twice on a shared CPU: within 25%
        assert abs(a - b) / b < 0.25, (arch.code, a, b)


def test_aihub_profiles_are_microseconds(exported, tmp_path):
    units = _copy(exported, tmp_path)
    times = pd.read_csv(exported / "times.csv")
    profiles = {f: {"execution_summary": {"estimated_inference_time": ms * 1000,
                                          "all_inference_times": [ms * 1000, ms * 1100, ms * 1200]},
                    "execution_detail": []} for f, ms in zip(times["file"], times["ms"])}
    (tmp_path / "profiles.json").write_text(json.dumps(profiles))
    assert _import(tmp_path, tmp_path / "profiles.json") == 0
    table = pd.read_csv(next((tmp_path / "w" / "lut").glob("ext-*b1-32x64.csv")))
    manifest = {e["file"]: e["key"] for e in json.loads((units / "manifest.json").read_text())["entries"]}
    want = {manifest[f]: ms for f, ms in zip(times["file"], times["ms"])}
    for key, ms, median, n in zip(table["key"], table["estimate_ms"], table["median_ms"], table["n"]):
        assert ms == pytest.approx(want[key]) and median == pytest.approx(want[key] * 1.1) and n == 3
    # a folder of <file stem>.json profiles reads the same
    folder = tmp_path / "profiles"
    folder.mkdir()
    for f, prof in profiles.items():
        (folder / (f.rsplit("/", 1)[-1].removesuffix(".onnx") + ".json")).write_text(json.dumps(prof))
    assert _import(tmp_path, folder) == 0


def test_validate_lists_the_networks_then_scores_them(exported, tmp_path, capsys):
    from ffnet_nas.predictors.latency.lut import load_table
    from ffnet_nas.predictors.latency.validate import time_arch
    from ffnet_nas.space.arch import Arch

    from bench.time_exported_units import time_folder, write_csv

    units = _copy(exported, tmp_path)
    assert _import(tmp_path, exported / "times.csv", "--validate", "2") == 0
    listed = [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("  networks/")]
    assert len(listed) == 2 and all((units / f).exists() for f in listed)
    write_csv(time_folder(units, threads=1, rounds=1, clock="cpu", min_repeats=5, max_repeats=20, max_seconds=1.0,
                          tolerance=0.1), tmp_path / "all.csv")
    assert _import(tmp_path, tmp_path / "all.csv", "--validate", "2") == 0
    assert "predictor vs device on 2 networks" in capsys.readouterr().out
    csv = next((tmp_path / "w" / "lut").glob("ext-*b1-32x64.csv"))
    summary = json.loads(csv.with_suffix(".validation.json").read_text())
    assert summary["predictor"]["n"] == 2 and summary["repeatability"] is None
    # evaluate times a network with the table's rules: an imported table answers with the device's time
    table = load_table(csv)
    code = pd.read_csv(csv.with_suffix(".validation.csv"))["code"].iloc[0]
    assert time_arch(Arch.parse(code), table, None).estimate_ms > 0
    never_timed = Arch.parse("stemB-basic-d3.1.1.1-w16.32.48.64-s1-upB-segB-nearest")
    assert math.isnan(time_arch(never_timed, table, None).estimate_ms)  # unknown, never a time made up here


def _edit_times(exported, tmp_path, edit):
    lines = (exported / "times.csv").read_text().splitlines()
    path = tmp_path / "times.csv"
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


BAD = [
    ("missing key", lambda ls: ls[:1] + ls[2:], "have no time"),
    ("unknown key", lambda ls: ls + ["units/block_nope.onnx,1.0"], "not in the manifest"),
    ("non-positive time", lambda ls: ls[:1] + [ls[1].split(",")[0] + ",0"] + ls[2:], "not positive"),
    ("not a number", lambda ls: ls[:1] + [ls[1].split(",")[0] + ",fast"] + ls[2:], "not a number"),
    ("microseconds column", lambda ls: ["file,us"] + ls[1:], "expected milliseconds"),
    ("bad header", lambda ls: ["name,time,extra"] + ls[1:], "expected exactly 'key,ms' or 'file,ms'"),
    ("microseconds written as ms", lambda ls: ls[:1] + [
        f"{line.split(',')[0]},{float(line.split(',')[1]) * (1 if 'networks/' in line else 1000)}" for line in ls[1:]],
     "expected both in milliseconds"),
]


@pytest.mark.parametrize("what, edit, match", BAD, ids=[b[0] for b in BAD])
def test_bad_times_are_one_line(exported, tmp_path, capsys, what, edit, match):
    _copy(exported, tmp_path)
    code = _import(tmp_path, _edit_times(exported, tmp_path, edit))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and match in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "w" / "lut").exists() or not list((tmp_path / "w" / "lut").glob("*.csv"))


def test_bad_aihub_json_and_manifest(exported, tmp_path, capsys):
    _copy(exported, tmp_path)
    (tmp_path / "one.json").write_text(json.dumps({"execution_summary": {"estimated_inference_time": 5}}))
    (tmp_path / "nosummary.json").write_text(json.dumps({"units/x.onnx": {"execution_detail": []}}))
    for path, match in ((tmp_path / "one.json", "one AI Hub profile with no name"),
                        (tmp_path / "nosummary.json", "execution_summary.estimated_inference_time")):
        assert _import(tmp_path, path) == 2
        assert match in capsys.readouterr().err
    assert main(["import-latency", str(exported / "times.csv"), "--units", str(tmp_path), "--workdir",
                 str(tmp_path / "w"), *DEVICE]) == 2
    assert "no unit manifest" in capsys.readouterr().err
