"""Atomic file writes and provenance records, shared by every layer.

It lives in `space` because `space` is the bottom of the import graph (DESIGN.md): the
latency tables in `predictors`, the block library in `distill` and the CLI all write files,
and every one of those writes must survive a kill (temp file in the same folder + rename).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from ffnet_nas.space.errors import InvalidInput


def _atomic(path: str | Path, write: Callable[[str], None]) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise InvalidInput(f"cannot write {str(path)!r}: {e.strerror or e}; expected a writable folder") from None
    try:
        write(tmp)
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 minus umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise InvalidInput(f"cannot write {str(path)!r}: {e.strerror or e} (nothing was replaced)") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return _atomic(path, write)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_csv(path: str | Path, frame: "Any") -> Path:
    """A pandas DataFrame as CSV (a table a person can open with pandas or a spreadsheet)."""
    return atomic_write_text(path, frame.to_csv(index=False))


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    import torch

    def write(tmp: str) -> None:
        # Serialise in memory, then write with Python: torch's own writer reports a full disk as a
        # RuntimeError ("unexpected pos ..."), whether given a path or a file; Python's write raises
        # OSError(ENOSPC), which `_atomic` turns into one line. The files saved here (weights, resume
        # states) are at most a few hundred MB, which a training process holds anyway.
        # fsync: the bytes are on disk before the rename.
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())

    return _atomic(path, write)


def read_json(path: str | Path, *, what: str = "file") -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{what} {str(path)!r} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{what} {str(path)!r} is corrupt or truncated ({e}); delete it and re-run the command that makes it") from None


def provenance(**extra: Any) -> dict[str, Any]:
    """What produced a file: versions, host, process and time, plus whatever the caller adds (device, dtype,
    ...). The pid tells which worker of a cluster (or rank of a torchrun job) wrote it."""
    import torch

    record = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # plain str: weights_only torch.load refuses TorchVersion
        "ffnet_nas": _version(),
    }
    record.update(extra)
    return record


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ffnet-nas")
    except Exception:
        return "unknown"


DIGEST_KEY = "weights_sha1"  # the key under which weight files record `tensor_digest` of their state dict


def tensor_digest(tensors: "Any", *, salt: str = "") -> str:
    """sha1 prefix of a name -> tensor mapping: names, dtypes, shapes and bytes in sorted key order.

    Weight files record it when written and readers verify it (`check_digest`): a file damaged
    inside its tensor data still unpickles, and would otherwise load as silently wrong weights.
    """
    import hashlib

    import torch

    h = hashlib.sha1(salt.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def check_digest(obj: "Any", *, path: str | Path, what: str, hint: str, key: str = "state_dict") -> None:
    """Verify the `weights_sha1` a weight file recorded over `obj[key]` (files without one predate it: accepted)."""
    recorded = obj.get(DIGEST_KEY) if isinstance(obj, dict) else None
    if recorded is None:
        return
    tensors = obj.get(key)
    if not isinstance(tensors, dict) or not all(hasattr(t, "detach") for t in tensors.values()):
        raise InvalidInput(f"{what} {str(path)!r} is damaged: its {key!r} is not a mapping of tensors; {hint}")
    actual = tensor_digest(tensors)
    if actual != recorded:
        raise InvalidInput(f"{what} {str(path)!r} is damaged: its weights hash to {actual}, not the {recorded} recorded "
                           f"when it was written; {hint}")


def refused_as_code(error: BaseException) -> bool:
    """Whether `torch.load(weights_only=True)` refused a file because it pickles code (a class or
    function to call), as opposed to the file being damaged. Both raise UnpicklingError with the same
    opening words; only the former names an unsupported global."""
    return "Unsupported global" in str(error)


def read_checked_csv(path: str | Path, *, what: str, required: "Sequence[str]", fix: str, key: "Sequence[str]" = (),
                     finite: "Sequence[str]" = (), **read_csv_args: Any) -> "Any":
    """A CSV this tool wrote, checked before anything trusts it; `InvalidInput` naming the line otherwise.

    Every writer here writes whole files atomically, so damage comes from outside (a copy cut
    short, a disk error, a hand edit). Checked: the text is UTF-8; the header has the `required`
    columns; every row has as many fields as the header; a last row without its newline is torn
    (dropped with a warning: whatever it recorded is made again by the step that writes it);
    rows repeating a `key` are dropped when identical and refused when they differ; the `finite`
    columns hold finite numbers. `fix` ends every message: what the user should do.
    """
    import csv
    import logging
    import math

    import pandas as pd

    path = Path(path)
    where = f"{what} {str(path)!r}"
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{where} is not text (byte {e.start} is not UTF-8); {fix}") from None
    except OSError as e:
        raise InvalidInput(f"{where} cannot be read ({e.strerror or e}); {fix}") from None
    if not text.strip():
        raise InvalidInput(f"{where} is empty; {fix}")
    reader = csv.reader(io.StringIO(text))
    try:
        records = [(reader.line_num, fields) for fields in reader]
    except csv.Error as e:
        raise InvalidInput(f"{where} is not a valid CSV ({e}); {fix}") from None
    if not text.endswith("\n") and len(records) > 1:
        number, fields = records.pop()
        logging.getLogger(__name__).warning("%s: the last row (line %d) is torn and was ignored: %s", where, number,
                                            ",".join(fields)[:80])
    header = records[0][1]
    missing = [c for c in required if c not in header]
    if missing:
        raise InvalidInput(f"{where} lacks columns {missing} (has {header}); {fix}")
    seen: dict[tuple, tuple[int, list[str]]] = {}
    keep = [header]
    index = [header.index(c) for c in key]
    for number, fields in records[1:]:
        if not fields:
            continue
        if len(fields) != len(header):
            raise InvalidInput(f"{where} line {number} has {len(fields)} fields, not the header's {len(header)} "
                               f"(a damaged or torn row); {fix}")
        if index:
            k = tuple(fields[i] for i in index)
            if k in seen:
                first, other = seen[k]
                if other != fields:
                    raise InvalidInput(f"{where} has two different rows for {'/'.join(key)} {'/'.join(k)} (lines "
                                       f"{first} and {number}); expected one; {fix}")
                logging.getLogger(__name__).warning("%s: line %d repeats line %d and was ignored", where, number, first)
                continue
            seen[k] = (number, fields)
        for column in finite:
            value = fields[header.index(column)]
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                raise InvalidInput(f"{where} line {number}: {column} is {value!r}, expected a finite number; {fix}")
        keep.append(fields)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(keep)
    buffer.seek(0)
    return pd.read_csv(buffer, **read_csv_args)
