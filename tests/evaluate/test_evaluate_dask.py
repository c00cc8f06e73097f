"""Candidates fine-tuned on a real Dask cluster (LocalCluster, 2 worker processes).

The workers fine-tune and score; this process times each point with the workdir's table and
writes the row. The rows must equal a serial evaluation's (same seeds, one torch thread each),
a point a worker finished before the client was stopped is only timed on resume, and a point
another process holds is not fine-tuned twice.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from ffnet_nas.budgets import finetune_config
from ffnet_nas.claims import claim
from ffnet_nas.evaluate import evaluate_points, read_evaluated
from ffnet_nas.predictors.latency import predict_latency
from ffnet_nas.predictors.load import load_latency_table
from ffnet_nas.space import Arch
from ffnet_nas.space.searchspace import from_dict
from ffnet_nas.workspace import Workspace
from tests.helpers.distill import one_thread
from tests.helpers.micro import local_cluster, micro_workdir

distributed = pytest.importorskip("distributed")

HW = (32, 64)
TINY = {"base": "mobile", "name": "tiny", "stems": ["B"], "up_heads": ["B"], "seg_heads": ["B", "C"],
        "stages": {4: {"depths": [[1, 2], [1], [1], [1]], "widths": [[16], [32], [48], [64]]}},
        "first_strides": [1, 2], "pre_downs": [False], "input_size": "32x64"}
CONFIG = finetune_config(steps=3, batch_size=2, checkpoint_every=1)
SETTINGS = {"config": CONFIG, "val_images": 4, "progress": False}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_thread()


@pytest.fixture(scope="module")
def cluster():
    yield from local_cluster()


def _workdir(root) -> Workspace:
    return micro_workdir(root, TINY)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return _workdir(tmp_path_factory.mktemp("micro"))


def test_points_fine_tuned_on_the_cluster_equal_the_serial_rows(cluster, workdir, tmp_path_factory):
    space = from_dict(TINY)
    points = list(dict.fromkeys(space.sample(i) for i in range(8)))[:3]
    frame = evaluate_points(points, workspace=workdir, scheduler=cluster.scheduler_address, **SETTINGS)
    assert sorted(frame["code"]) == sorted(a.code for a in points)
    assert frame["measured_latency_ms"].notna().all() and (frame["latency_table"] != "").all()  # timed here
    for arch in points:
        folder = workdir.point_dir(arch.stable_hash, "distilled")
        assert (folder / "model.pt").is_file()
        assert not workdir.point_row_path(arch.stable_hash, "distilled").exists()  # folded into evaluated.csv
        assert not workdir.point_resume_path(arch.stable_hash, "distilled").exists()
    table = load_latency_table(next(workdir.lut_dir.glob("*.csv")))
    # the same points in this process: same numbers (the latency aside, which is a measurement)
    serial_ws = _workdir(tmp_path_factory.mktemp("serial"))
    serial = evaluate_points(points, workspace=serial_ws, **SETTINGS).set_index("code")
    remote = frame.set_index("code")
    for code in serial.index:
        assert remote.loc[code, "measured_miou"] == pytest.approx(serial.loc[code, "measured_miou"], abs=1e-9), code
        # the latency columns come from this workdir's table, timed in this process
        assert remote.loc[code, "predicted_latency_ms"] == pytest.approx(predict_latency(Arch.parse(code), table))
    # the cluster's workers did the fine-tuning, not this process: the weights record another pid
    client = distributed.Client(cluster.scheduler_address)
    worker_pids = set(client.run(os.getpid).values())
    client.close()
    pids = {torch.load(workdir.point_model_path(a.stable_hash, "distilled"), weights_only=True)
            .get("provenance", {}).get("pid") for a in points}
    assert pids and pids <= worker_pids, (pids, worker_pids)


def test_a_point_finished_by_a_worker_is_only_timed_on_resume_and_a_held_point_is_waited_for(cluster, tmp_path):
    ws = _workdir(tmp_path / "w")
    space = from_dict(TINY)
    a, b = list(dict.fromkeys(space.sample(i) for i in range(8)))[:2]
    evaluate_points([a], workspace=ws, scheduler=cluster.scheduler_address, **SETTINGS)
    row = read_evaluated(ws.evaluated_path).iloc[0].to_dict()
    # as if the client had died after the worker wrote its row: the row file is back, the table empty
    from ffnet_nas.space.io import atomic_write_json

    atomic_write_json(ws.point_row_path(a.stable_hash, "distilled"),
                      {**{k: (None if v != v else v) for k, v in row.items()}, "measured_latency_ms": None})
    ws.evaluated_path.unlink()
    model_mtime = ws.point_model_path(a.stable_hash, "distilled").stat().st_mtime_ns
    # b is held by another process for a moment: the client skips it, then waits and takes it up
    result: dict = {}
    with claim(ws.point_claim_path(b.stable_hash, "distilled")) as mine:
        assert mine
        t = threading.Thread(target=lambda: result.setdefault("frame", evaluate_points(
            [a, b], workspace=ws, scheduler=cluster.scheduler_address, **SETTINGS)))
        t.start()
        deadline = time.time() + 60
        while time.time() < deadline and not ws.evaluated_path.exists():
            time.sleep(0.1)  # a is timed and written while b is held
        time.sleep(1.0)
        assert t.is_alive() and set(read_evaluated(ws.evaluated_path)["code"]) == {a.code}  # b: waited for
    t.join(120)
    frame = result["frame"].set_index("code")
    assert set(frame.index) == {a.code, b.code}
    assert ws.point_model_path(a.stable_hash, "distilled").stat().st_mtime_ns == model_mtime  # a: not fine-tuned again
    assert frame.loc[a.code, "measured_miou"] == pytest.approx(row["measured_miou"])
    assert frame.loc[a.code, "measured_latency_ms"] > 0  # timed on resume
