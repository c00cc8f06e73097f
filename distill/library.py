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
from ffnet_nas.claims import table_lock
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
        if not path.is_file():
            return None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            check_digest(obj, path=path, what="block weights", hint="")
            return dict(obj["row"])
        except Exception:
            return None  # damaged: trained again

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


@dataclass(frozen=True)
class BlockTask:
    """One block to distil, as handed to a worker (a joblib process or a Dask worker): paths, not
    data, so the features are read (memory-mapped) by the worker from the shared cache."""

    spec: ChoiceSpec
    library: str  # the library folder, absolute: a Dask worker's working directory is its own
    train: str | None  # feature cache files (None: in-memory sets, serial only)
    val: str | None
    teacher: TeacherInfo
    config: BlockTrainConfig
    threads: int | None = None  # torch threads in the worker (None: leave the process's setting)
    watch_parent: bool = False  # a joblib worker: exit when the distill process dies
    wait: bool = False  # when another process holds the block's claim: wait for it (else skip at once)


CLAIMED = "claimed"  # a task's answer when another process holds the block (not a table status)

_FEATURES: dict[tuple[str, int, int], FeatureSet] = {}


def _features(path: str) -> FeatureSet:
    """A worker process reads each cache once, not once per block (memory-mapped: pages are shared)."""
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _FEATURES:
        if len(_FEATURES) >= 4:
            _FEATURES.clear()
        _FEATURES[key] = load_features(path)
    return _FEATURES[key]


def distil_block(task: BlockTask, *, train: FeatureSet | None = None, val: FeatureSet | None = None) -> dict:
    """Claim, train, save and record one block; returns its row (`status` CLAIMED when another
    process holds it, `reused` True when whoever held it before finished it)."""
    from ffnet_nas.claims import claim, holder

    if task.watch_parent:
        die_with_parent()
    if task.threads:
        torch.set_num_threads(task.threads)
    spec, library = task.spec, BlockLibrary(task.library)
    claim_path = library.claim_path(spec)
    with claim(claim_path, wait=task.wait) as mine:
        if not mine:
            return {"position": spec.position, "choice": spec.choice, "status": CLAIMED, "holder": holder(claim_path)}
        done = library.intact_row(spec)
        if done is not None:  # finished by the process that held the claim before us
            return {**library.ensure_recorded(done), "reused": True}
        train = train if train is not None else _features(task.train)
        val = val if val is not None else _features(task.val)
        row = _train_and_save(spec, train, val, task.teacher, task.config, library.weight_path(spec))
        library.ensure_recorded(row)
        return row


def _train_and_save(spec: ChoiceSpec, train: FeatureSet, val: FeatureSet, info: TeacherInfo,
                    config: BlockTrainConfig, out: Path) -> dict:
    """Train, save the weight file (atomically), return its row."""
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
                    jobs: int = 1, scheduler: str | None = None, threads: int | None = None, retry_failed: bool = False,
                    progress: bool = True) -> list[dict]:
    """Train every choice not yet in the library; returns the rows trained in this call.

    Where the blocks are trained: in this process (jobs 1), in `jobs` local processes (each with
    cpu_count // jobs torch threads), or on the Dask cluster at `scheduler` (each task with
    `threads` torch threads, default 1). With jobs > 1 or a scheduler, `train`/`val` must be cache
    file paths on a filesystem the workers share: they memory-map them rather than receive copies.
    Each block is claimed (ffnet_nas.claims) by whoever trains it, so other processes on the
    same library (another cluster, a local run) skip it; once every other block is done, the
    blocks claimed elsewhere are waited for and trained here if their holder died.
    """
    from tqdm.auto import tqdm

    library.bind(teacher)
    library.recover()
    done = library.rows()
    todo = [s for s in choices
            if (s.position, s.choice) not in done or (retry_failed and done[(s.position, s.choice)]["status"] == FAILED)]
    if not todo:
        return []
    if retry_failed:  # their rows must go, or a worker would find them "done" and reuse the failure
        library.forget([(s.position, s.choice) for s in todo])
    jobs = 1 if scheduler else max(1, min(jobs, len(todo)))
    parallel = jobs > 1 or scheduler is not None
    if parallel and not all(isinstance(f, (str, Path)) for f in (train, val)):
        raise InvalidInput("jobs > 1 or a Dask scheduler needs the teacher features as cache files (paths), "
                           "not in-memory sets")
    paths = (str(Path(train).resolve()), str(Path(val).resolve())) if parallel else (None, None)
    worker_threads = (threads or 1) if scheduler else max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    tasks = [BlockTask(spec=s, library=str(library.root.resolve()), train=paths[0], val=paths[1], teacher=teacher,
                       config=config, threads=worker_threads, watch_parent=jobs > 1) for s in todo]
    if not parallel:  # in-memory sets (or files read once here), not one load per block
        train = load_features(train) if isinstance(train, (str, Path)) else train
        val = load_features(val) if isinstance(val, (str, Path)) else val

    def execute(batch: list[BlockTask]) -> Iterable[dict]:
        if scheduler:
            from ffnet_nas.cluster import map_unordered

            return map_unordered(distil_block, batch, address=scheduler, name="distill",
                                 describe=lambda t: f"block {t.spec.position}:{t.spec.choice}")
        if jobs == 1:
            return (distil_block(t, train=train, val=val) for t in batch)
        from joblib import Parallel, delayed

        return Parallel(n_jobs=min(jobs, len(batch)), return_as="generator_unordered")(delayed(distil_block)(t)
                                                                                       for t in batch)

    trained: list[dict] = []
    bar = tqdm(total=len(todo), desc="distilling blocks", unit="block", disable=not progress)
    try:
        pending = tasks
        while pending:
            claimed = []
            for row in execute(pending):
                key = (row["position"], row["choice"])
                if row["status"] == CLAIMED:
                    logger.info("block %s:%s is being distilled by %s: taken up again at the end", *key, row["holder"])
                    claimed.append(next(t for t in pending if (t.spec.position, t.spec.choice) == key))
                    continue
                if not row.pop("reused", False):
                    trained.append(row)
                bar.set_postfix_str(f"{key[0]}:{key[1]} nsr={row['nsr_val']:.3f} {row['status']}")
                bar.update()
            # the blocks other processes hold: wait until each is released (finished, or its
            # holder died), then hand them out again; finished ones come back as `reused`
            for task in claimed:
                wait_for_claim(library.claim_path(task.spec))
            pending = claimed
    finally:
        bar.close()
    return trained


def wait_for_claim(path: Path) -> None:
    from ffnet_nas.claims import claim

    with claim(path, wait=True):
        pass
