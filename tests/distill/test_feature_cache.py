"""The teacher-feature cache streamed in chunks: the same bytes as in memory, one chunk held at a
time, resumed after an exception or a SIGKILL at the first missing chunk, damage named or repaired."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from ffnet_nas.distill.features import (
    FeatureSet,
    cached_features,
    chunk_folder,
    compute_features,
    load_features,
    save_features,
)
from ffnet_nas.space.errors import InvalidInput

from tests.helpers.distill import RandomImages, one_thread, tiny_teacher
from tests.helpers.hostile import Planted, flip_a_weight_byte

REPO = Path(__file__).resolve().parents[2]
N, BATCH, ROWS = 37, 4, 8  # 5 chunks: 8, 8, 8, 8, 5 rows; the last batch of the last chunk is short


class Interrupted(Exception):
    pass


class Counting:
    """A data set that records which items were read, and can fail after `fail_after` reads (a kill
    inside the compute loop) or run `probe` before the last batch of each chunk."""

    def __init__(self, base, *, fail_after: int | None = None, probe=None):
        self.base, self.fail_after, self.probe, self.fetched = base, fail_after, probe, []

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        if self.fail_after is not None and len(self.fetched) >= self.fail_after:
            raise Interrupted(f"stopped at item {i}")
        if self.probe is not None and i % ROWS == BATCH:  # the last batch of each chunk (a gc scan is slow)
            self.probe()
        self.fetched.append(i)
        return self.base[i]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_thread()


@pytest.fixture(scope="module")
def teacher():
    return tiny_teacher()


@pytest.fixture(scope="module")
def images():
    return RandomImages(N)


@pytest.fixture(scope="module")
def in_memory(teacher, images):
    return compute_features(teacher, images, batch_size=BATCH, progress=False)


@pytest.fixture(scope="module")
def chunk_bytes(in_memory):
    return in_memory.nbytes // N * ROWS + 1  # ROWS rows a chunk (a whole number of batches)


def stream(teacher, data, path, chunk_bytes, key=None):
    return compute_features(teacher, data, batch_size=BATCH, progress=False, cache=path, key=key or {"k": 1},
                            chunk_bytes=chunk_bytes)


def assert_same(a: FeatureSet, b: FeatureSet) -> None:
    assert len(a) == len(b) and a.nbytes == b.nbytes
    for k, v in a.tensors.items():
        assert v.dtype == b.tensors[k].dtype == torch.float16 and torch.equal(v, b.tensors[k]), k


def chunk_files(path: Path) -> list[Path]:
    return sorted(chunk_folder(path).glob("[0-9]*.pt"))


def test_chunks_hold_the_in_memory_bytes_and_batch_gathers_across_them(tmp_path, teacher, images, in_memory,
                                                                         chunk_bytes):
    fs = stream(teacher, images, tmp_path / "f.pt", chunk_bytes)
    assert [len(c["image"]) for c in fs.chunks] == [8, 8, 8, 8, 5]
    assert_same(fs, in_memory)
    index = torch.tensor([36, 0, 7, 8, 17, 17, -1, 31, 32])  # chunk edges, repeats, a negative row
    for got, want in ((fs.batch(index), in_memory.batch(index)), (fs.batch(range(5, 30)), in_memory.batch(range(5, 30)))):
        for k in want:
            assert got[k].dtype == torch.float32 and torch.equal(got[k], want[k]), k
    assert fs.meta["key"] == {"k": 1} and fs.meta["n"] == N
    # a set made in memory saves into the same layout and reads back the same
    again = load_features(save_features(tmp_path / "g.pt", in_memory, chunk_bytes=chunk_bytes))
    assert len(again.chunks) == 5
    assert_same(again, in_memory)
    with pytest.raises(IndexError):
        fs.batch([N])


def test_an_interrupted_computation_resumes_at_the_first_missing_chunk(tmp_path, teacher, images, in_memory,
                                                                       chunk_bytes):
    path = tmp_path / "f.pt"
    with pytest.raises(Interrupted):  # killed while computing the third chunk
        stream(teacher, Counting(images, fail_after=20), path, chunk_bytes)
    kept = chunk_files(path)
    assert [f.name for f in kept] == ["00000.pt", "00001.pt"] and not path.exists()  # the index comes last
    stamps = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in kept}
    counting = Counting(images)
    fs = stream(teacher, counting, path, chunk_bytes)
    assert counting.fetched == list(range(16, N))  # only the missing chunks' images
    assert all((f.stat().st_ino, f.stat().st_mtime_ns) == stamps[f] for f in kept)  # reused, not rewritten
    assert_same(fs, in_memory)
    # complete: the next call computes nothing; another key (teacher, data, count) computes everything
    counting = Counting(images)
    assert_same(cached_features(path, {"k": 1}, lambda: stream(teacher, counting, path, chunk_bytes)), in_memory)
    assert counting.fetched == []
    stale = Counting(images)
    fs = cached_features(path, {"k": 2}, lambda: stream(teacher, stale, path, chunk_bytes, key={"k": 2}))
    assert stale.fetched == list(range(N)) and fs.meta["key"] == {"k": 2}
    assert_same(fs, in_memory)


KILL_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    from tests.helpers.distill import RandomImages, tiny_teacher
    from ffnet_nas.distill.features import compute_features
    torch.set_num_threads(1)

    class Slow(RandomImages):
        def __getitem__(self, i):
            time.sleep(0.1)
            return super().__getitem__(i)

    compute_features(tiny_teacher(), Slow(40), batch_size=4, progress=False, cache=sys.argv[1], key={"k": 1},
                     chunk_bytes=1)
""")


