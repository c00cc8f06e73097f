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
from typing import Any, Callable

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
    """What produced a file: versions, host and time, plus whatever the caller adds (device, dtype, ...)."""
    import torch

    record = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
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


def refused_as_code(error: BaseException) -> bool:
    """Whether `torch.load(weights_only=True)` refused a file because it pickles code (a class or
    function to call), as opposed to the file being damaged. Both raise UnpicklingError with the same
    opening words; only the former names an unsupported global."""
    return "Unsupported global" in str(error)
