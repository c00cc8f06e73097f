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


# ---- checked tables and weight digests ---------------------------------------------------------

def _table(tmp_path, text: str):
    path = tmp_path / "t.csv"
    path.write_text(text)
    return path


def _read(path, **kw):
    from ffnet_nas.space.io import read_checked_csv

    return read_checked_csv(path, what="test table", required=("code", "init", "miou"), key=("code", "init"),
                            finite=("miou",), fix="delete it", **kw)


def test_a_checked_table_reads_rows_with_quoted_newlines(tmp_path):
    frame = _read(_table(tmp_path, 'code,init,miou,message\na,d,15.94,"two\nlines"\nb,d,3.5,\n'))
    assert list(frame["code"]) == ["a", "b"] and list(frame["miou"]) == [15.94, 3.5]
    assert frame["message"][0] == "two\nlines"


def test_a_torn_last_row_is_dropped_with_a_warning_not_read_as_a_number(tmp_path, caplog):
    # "15.94" cut to "1": read as 1.0 before; now the whole row is dropped (the step remakes it)
    path = _table(tmp_path, "code,init,miou,seconds\na,d,3.5,2\nb,d,1")
    frame = _read(path)
    assert list(frame["code"]) == ["a"]
    assert "line 3 is torn" in caplog.text or "(line 3) is torn" in caplog.text
    assert path.read_text().endswith("b,d,1")  # reading never writes: the user's file is untouched


@pytest.mark.parametrize("text, match", [
    ("code,init,miou\na,d,3.5\nb,d\n", r"line 3 has 2 fields, not the header's 3"),
    ("code,init,miou\na,d,3.5\na,d,4.0\n", r"two different rows for code/init a/d \(lines 2 and 3\)"),
    ("code,init,miou\na,d,nan\n", r"line 2: miou is 'nan', expected a finite number"),
    ("code,init,miou\na,d,\n", r"line 2: miou is '', expected a finite number"),
    ("code,init\na,d\n", r"lacks columns \['miou'\]"),
    ("", r"is empty"),
])
def test_damaged_tables_are_one_line_naming_file_and_line(tmp_path, text, match):
    with pytest.raises(InvalidInput, match=match) as e:
        _read(_table(tmp_path, text))
    assert "t.csv" in str(e.value) and str(e.value).endswith("delete it") and "\n" not in str(e.value)


def test_binary_garbage_is_not_a_table(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"code,init,miou\n\xff\xfe\x00garbage")
    with pytest.raises(InvalidInput, match="is not text"):
        _read(path)


def test_an_identical_repeated_row_is_dropped(tmp_path):
    frame = _read(_table(tmp_path, "code,init,miou\na,d,3.5\na,d,3.5\n"))
    assert len(frame) == 1


def test_a_weight_file_damaged_inside_a_tensor_is_refused_not_loaded(tmp_path):
    from ffnet_nas.space.builder import build_model
    from ffnet_nas.space.checkpoint import load_model, save_checkpoint
    from tests.helpers.hostile import flip_a_weight_byte

    model = build_model("stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest", num_classes=3)
    path = save_checkpoint(tmp_path / "model.pt", model)
    load_model(path)  # intact: loads
    weight = model.state_dict()["head.layers.3.last_layer.3.weight"]
    flip_a_weight_byte(path, weight)
    with pytest.raises(InvalidInput, match=r"model.pt' is damaged: its weights hash to \w+, not the \w+ recorded"):
        load_model(path)
