"""The block library on a real Dask cluster (dask.distributed LocalCluster, 2 worker processes).

What it must guarantee (issue: scale out on existing engines): every block is in the library once
and equals a serial run's; a worker killed mid-block costs only that block, which another worker
trains; two processes distilling the same library at once (a cluster and a local run) never train
the same block twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ffnet_nas.distill.choices import space_choices
from ffnet_nas.distill.features import compute_features, save_features
from ffnet_nas.distill.dispatch import distill_library
from ffnet_nas.distill.library import BlockLibrary, TeacherInfo
from ffnet_nas.settings import BlockTrainConfig
from tests.helpers.distill import RandomImages, one_thread, tiny_space, tiny_teacher
from tests.helpers.micro import local_cluster

distributed = pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parents[2]
FAST = BlockTrainConfig(steps=3, batch_size=4)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_thread()


@pytest.fixture(scope="module")
def cluster():
    yield from local_cluster()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    teacher = tiny_teacher()
    train = save_features(root / "train.pt", compute_features(teacher, RandomImages(8), progress=False))
    val = save_features(root / "val.pt", compute_features(teacher, RandomImages(4, seed=1), progress=False))
    return root, TeacherInfo.of(teacher, digest="t0"), train, val


def test_a_library_distilled_on_the_cluster_equals_the_serial_one(cluster, setup, tmp_path):
    root, info, train, val = setup
    choices = space_choices(tiny_space())
    serial = BlockLibrary(tmp_path / "serial")
    distill_library(choices, library=serial, teacher=info, train=train, val=val, config=FAST, progress=False)
    on_cluster = BlockLibrary(tmp_path / "cluster")
    rows = distill_library(choices, library=on_cluster, teacher=info, train=train, val=val, config=FAST,
                           scheduler=cluster.scheduler_address, progress=False)
    assert sorted((r["position"], r["choice"]) for r in rows) == sorted((c.position, c.choice) for c in choices)
    table = on_cluster.table()
    assert len(table) == len(choices) and not table.duplicated(["position", "choice"]).any()
    assert set(table.status) == {"ok"}
    a, b = serial.rows(), on_cluster.rows()
    for key in a:  # same seeds, one torch thread on both sides: the same numbers
        assert b[key]["nsr_val"] == a[key]["nsr_val"], key
        assert b[key]["nsr_train"] == a[key]["nsr_train"], key
    # a second call finds everything done: nothing is sent to the cluster
    assert distill_library(choices, library=on_cluster, teacher=info, train=train, val=val, config=FAST,
                           scheduler=cluster.scheduler_address, progress=False) == []


def _held(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_a_worker_killed_mid_block_costs_only_that_block(cluster, setup, tmp_path):
    root, info, train, val = setup
    choices = space_choices(tiny_space())
    lib = BlockLibrary(tmp_path / "lib")
    client = distributed.Client(cluster.scheduler_address)
    worker_pids = set(client.run(os.getpid).values())
    client.close()
    slow = BlockTrainConfig(steps=150, batch_size=4)  # ~1 s a block: long enough to be killed in
    result: dict = {}

    def distil() -> None:
        try:
            result["rows"] = distill_library(choices, library=lib, teacher=info, train=train, val=val, config=slow,
                                             scheduler=cluster.scheduler_address, progress=False)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread below
            result["error"] = e

    thread = threading.Thread(target=distil)
    thread.start()
    killed = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and thread.is_alive():
        for claim_file in (lib.root / "claims").glob("*.lock") if (lib.root / "claims").is_dir() else []:
            try:
                record = json.loads(claim_file.read_text() or "{}")
            except (OSError, ValueError):
                continue
            stem = claim_file.stem
            if record.get("pid") in worker_pids and _held(claim_file) and not (lib.root / "blocks" / f"{stem}.pt").exists():
                os.kill(record["pid"], signal.SIGKILL)
                killed = (record["pid"], stem)
                break
        time.sleep(0.05)
    thread.join(300)
    assert killed is not None, "no worker was caught mid-block"
    assert "error" not in result, result.get("error")
    table = lib.table()
    assert len(table) == len(choices) and not table.duplicated(["position", "choice"]).any()
    assert set(table.status) == {"ok"}
    assert (lib.root / "blocks" / f"{killed[1]}.pt").is_file()  # the killed block was trained by another worker
    assert len(result["rows"]) == len(choices)


LOCAL_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    from tests.helpers.distill import tiny_space
    from ffnet_nas.distill.choices import space_choices
    from ffnet_nas.distill.dispatch import distill_library
    from ffnet_nas.distill.library import BlockLibrary, TeacherInfo
    from ffnet_nas.settings import BlockTrainConfig
    torch.set_num_threads(1)
    info = TeacherInfo(**{**json.loads(sys.argv[2]), "channels": tuple(json.loads(sys.argv[2])["channels"])})
    rows = distill_library(space_choices(tiny_space()), library=BlockLibrary(sys.argv[1]), teacher=info,
                           train=sys.argv[3], val=sys.argv[4], config=BlockTrainConfig(steps=150, batch_size=4),
                           progress=False)
    print(json.dumps([[r["position"], r["choice"]] for r in rows]))
""")


def test_a_cluster_and_a_local_run_on_one_library_never_train_a_block_twice(cluster, setup, tmp_path):
    root, info, train, val = setup
    choices = space_choices(tiny_space())
    lib = BlockLibrary(tmp_path / "lib")
    script = tmp_path / "local.py"
    script.write_text(LOCAL_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    local = subprocess.Popen([sys.executable, str(script), str(lib.root), json.dumps(info.to_dict()), str(train),
                              str(val)], env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        # start the cluster once the local run has begun its first block, so both work at once
        deadline = time.time() + 60
        while time.time() < deadline and not any((lib.root / "claims").glob("*.lock") if (lib.root / "claims").is_dir()
                                                 else []):
            time.sleep(0.05)
        on_cluster = distill_library(choices, library=lib, teacher=info, train=train, val=val,
                                     config=BlockTrainConfig(steps=150, batch_size=4),
                                     scheduler=cluster.scheduler_address, progress=False)
        out, _ = local.communicate(timeout=300)
    finally:
        if local.poll() is None:
            local.kill()
    assert local.returncode == 0
    by_local = {tuple(k) for k in json.loads(out.strip().splitlines()[-1])}
    by_cluster = {(r["position"], r["choice"]) for r in on_cluster}
    assert by_local and by_cluster, (by_local, by_cluster)  # both really worked
    assert not by_local & by_cluster  # no block trained twice
    assert by_local | by_cluster == {(c.position, c.choice) for c in choices}
    table = lib.table()
    assert len(table) == len(choices) and not table.duplicated(["position", "choice"]).any()
    assert set(table.status) == {"ok"}
