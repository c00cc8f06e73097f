"""`ffnet-nas run --scheduler`: the blocks and every fine-tune go to a real Dask cluster's workers
(LocalCluster, 2 processes); the latency table and the timings stay in the run's process."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch

from ffnet_nas.cli import main
from ffnet_nas.workspace import Workspace

distributed = pytest.importorskip("distributed")


@pytest.mark.slow  # a whole micro run on a 2-worker cluster: ~75 s here; the library and evaluation on a
# cluster are tested in the default suite (tests/distill/test_distill_dask.py, tests/evaluate/test_evaluate_dask.py)
def test_run_hands_blocks_and_fine_tunes_to_the_cluster(tmp_path, capsys):
    ws = Workspace(tmp_path / "w")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster:
        with distributed.Client(cluster.scheduler_address) as client:
            workers = set(client.run(os.getpid).values())
        code = main(["run", "--budget", "micro", "--workdir", str(ws.root), "--scheduler", cluster.scheduler_address,
                     "--no-progress", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]

    def writer(path) -> int:
        return torch.load(path, map_location="cpu", weights_only=True)["provenance"]["pid"]

    blocks = sorted((ws.library_dir / "blocks").glob("*.pt"))
    assert blocks and {writer(p) for p in blocks} <= workers  # every block trained on a worker
    table = pd.read_csv(ws.evaluated_path)
    models = [ws.resolve(p) for p in table["checkpoint"]]
    assert len(models) >= 3 and {writer(p) for p in models} <= workers  # design points and candidates too
    assert table["measured_latency_ms"].notna().all()  # timed by the run, with its table
    assert not list(ws.evaluated_dir.rglob("row.json"))  # every worker's row is in evaluated.csv
    assert writer(ws.teacher_path) == os.getpid()  # the teacher is one job: trained here
