import os

import pytest

from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_torch_save, atomic_write_text, provenance, read_json


def test_atomic_write_replaces_whole_file_with_normal_mode(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b.txt", "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in path.parent.iterdir()] == ["b.txt"]  # no temp files left


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = atomic_write_text(tmp_path / "keep.pt", "old")
    with pytest.raises(Exception):
        atomic_torch_save(path, {"not picklable": lambda: None})  # fails inside the write
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.pt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(InvalidInput, match="cannot write"):
        atomic_write_text(ro / "x.txt", "x")


def test_read_json_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InvalidInput, match="not found"):
        read_json(tmp_path / "none.json", what="table")
    (tmp_path / "bad.json").write_text('{"a": ')
    with pytest.raises(InvalidInput, match="corrupt or truncated"):
        read_json(tmp_path / "bad.json")


def test_provenance_is_plain_data():
    record = provenance(device="cpu")
    assert record["device"] == "cpu" and type(record["torch"]) is str


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
