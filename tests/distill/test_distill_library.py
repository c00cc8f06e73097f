"""Block library: training, table, resume after SIGKILL, failures, teacher files, assembly exactness."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ffnet_nas.distill.assemble import assemble, run_chain, student_chain
from ffnet_nas.distill.choices import space_choices
from ffnet_nas.distill.features import FeatureSet, cached_features, compute_features, load_features, save_features
from ffnet_nas.distill.dispatch import distill_library
from ffnet_nas.distill.library import BlockLibrary, TeacherInfo
from ffnet_nas.distill.teacher import load_teacher, save_teacher
from ffnet_nas.settings import BlockTrainConfig
from ffnet_nas.space.builder import build_model
from ffnet_nas.space.errors import InvalidInput
from tests.helpers.distill import one_thread, NUM_CLASSES, RandomImages, tiny_space, tiny_teacher

REPO = Path(__file__).resolve().parents[2]
FAST = BlockTrainConfig(steps=2, batch_size=4)


@pytest.fixture(scope="module")
def teacher():
    return tiny_teacher()


@pytest.fixture(scope="module")
def feats(teacher):
    return (compute_features(teacher, RandomImages(8), progress=False),
            compute_features(teacher, RandomImages(4, seed=1), progress=False))


@pytest.fixture(scope="module")
def library(tmp_path_factory, teacher, feats):
    lib = BlockLibrary(tmp_path_factory.mktemp("lib"))
    rows = distill_library(space_choices(tiny_space()), library=lib, teacher=TeacherInfo.of(teacher, digest="t0"),
                           train=feats[0], val=feats[1], config=FAST, progress=False)
    assert len(rows) == 17
    return lib


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_thread()


def test_table_has_one_ok_row_per_choice_with_finite_nsr(library):
    table = library.table()
    assert list(table.columns[:4]) == ["position", "choice", "status", "nsr_val"]
    assert len(table) == 17 and set(table.status) == {"ok"}
    assert table.nsr_val.between(0, 1e6).all() and (table.steps == 2).all()
    for file in table.file:
        assert (library.root / file).is_file()


def test_rerun_skips_finished_blocks(library, teacher, feats):
    before = {f: (library.root / f).stat().st_mtime_ns for f in library.table().file}
    rows = distill_library(space_choices(tiny_space()), library=library, teacher=TeacherInfo.of(teacher, digest="t0"),
                           train=feats[0], val=feats[1], config=FAST, progress=False)
    assert rows == []
    assert before == {f: (library.root / f).stat().st_mtime_ns for f in library.table().file}


def test_assembled_model_equals_the_chain_of_distilled_blocks(library):
    """The claim of assemble.py: adapters fold exactly, and shapes/keys are the arch's own."""
    for arch in tiny_space():
        model = assemble(arch, library)
        reference = build_model(arch, num_classes=NUM_CLASSES).state_dict()
        assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in reference.items()}
        chain = student_chain(arch, library)
        x = torch.randn(2, 3, 32 * arch.input_scale, 64 * arch.input_scale)
        with torch.no_grad():
            got, want = model(x), run_chain(chain, x)
        rel = ((got - want).norm() / want.norm()).item()
        assert rel < 1e-4, (arch.code, rel)
        # and the fold is doing work: the student widths differ from the teacher's
        assert chain[1].out_adapter.weight.shape[0] != chain[1].out_adapter.weight.shape[1]


