"""The table: measured, saved after every key, resumable after a kill, never duplicated."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from ffnet_nas.predictors.latency.backends import (
    LEGACY_EXPORT,
    SHIPPED_EXPORT,
    table_export,
)
from ffnet_nas.predictors.latency.build import build, make_spec
from ffnet_nas.predictors.latency.keys import space_units
from ffnet_nas.predictors.latency.lut import (
    COLUMNS,
    load_table,
    measure_units,
    open_table,
)
from ffnet_nas.predictors.latency.protocol import Protocol
from ffnet_nas.space.deploy import DEFAULT_EXPORTER, DEFAULT_OPSET, OnnxExport
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.searchspace import from_dict

REPO = Path(__file__).resolve().parents[2]
FAST = Protocol(warmup_runs=1, warmup_s=0.0, min_repeats=3, max_repeats=6, rel_tol=0.5, max_seconds=1.0)
TINY = {"base": "mobile", "name": "tiny", "stems": ["B"],
        "stages": {4: {"depths": [[1, 2], [1], [1], [1]], "widths": [[16], [32], [48], [64]]}},
        "first_strides": [1], "up_heads": ["B"], "seg_heads": ["B"], "pre_downs": [False], "input_size": "64x128"}
# A few more keys than TINY (two stems, two strides, two heads) so a kill can land mid-run.
KILLABLE = dict(TINY, name="killable", stems=["B", "C"], first_strides=[1, 2], up_heads=["B", "C"],
                input_size="32x64")


def _spec(hw=(64, 128), **kw):
    return make_spec(device="cpu", input_hw=hw, threads=1, num_classes=19, **kw)  # space_units' head: 19 classes


def test_measure_save_reload_and_resume(tmp_path):
    space = from_dict(TINY)
    units = space_units(space, space.input_hw)
    table = open_table(tmp_path, _spec(), FAST, space="tiny")
    partial = measure_units(table, units, FAST, progress=False, limit=3)
    assert len(load_table(partial.path)) == 3
    again = open_table(tmp_path, _spec(), FAST)
    assert len(again) == 3 and len(again.missing(units)) == len(units) - 3
    done = measure_units(again, units, FAST, progress=False)
    frame = pd.read_csv(done.path)
    assert sorted(frame["key"]) == sorted(u.key for u in units)
    assert frame["key"].is_unique
    assert (frame["estimate_ms"] > 0).all() and (frame["n"] >= 3).all()
    # the first three rows were kept, not re-measured

    reloaded = load_table(done.path)
    for key in partial.rows:
        assert reloaded.rows[key]["estimate_ms"] == pytest.approx(partial.rows[key]["estimate_ms"])
    meta = reloaded.meta
    assert meta["spec"]["device"] == "cpu" and meta["spec"]["input_hw"] == [64, 128]
    assert meta["protocol"]["estimator"] == "p25" and "torch" in meta["versions"]
    assert meta["provenance"]["created"] and meta["spaces"] == ["tiny"]


def test_rounds_are_interleaved_resumable_and_keep_the_lowest(tmp_path):
    space = from_dict(TINY)
    units = space_units(space, space.input_hw)
    two = Protocol(warmup_runs=1, warmup_s=0.0, min_repeats=3, max_repeats=6, rel_tol=0.5, max_seconds=1.0, rounds=2)
    table = open_table(tmp_path, _spec(), two)
    # interrupted after round 1 of every key and round 2 of the first: interleaved, not key by key
    part = measure_units(table, units, two, progress=False, limit=len(units) + 1)
    assert sorted(part.rounds_done(u.key) for u in units) == [1] * (len(units) - 1) + [2]
    assert len(part.missing(units, 2)) == len(units) - 1 and not part.missing(units, 1)
    done = measure_units(load_table(part.path), units, two, progress=False)
    frame = pd.read_csv(done.path, dtype={"round_ms": str})
    assert (frame["rounds"] == 2).all() and frame["key"].is_unique
    for row in frame.itertuples():
        rounds = [float(x) for x in row.round_ms.split(";")]
        assert len(rounds) == 2 and row.estimate_ms == pytest.approx(min(rounds), rel=1e-5)


def test_table_refuses_another_protocol(tmp_path):
    open_table(tmp_path, _spec(), FAST)
    with pytest.raises(InvalidInput, match="protocol"):
        open_table(tmp_path, _spec(), Protocol(min_repeats=4))


def test_corrupt_table_is_a_clear_error(tmp_path):
    table = open_table(tmp_path, _spec(), FAST)
    table.path.write_text("this is,not\n\"a table")
    with pytest.raises(InvalidInput, match="corrupt|lacks columns"):
        load_table(table.path)


def test_onnxruntime_backend_times_a_unit(tmp_path):
    space = from_dict(TINY)
    units = [u for u in space_units(space, space.input_hw) if u.kind in ("stem", "head")]
    table = open_table(tmp_path, _spec(backend="onnxruntime"), FAST)
    done = measure_units(table, units, FAST, progress=False)
    assert len(done) == 2 and "onnxruntime" in done.path.name
    assert all(r["estimate_ms"] > 0 for r in done.rows.values())
    # the table records the export that made the timed graphs: `ffnet-nas export`'s defaults
    versions = load_table(done.path).meta["versions"]
    assert (versions["onnx_exporter"], versions["onnx_opset"], versions["onnx_fold_bn"]) == ("dynamo", "18", "false")
    assert table_export(load_table(done.path).meta) == SHIPPED_EXPORT == OnnxExport(DEFAULT_EXPORTER, DEFAULT_OPSET, False)


def test_the_backend_times_the_graph_export_ships(tmp_path):
    import onnx
    import torch
    from ffnet_nas.predictors.latency.backends import export_onnx as backend_export
    from ffnet_nas.space import build_model
    from ffnet_nas.space.deploy import export_onnx

    model = build_model("stemC-basic-d1.1.1-w16.24.32-s2-upC-segC-nearest-predown").eval()
    shipped = onnx.load(str(export_onnx(model, tmp_path / "m.onnx", input_hw=(64, 128))))  # the CLI's defaults
    timed = onnx.load_from_string(backend_export(model, (torch.randn(1, 3, 64, 128),)))
    assert [n.op_type for n in timed.graph.node] == [n.op_type for n in shipped.graph.node]
    assert [o.version for o in timed.opset_import if o.domain == ""] == [DEFAULT_OPSET]


def test_a_table_from_before_the_export_was_recorded_loads_and_is_not_extended(tmp_path):
    space = from_dict(TINY)
    spec = _spec(backend="onnxruntime")
    table = open_table(tmp_path, spec, FAST, space="tiny")
    unit = space_units(space, space.input_hw)[0]
    table.path.write_text(f"{','.join(COLUMNS)}\n{unit.key},{unit.kind},1.5,1.5,1.5,1.4,1.6,0.1,3,True,0.2,1,1.5\n")
    meta = json.loads(table.path.with_suffix(".json").read_text())
    for key in ("onnx_exporter", "onnx_opset", "onnx_fold_bn", "onnxscript"):  # as written before
        del meta["versions"][key]
    table.path.with_suffix(".json").write_text(json.dumps(meta))
    old = load_table(table.path)
    assert old.ms(unit.key) == 1.5 and table_export(old.meta) == LEGACY_EXPORT  # read as the old default
    assert LEGACY_EXPORT == OnnxExport("torchscript", 17, False)
    with pytest.raises(InvalidInput, match="torchscript exporter, opset 17.*dynamo exporter, opset 18.*expected deleting"):
        build(lut_dir=tmp_path, space=space, spec=spec, protocol=FAST, calibrate_n=0, progress=False)
    assert table_export({"spec": {"backend": "eager"}}) is None  # eager tables export nothing


@pytest.mark.slow
def test_compile_backend_times_a_unit(tmp_path):
    space = from_dict(TINY)
    units = [u for u in space_units(space, space.input_hw) if u.kind == "block"][:1]
    done = measure_units(open_table(tmp_path, _spec(backend="compile"), FAST), units, FAST, progress=False)
    assert len(done) == 1


def _rows(csv: Path) -> int:
    try:
        return len(pd.read_csv(csv))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def test_killed_run_resumes_without_duplicates(tmp_path, capsys):
    import yaml

    from ffnet_nas.cli import main

    space_file = tmp_path / "killable.yaml"
    space_file.write_text(yaml.safe_dump(KILLABLE))
    n_keys = len(space_units(from_dict(KILLABLE), (32, 64)))
    workdir = tmp_path / "w"
    # Slow enough per key (the 0.2 s warm-up alone) that the kill lands mid-run.
    args = ["measure-latency", "--space", str(space_file), "--threads", "1",
           "--workdir", str(workdir), "--calibrate", "0", "--repeats", "5:10", "--tolerance", "0.5", "--rounds", "1",
           "--no-progress"]
    cmd = [sys.executable, "-m", "ffnet_nas", *args]
    csv = workdir / "lut" / "cpu-fp32-eager-b1-32x64-t1.csv"
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _rows(csv) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = pd.read_csv(csv)
    assert 2 <= len(before) < n_keys, "the kill should land mid-run"
    assert main(args) == 0  # the re-run, in this process (one torch import less)
    out = capsys.readouterr().out
    after = pd.read_csv(csv)
    assert len(after) == n_keys and after["key"].is_unique
    kept = after.set_index("key").loc[before["key"]]
    assert (kept["seconds"].to_numpy() == before["seconds"].to_numpy()).all()  # not re-measured
    assert f"{n_keys} keys" in out and f"{n_keys - len(before)} measured now" in out
