"""The block library: one weight file per distilled choice + one table, both written atomically.

    LIBRARY/library.json          the teacher it was distilled from (arch, classes, widths, digest)
    LIBRARY/blocks.csv            position, choice, status, nsr_val, nsr_train, steps, seconds, params, file, message
    LIBRARY/blocks/<pos>__<choice>.pt

Each block's weight file is written by whoever trained it, the moment it finishes; the table
is rewritten (temp file + rename) by the parent after each block. A kill therefore loses at
most the blocks in flight; a weight file whose row did not make it into the table is
recovered from the file on the next run. Re-running skips every choice already in the table
(`retry_failed` re-trains the failed ones).

A library belongs to one teacher: its students read that teacher's features and widths, so
mixing teachers would chain blocks trained against different targets. Binding a library to a
different teacher is refused.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ffnet_nas.distill.blocks import StudentBlock
from ffnet_nas.distill.choices import ChoiceSpec
from ffnet_nas.distill.features import FeatureSet, load_features, plain_provenance
from ffnet_nas.distill.train import FAILED, OK, BlockResult, train_block
from ffnet_nas.settings import BlockTrainConfig
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import (DIGEST_KEY, atomic_torch_save, atomic_write_csv, atomic_write_json, check_digest,
                                read_checked_csv, read_json, tensor_digest)

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
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
                check_digest(obj, path=path, what="block weights", hint="")
                row = obj["row"]
                key = (str(row["position"]), str(row["choice"]))
            except Exception:
                continue  # unreadable: its choice is simply trained again
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
        rows = self.rows()
        rows[(row["position"], row["choice"])] = row
        self._write(rows)

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


_WATCHED_PARENT: int | None = None


def die_with_parent(poll_seconds: float = 0.5) -> None:
    """In a worker process: exit as soon as the process that started it is gone.

    A SIGKILLed `distill --jobs N` cannot tell its workers to stop, and each would finish (and
    hold ~0.75 GB for) its block and then idle until the pool's timeout. A daemon thread watches
    the parent pid (a dead parent's children are re-parented, so getppid() changes) and ends the
    worker at once; what it was training is trained again on resume. Idempotent.
    """
    global _WATCHED_PARENT
    if _WATCHED_PARENT is not None:
        return
    import threading
    import time

    _WATCHED_PARENT = parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _train_and_save(spec: ChoiceSpec, train: FeatureSet | str, val: FeatureSet | str, info: TeacherInfo,
                    config: BlockTrainConfig, out: Path, threads: int | None) -> dict:
    """One unit of work (in a worker process when jobs > 1): train, save the weight file, return its row."""
    if threads:  # a worker process of distill_library's pool
        die_with_parent()
        torch.set_num_threads(threads)
    train = load_features(train) if isinstance(train, (str, Path)) else train
    val = load_features(val) if isinstance(val, (str, Path)) else val
    result: BlockResult = train_block(spec, train, val, teacher_channels=info.channels, num_classes=info.num_classes,
                                      teacher_input_scale=info.input_scale, config=config)
    params = sum(v.numel() for k, v in result.state_dict.items()
                 if not k.startswith("out_adapter") and "running" not in k and "num_batches" not in k)
    row = {"position": spec.position, "choice": spec.choice, "status": result.status,
           "nsr_val": result.nsr_val, "nsr_train": result.nsr_train, "steps": result.steps,
           "seconds": round(result.seconds, 3), "params": int(params), "file": f"blocks/{out.name}",
           "message": result.message}
    atomic_torch_save(out, {"format": WEIGHT_FORMAT, "row": row, "teacher": info.to_dict(), "config": config.to_dict(),
                            "state_dict": result.state_dict, "provenance": plain_provenance(threads=torch.get_num_threads()),
                            DIGEST_KEY: tensor_digest(result.state_dict)})
    return row


def distill_library(choices: Iterable[ChoiceSpec], *, library: BlockLibrary, teacher: TeacherInfo,
                    train: FeatureSet | str | Path, val: FeatureSet | str | Path, config: BlockTrainConfig = BlockTrainConfig(),
                    jobs: int = 1, retry_failed: bool = False, progress: bool = True) -> list[dict]:
    """Train every choice not yet in the library; returns the rows trained in this call.

    With jobs > 1, `train`/`val` must be cache file paths: workers memory-map them rather
    than receive pickled copies. Each worker gets cpu_count // jobs torch threads.
    """
    from tqdm.auto import tqdm

    library.bind(teacher)
    library.recover()
    done = library.rows()
    todo = [s for s in choices
            if (s.position, s.choice) not in done or (retry_failed and done[(s.position, s.choice)]["status"] == FAILED)]
    if not todo:
        return []
    jobs = max(1, min(jobs, len(todo)))
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    if jobs > 1 and not all(isinstance(f, (str, Path)) for f in (train, val)):
        raise InvalidInput("jobs > 1 needs the teacher features as cache files (paths), not in-memory sets")
    trained: list[dict] = []
    bar = tqdm(total=len(todo), desc="distilling blocks", unit="block", disable=not progress)
    try:
        if jobs == 1:
            rows = (_train_and_save(s, train, val, teacher, config, library.weight_path(s), None) for s in todo)
        else:
            from joblib import Parallel, delayed

            rows = Parallel(n_jobs=jobs, return_as="generator_unordered")(
                delayed(_train_and_save)(s, str(train), str(val), teacher, config, library.weight_path(s), threads)
                for s in todo)
        for row in rows:
            library.record(row)
            trained.append(row)
            bar.set_postfix_str(f"{row['position']}:{row['choice']} nsr={row['nsr_val']:.3f} {row['status']}")
            bar.update()
    finally:
        bar.close()
    return trained