def test_sigkill_mid_computation_loses_at_most_the_chunk_in_flight(tmp_path, teacher):
    path = tmp_path / "f.pt"
    script = tmp_path / "compute.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], env=dict(os.environ, PYTHONPATH=str(REPO)),
                            cwd=REPO)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(chunk_files(path)) < 3:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = len(chunk_files(path))
    assert 3 <= done < 10 and not path.exists(), "the kill should land mid-computation"
    images = RandomImages(40)
    counting = Counting(images)
    fs = compute_features(teacher, counting, batch_size=4, progress=False, cache=path, key={"k": 1}, chunk_bytes=1)
    assert counting.fetched == list(range(4 * done, 40))
    assert not list(chunk_folder(path).glob("*.tmp"))  # a write cut by the kill is cleaned up
    assert_same(fs, compute_features(teacher, images, batch_size=4, progress=False))


def _held_fp16_bytes(baseline: set[int]) -> int:
    """Bytes of float16 CPU tensor storage alive now (not in `baseline`): features held in memory."""
    storages = {}
    for obj in gc.get_objects():
        if type(obj) is torch.Tensor and obj.dtype == torch.float16 and obj.device.type == "cpu":
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(size for ptr, size in storages.items() if ptr not in baseline and ptr)


def test_memory_holds_one_chunk_not_the_set(tmp_path, teacher, images, in_memory, chunk_bytes):
    def peak_while(compute) -> int:
        gc.collect()
        baseline = {t.untyped_storage().data_ptr() for t in gc.get_objects()
                    if type(t) is torch.Tensor and t.dtype == torch.float16}
        peaks = [0]
        compute(Counting(images, probe=lambda: peaks.append(_held_fp16_bytes(baseline))))
        return max(peaks)

    whole, chunk = in_memory.nbytes, in_memory.nbytes // N * ROWS
    held_in_memory = peak_while(lambda d: compute_features(teacher, d, batch_size=BATCH, progress=False))
    held_streamed = peak_while(lambda d: stream(teacher, d, tmp_path / "f.pt", chunk_bytes))
    # the probe sees what a computation holds: nearly the whole set in memory (all but the last batch) ...
    assert held_in_memory >= whole * (N - BATCH) / N
    # ... and at most one chunk (allocated once, filled batch by batch) plus one batch when streamed
    assert held_streamed <= chunk + whole // N * BATCH, (held_streamed, chunk, whole)


def test_a_damaged_chunk_is_named_then_recomputed_alone(tmp_path, teacher, images, in_memory, chunk_bytes):
    path = tmp_path / "f.pt"
    fs = stream(teacher, images, path, chunk_bytes)
    second = chunk_files(path)[1]
    time.sleep(0.05)  # a new mtime tick: the per-process record of verified chunks goes by inode, size and mtime
    flip_a_weight_byte(second, fs.chunks[1]["s8"])
    del fs
    with pytest.raises(InvalidInput, match=r"^feature chunk '.*00001\.pt' is damaged: its weights hash to \w+, not") as e:
        load_features(path)
    assert "\n" not in str(e.value)
    counting = Counting(images)
    fs = cached_features(path, {"k": 1}, lambda: stream(teacher, counting, path, chunk_bytes))
    assert counting.fetched == list(range(8, 16))  # the damaged chunk only
    assert_same(fs, in_memory)
    # cut short, or gone: also one line naming the file
    third = chunk_files(path)[2]
    third.write_bytes(third.read_bytes()[:1000])
    with pytest.raises(InvalidInput, match=r"^feature chunk '.*00002\.pt' is corrupt"):
        load_features(path)
    third.unlink()
    with pytest.raises(InvalidInput, match=r"^feature chunk '.*00002\.pt' is missing"):
        load_features(path)


def test_nothing_read_runs_code_and_the_index_stays_in_its_folder(tmp_path, teacher, images, chunk_bytes):
    path = tmp_path / "f.pt"
    stream(teacher, images, path, chunk_bytes)
    marker = tmp_path / "pwned"
    torch.save({"format": 2, "payload": Planted(marker)}, chunk_files(path)[0])
    with pytest.raises(InvalidInput, match=r"00000\.pt' holds Python objects other than tensors"):
        load_features(path)
    assert not marker.exists()
    index = torch.load(path, weights_only=True)
    index["chunks"][0]["file"] = "../elsewhere/00000.pt"
    torch.save(index, path)
    with pytest.raises(InvalidInput, match="is not a format-2 feature index"):
        load_features(path)


def test_a_format_1_cache_is_still_read(tmp_path, in_memory):
    """Caches written before the chunks (one file with every tensor) are read and reused as they are."""
    path = tmp_path / "old.pt"
    torch.save({"format": 1, "meta": dict(in_memory.meta, key={"k": 1}), "tensors": in_memory.tensors}, path)
    fs = cached_features(path, {"k": 1}, lambda: pytest.fail("a matching format-1 cache was computed again"))
    assert_same(fs, in_memory)
    assert len(fs.chunks) == 1


def test_an_unwritable_cache_folder_is_one_line(tmp_path, teacher):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(InvalidInput, match=r"^cannot write the feature cache '.*file/f\.pt\.chunks': .*expected a writable"):
        compute_features(teacher, RandomImages(4), progress=False, cache=tmp_path / "file" / "f.pt", key={})