def test_nan_blocks_are_marked_failed_and_never_assembled(tmp_path, teacher, feats):
    train, val = feats
    poisoned = dict(train.tensors)
    poisoned["s16"] = poisoned["s16"].clone()
    poisoned["s16"][:] = float("nan")
    lib = BlockLibrary(tmp_path)
    arch = next(iter(tiny_space()))
    from ffnet_nas.distill.choices import arch_choices

    rows = distill_library(arch_choices(arch), library=lib, teacher=TeacherInfo.of(teacher, digest="t0"),
                           train=FeatureSet(poisoned), val=val, config=FAST, progress=False)
    status = {r["position"]: r["status"] for r in rows}
    assert status["s16"] == "failed" and status["s32"] == "failed"  # NaN target, NaN input
    assert status["s4"] == status["s8"] == "ok"
    assert "nan" in lib.rows()[("s16", arch_choices(arch)[2].choice)]["message"]
    with pytest.raises(InvalidInput, match=r"s16:.*\(failed\).*s32:.*\(failed\)"):
        assemble(arch, lib)


def test_missing_blocks_are_named(tmp_path, teacher):
    lib = BlockLibrary(tmp_path)
    lib.bind(TeacherInfo.of(teacher, digest="t0"))
    with pytest.raises(InvalidInput, match=r"s4:stemB.*\(missing\)"):
        assemble(next(iter(tiny_space())), lib)
    with pytest.raises(InvalidInput, match="no block library"):
        BlockLibrary(tmp_path / "nothing").teacher()


def test_a_library_refuses_another_teacher(library, teacher):
    with pytest.raises(InvalidInput, match="distilled from teacher"):
        library.bind(TeacherInfo.of(teacher, digest="other"))


def test_weight_files_without_rows_are_recovered(tmp_path, library):
    import shutil

    copy = BlockLibrary(tmp_path / "copy")
    shutil.copytree(library.root, copy.root)
    copy.table_path.unlink()  # as if killed between saving the weights and rewriting the table
    assert copy.recover() == 17
    assert set(copy.table().status) == {"ok"}


def test_damaged_or_missing_block_files_are_trained_again_and_a_damaged_table_is_rebuilt(tmp_path, library, teacher,
                                                                                         feats, caplog):
    import shutil

    from tests.helpers.hostile import flip_a_weight_byte

    copy = BlockLibrary(tmp_path / "copy")
    shutil.copytree(library.root, copy.root)
    rows = copy.table().to_dict("records")
    damaged, missing = rows[0], rows[1]
    weights = torch.load(copy.root / damaged["file"], weights_only=True)["state_dict"]
    flip_a_weight_byte(copy.root / damaged["file"], max(weights.values(), key=lambda t: t.numel()))
    (copy.root / missing["file"]).unlink()
    with pytest.raises(InvalidInput, match=re.escape(f"{damaged['position']}:{damaged['choice']} ") + r".* are missing or corrupt "
                                           r"\(its weights hash to .*re-run 'ffnet-nas distill'"):
        copy.load_block(damaged["position"], damaged["choice"])
    assert copy.recover() == 2  # the two rows dropped...
    assert "damaged" in caplog.text
    retrained = distill_library(space_choices(tiny_space()), library=copy, teacher=TeacherInfo.of(teacher, digest="t0"),
                                train=feats[0], val=feats[1], config=FAST, progress=False)
    assert {(r["position"], r["choice"]) for r in retrained} == {(damaged["position"], damaged["choice"]),
                                                                 (missing["position"], missing["choice"])}
    copy.load_block(damaged["position"], damaged["choice"])  # ...and trained again
    # a torn table: read as an error naming the file; the writer rebuilds it from the files
    text = copy.table_path.read_text()
    copy.table_path.write_text(text.replace("\n" + text.splitlines()[3] + "\n", "\n" + text.splitlines()[3][:12] + "\n"))
    with pytest.raises(InvalidInput, match=r"blocks.csv' line 4 has \d+ fields.*rebuilds it from the weight files"):
        copy.table()
    assert copy.recover() >= 1 and len(copy.table()) == 17 and set(copy.table().status) == {"ok"}


