"""The block library: one weight file per distilled choice + one table, both written atomically.

    LIBRARY/library.json          the teacher it was distilled from (arch, classes, widths, digest)
    LIBRARY/blocks.csv            position, choice, status, nsr_val, nsr_train, steps, seconds, params, file, message
    LIBRARY/blocks/<pos>__<choice>.pt
    LIBRARY/claims/<pos>__<choice>.lock   held (flock) while some process trains that block

Each block's weight file and its row are written by whoever trained it, the moment it finishes
(the file atomically, the table by temp file + rename under `blocks.csv.lock`, so several
processes may add rows). A kill therefore loses at most the blocks in flight; a weight file
whose row did not make it into the table is recovered from the file on the next run. Re-running
skips every choice already in the table (`retry_failed` re-trains the failed ones). Who trains
which block, and where: `ffnet_nas.distill.dispatch`.

A library belongs to one teacher: its students read that teacher's features and widths, so
mixing teachers would chain blocks trained against different targets. Binding a library to a
different teacher is refused.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ffnet_nas.distill.blocks import StudentBlock
from ffnet_nas.distill.choices import ChoiceSpec
from ffnet_nas.distill.features import plain_provenance
from ffnet_nas.distill.train import OK
from ffnet_nas.claims import table_lock
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import (atomic_write_csv, atomic_write_json, check_digest,
                                read_checked_csv, read_json)

logger = logging.getLogger(__name__)
COLUMNS = ("position", "choice", "status", "nsr_val", "nsr_train", "steps", "seconds", "params", "file", "message")
WEIGHT_FORMAT = 1


@dataclass(frozen=True)
class TeacherInfo:
    arch: str
    num_classes: int
    channels: tuple[int, ...]  # widths of the teacher's s4..s32 outputs
    input_scale: int
    digest: str  # the teacher's weights_digest (ffnet_nas.distill.teacher): changes with the weights only

    @classmethod
    def of(cls, model, *, digest: str) -> "TeacherInfo":
        return cls(model.arch.code, int(model.num_classes), tuple(model.arch.feature_channels),
                   model.arch.input_scale, digest)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


def _stored_row(path: Path) -> dict | None:
    """The table row a block's weight file carries, when the file is readable and its digest
    matches; None otherwise (the block is then trained again)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        check_digest(obj, path=path, what="block weights", hint="")
        row = dict(obj["row"])
        return row if {"position", "choice"} <= set(row) else None  # a row without its key is no row
    except Exception:  # noqa: BLE001 - any damage means: train it again
        return None


