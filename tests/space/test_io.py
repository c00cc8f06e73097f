import os
import tempfile

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


def test_read_only_folder_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.geteuid() != 0:
            with pytest.raises(InvalidInput, match="cannot write"):
                atomic_write_text(ro / "x.txt", "x")
        else:
            # root ignores folder permissions (and CI runs as root): try the write from a forked child
            # that has dropped to an unprivileged user; everything it needs is already imported
            tmp_path.chmod(0o755)
            for parent in tmp_path.parents:  # pytest's base temp folder is 0700: let the child through
                if str(parent).startswith(tempfile.gettempdir() + os.sep):
                    parent.chmod(parent.stat().st_mode | 0o055)
            assert _unprivileged_write_error(ro / "x.txt") == "InvalidInput"
        assert not (ro / "x.txt").exists() and list(ro.iterdir()) == []  # nothing left behind
    finally:
        ro.chmod(0o755)


def _unprivileged_write_error(path) -> str:
    """Run `atomic_write_text(path)` as user nobody in a forked child; the name of what it raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        os.close(read)
        outcome = b"no error"
        try:
            os.setgid(65534)
            os.setuid(65534)
            atomic_write_text(path, "x")
        except InvalidInput as e:
            outcome = b"InvalidInput" if "cannot write" in str(e) else b"InvalidInput without 'cannot write'"
        except BaseException as e:  # noqa: BLE001 - report anything else to the parent
            outcome = type(e).__name__.encode()
        os.write(write, outcome)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        outcome = f.read().decode()
    os.waitpid(pid, 0)
    return outcome


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


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 256 KiB filesystem (tmpfs), where the platform lets this process mount one."""
    import subprocess

    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()[:80]})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_full_disk_during_torch_save_is_one_line_and_keeps_the_old_file(tiny_filesystem):
    import torch

    path = atomic_torch_save(tiny_filesystem / "model.pt", {"w": torch.zeros(10)})
    before = path.read_bytes()
    with pytest.raises(InvalidInput, match="No space left on device.*nothing was replaced") as err:
        atomic_torch_save(path, {"w": torch.randn(256, 1024)})  # 1 MiB into 256 KiB
    assert "\n" not in str(err.value)
    assert path.read_bytes() == before
    assert [p.name for p in tiny_filesystem.iterdir()] == ["model.pt"]  # no temp file left