@pytest.mark.slow  # loky starts 2 worker processes that import torch: ~25 s on the shared CI box
def test_parallel_jobs_train_from_cache_files(tmp_path, teacher, feats):
    paths = [save_features(tmp_path / f"{s}.pt", f) for s, f in zip(("train", "val"), feats)]
    lib = BlockLibrary(tmp_path / "lib")
    choices = [c for c in space_choices(tiny_space()) if c.position in ("s16", "head")]
    rows = distill_library(choices, library=lib, teacher=TeacherInfo.of(teacher, digest="t0"), train=paths[0],
                           val=paths[1], config=FAST, jobs=2, progress=False)
    assert sorted((r["position"], r["status"]) for r in rows) == sorted((c.position, "ok") for c in choices)
    assert len(lib.table()) == len(choices)


def test_feature_cache_round_trip_and_key(tmp_path, teacher, feats):
    path = tmp_path / "f.pt"
    calls = []

    def compute():
        calls.append(1)
        return feats[1]

    a = cached_features(path, {"teacher": "x"}, compute)
    b = cached_features(path, {"teacher": "x"}, compute)
    assert len(calls) == 1 and len(b) == len(feats[1])
    for k in feats[1].tensors:
        torch.testing.assert_close(b.tensors[k], feats[1].tensors[k])
    cached_features(path, {"teacher": "y"}, compute)  # another teacher: recomputed
    assert len(calls) == 2
    path.write_bytes(b"garbage")
    with pytest.raises(InvalidInput, match="corrupt"):
        load_features(path)
    assert a.tensors["s4"].dtype == torch.float16


def test_teacher_file_round_trip_and_bad_files(tmp_path, teacher):
    path = save_teacher(tmp_path / "teacher.pt", teacher, data="synthetic", input_hw=[32, 64], miou=0.1)
    loaded = load_teacher(path)
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), teacher(x))
    assert loaded.teacher_info["data"] == "synthetic"
    with pytest.raises(InvalidInput, match="not found"):
        load_teacher(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    with pytest.raises(InvalidInput, match="corrupt"):
        load_teacher(tmp_path / "bad.pt")
    obj = torch.load(path, weights_only=True)
    obj["arch"] = "stemB-basic-d2.1.1.1-w16.32.48.64-s1-upB-segB-nearest"
    torch.save(obj, tmp_path / "mismatch.pt")
    with pytest.raises(InvalidInput, match="do not match"):
        load_teacher(tmp_path / "mismatch.pt")


KILL_SCRIPT = textwrap.dedent("""
    import sys, torch
    from tests.helpers.distill import RandomImages, tiny_space, tiny_teacher
    from ffnet_nas.distill.choices import space_choices
    from ffnet_nas.distill.features import compute_features
    from ffnet_nas.distill.dispatch import distill_library
    from ffnet_nas.distill.library import BlockLibrary, TeacherInfo
    from ffnet_nas.settings import BlockTrainConfig
    torch.set_num_threads(1)
    t = tiny_teacher()
    tr = compute_features(t, RandomImages(8), progress=False)
    va = compute_features(t, RandomImages(4, seed=1), progress=False)
    distill_library(space_choices(tiny_space()), library=BlockLibrary(sys.argv[1]), teacher=TeacherInfo.of(t, digest="t0"),
                    train=tr, val=va, config=BlockTrainConfig(steps=int(sys.argv[2]), batch_size=4), progress=False)
""")


def test_sigkill_loses_at_most_the_block_in_flight(tmp_path, teacher, feats):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    lib = BlockLibrary(tmp_path / "lib")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script), str(lib.root), "3"], env=env, cwd=REPO)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and (not lib.table_path.is_file() or len(lib.table()) < 3):
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = lib.rows()
    assert 3 <= len(before) < 17, "the kill should land mid-library"
    # the kill may land after a block's weight file is written and before its row: resume then
    # rightly recovers that block from its file instead of training it again
    orphans = {key for key in _keys_of_weight_files(lib) if key not in before}
    assert len(orphans) <= 1, orphans
    leftovers = list(lib.root.rglob("*.tmp"))
    mtimes = {k: (lib.root / r["file"]).stat().st_mtime_ns for k, r in before.items()}
    # resume (same teacher and features as the script's): only the missing blocks are trained
    rows = distill_library(space_choices(tiny_space()), library=lib, teacher=TeacherInfo.of(teacher, digest="t0"),
                           train=feats[0], val=feats[1], config=BlockTrainConfig(steps=3, batch_size=4), progress=False)
    after = lib.rows()
    assert {(r["position"], r["choice"]) for r in rows} == set(after) - set(before) - orphans  # only the missing trained
    assert len(rows) == 17 - len(before) - len(orphans)
    assert len(after) == 17 and {r["status"] for r in after.values()} == {"ok"}
    for k, r in before.items():
        assert after[k]["nsr_val"] == pytest.approx(r["nsr_val"])
        assert (lib.root / r["file"]).stat().st_mtime_ns == mtimes[k]
    assert len(leftovers) <= 1  # at most the temp file of the write in flight