class BlockLibrary:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ---- layout ----------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.root / "library.json"

    @property
    def table_path(self) -> Path:
        return self.root / "blocks.csv"

    def weight_path(self, spec: ChoiceSpec) -> Path:
        return self.root / "blocks" / f"{spec.file_stem}.pt"

    def claim_path(self, spec: ChoiceSpec) -> Path:
        """Held (flock) by the process distilling this block: see ffnet_nas.claims."""
        return self.root / "claims" / f"{spec.file_stem}.lock"

    # ---- teacher binding -------------------------------------------------------------------
    def teacher(self) -> TeacherInfo:
        if not self.meta_path.is_file():
            raise InvalidInput(f"no block library in {str(self.root)!r}: expected {self.meta_path.name} there "
                               "(run 'ffnet-nas distill' first)")
        d = read_json(self.meta_path, what="block library metadata")
        try:
            return TeacherInfo(str(d["arch"]), int(d["num_classes"]), tuple(int(c) for c in d["channels"]),
                               int(d["input_scale"]), str(d["digest"]))
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"block library metadata {str(self.meta_path)!r} is incomplete or corrupt "
                               f"({type(e).__name__}: {e}); expected arch, num_classes, channels, input_scale, "
                               "digest: delete the library folder and re-run distill") from None

    def adopt_file_digest(self, info: TeacherInfo, *, file_digest) -> None:
        """Rebind a library that recorded its teacher by the file's digest (before the weights digest).

        Such a library was distilled from exactly this teacher when its digest is the file's;
        `file_digest` is only called in that case (it reads the whole teacher file).
        """
        if not self.meta_path.is_file():
            return
        have = self.teacher()
        if have.digest != info.digest and have == TeacherInfo(info.arch, info.num_classes, info.channels,
                                                               info.input_scale, have.digest) \
                and have.digest == file_digest():
            atomic_write_json(self.meta_path, {**info.to_dict(), "provenance": plain_provenance(),
                                               "adopted_from_file_digest": have.digest})

    def bind(self, info: TeacherInfo) -> None:
        if self.meta_path.is_file():
            have = self.teacher()
            if have != info:
                raise InvalidInput(
                    f"block library {str(self.root)!r} was distilled from teacher {have.arch} (digest {have.digest}), "
                    f"not {info.arch} (digest {info.digest}): use another --workdir or delete the library")
            return
        atomic_write_json(self.meta_path, {**info.to_dict(), "provenance": plain_provenance()})

    # ---- table -----------------------------------------------------------------------------
    def table(self):
        import pandas as pd

        if not self.table_path.is_file():
            return pd.DataFrame(columns=list(COLUMNS))
        fix = "delete it: 'ffnet-nas distill' (or run) rebuilds it from the weight files"
        frame = read_checked_csv(self.table_path, what="block table", required=COLUMNS, key=("position", "choice"),
                                 fix=fix, keep_default_na=False, na_values=[""],
                                 dtype={"position": str, "choice": str, "status": str, "message": str})
        nsr = pd.to_numeric(frame["nsr_val"], errors="coerce")
        bad = frame[(frame["status"] == OK) & ~np.isfinite(nsr.astype(float))]
        if len(bad):
            r = bad.iloc[0]
            raise InvalidInput(f"block table {str(self.table_path)!r}: block {r['position']}:{r['choice']} has status ok "
                               f"but nsr_val {r['nsr_val']!r}, expected a finite number; {fix}")
        return frame

    def _write(self, rows: dict[tuple[str, str], dict]) -> None:
        import pandas as pd

        from ffnet_nas.space.arch import POSITIONS

        ordered = sorted(rows.values(), key=lambda r: (POSITIONS.index(r["position"]), r["choice"]))
        atomic_write_csv(self.table_path, pd.DataFrame(ordered, columns=list(COLUMNS)))

    def rows(self) -> dict[tuple[str, str], dict]:
        frame = self.table()
        return {(r["position"], r["choice"]): r for r in frame.to_dict("records")}

    def recover(self) -> int:
        """Make the table agree with the weight files: add rows for files written after the last
        table update (a kill in between), and drop rows whose weight file is missing or damaged
        (so their choices are trained again). A damaged table is rebuilt from the files.
        Returns the number of rows changed."""
        with table_lock(self.table_path):
            return self._recover()

    def _recover(self) -> int:
        try:
            rows = self.rows()
        except InvalidInput as e:
            logger.warning("%s; rebuilding it from the weight files", e)
            rows = {}
            self.table_path.unlink(missing_ok=True)
        intact: set[tuple[str, str]] = set()
        folder = self.root / "blocks"
        added = 0
        for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
            row = _stored_row(path)
            if row is None:
                continue  # unreadable: its choice is simply trained again
            key = (str(row["position"]), str(row["choice"]))
            intact.add(key)
            if key not in rows:
                rows[key] = row
                added += 1
        lost = [k for k, r in rows.items() if r["status"] == OK and k not in intact]
        for key in lost:
            logger.warning("block library %s: the weights of %s:%s are missing or damaged; that block is trained again",
                           self.root, *key)
            del rows[key]
        if added or lost or not self.table_path.is_file() and rows:
            self._write(rows)
        return added + len(lost)

    def record(self, row: dict) -> None:
        with table_lock(self.table_path):
            rows = self.rows()
            rows[(row["position"], row["choice"])] = row
            self._write(rows)

    def ensure_recorded(self, row: dict) -> dict:
        """Add `row` to the table unless the table has it already (a block's row is written once)."""
        with table_lock(self.table_path):
            rows = self.rows()
            key = (row["position"], row["choice"])
            if key not in rows:
                rows[key] = row
                self._write(rows)
        return row

    def forget(self, keys: Iterable[tuple[str, str]]) -> None:
        """Drop these rows (and their weight files), so they are trained again."""
        keys = set(keys)
        with table_lock(self.table_path):
            rows = self.rows()
            for key in keys & set(rows):
                del rows[key]
                self.weight_path(ChoiceSpec.parse(*key)).unlink(missing_ok=True)
            self._write(rows)

    def intact_row(self, spec: ChoiceSpec) -> dict | None:
        """The row stored in this block's weight file when the file is there and intact, else None."""
        path = self.weight_path(spec)
        return _stored_row(path) if path.is_file() else None

    # ---- blocks ----------------------------------------------------------------------------
    def status(self, position: str, choice: str) -> str | None:
        row = self.rows().get((position, choice))
        return None if row is None else row["status"]

    def load_block(self, position: str, choice: str) -> StudentBlock:
        """A trained student block (eval mode). Missing or failed: InvalidInput."""
        spec = ChoiceSpec.parse(position, choice)
        status = self.status(position, choice)
        if status != OK:
            why = "not distilled yet" if status is None else f"status {status!r}"
            raise InvalidInput(f"block {position}:{choice} is {why} in {str(self.root)!r}: "
                               "expected a block with status 'ok' (run 'ffnet-nas distill' over a space containing it)")
        info = self.teacher()
        student = StudentBlock(spec, teacher_channels=info.channels, num_classes=info.num_classes)
        try:
            obj = torch.load(self.weight_path(spec), map_location="cpu", weights_only=True)
            check_digest(obj, path=self.weight_path(spec), what="weights of block", hint="")
            student.load_state_dict(obj["state_dict"], strict=True)
        except (OSError, RuntimeError, KeyError, TypeError, InvalidInput, pickle.UnpicklingError) as e:
            why = str(e).split(" is damaged: ")[-1].split(";")[0] if isinstance(e, InvalidInput) else type(e).__name__
            raise InvalidInput(f"weights of block {position}:{choice} in {str(self.weight_path(spec))!r} are missing "
                               f"or corrupt ({why}); re-run 'ffnet-nas distill' (or run): it trains such blocks again") from None
        return student.eval()