def _keys_of_weight_files(lib: BlockLibrary) -> set[tuple[str, str]]:
    """(position, choice) of every readable weight file in the library's blocks folder."""
    keys = set()
    for path in (lib.root / "blocks").glob("*.pt"):
        try:
            row = torch.load(path, map_location="cpu", weights_only=True)["row"]
        except Exception:  # noqa: BLE001 - a file cut by the kill is simply trained again
            continue
        keys.add((row["position"], row["choice"]))
    return keys


JOBS_SCRIPT = textwrap.dedent("""
    import sys, torch
    from tests.helpers.distill import RandomImages, tiny_space, tiny_teacher
    from ffnet_nas.distill.choices import space_choices
    from ffnet_nas.distill.features import compute_features, save_features
    from ffnet_nas.distill.dispatch import distill_library
    from ffnet_nas.distill.library import BlockLibrary, TeacherInfo
    from ffnet_nas.settings import BlockTrainConfig
    torch.set_num_threads(1)
    t = tiny_teacher()
    tr = save_features(sys.argv[1] + "/train.pt", compute_features(t, RandomImages(8), progress=False))
    va = save_features(sys.argv[1] + "/val.pt", compute_features(t, RandomImages(4, seed=1), progress=False))
    distill_library(space_choices(tiny_space()), library=BlockLibrary(sys.argv[1] + "/lib"),
                    teacher=TeacherInfo.of(t, digest="t0"), train=tr, val=va,
                    config=BlockTrainConfig(steps=100000, batch_size=4), jobs=2, progress=False)
""")


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def _maps(pid: int, path: Path) -> bool:
    try:
        return str(path) in (Path("/proc") / str(pid) / "maps").read_text()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process parents from /proc (Linux)")
def test_workers_of_a_killed_distill_jobs_end_with_it(tmp_path):
    """kill -9 of `distill --jobs N` used to leave its workers training (0.75 GB each)."""
    script = tmp_path / "run.py"
    script.write_text(JOBS_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env, cwd=REPO)
    workers: set[int] = set()
    try:
        deadline = time.time() + 180
        # both workers are busy once each holds a block: their CPU time grows past their start-up
        while time.time() < deadline and len(workers) < 2:
            workers = {c for c in _children(proc.pid) if b"LokyProcess" in _cmdline(c)}  # not the resource trackers
            time.sleep(0.5)
        assert len(workers) >= 2, f"no pool workers seen under pid {proc.pid}: {_children(proc.pid)}"
        # each worker is training once it has memory-mapped the feature cache (inside its task)
        while time.time() < deadline and not all(_maps(w, tmp_path / "train.pt") for w in workers):
            time.sleep(0.5)
        assert all(_maps(w, tmp_path / "train.pt") for w in workers), "the workers never started their blocks"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        deadline = time.time() + 15
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "pool workers outlived the killed parent"
    finally:
        for pid in [proc.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
