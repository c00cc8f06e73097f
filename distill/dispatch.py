"""Where each block of the library is trained: in this process, in local worker processes
(`jobs`), or on a Dask cluster (`scheduler`), and how the workers keep out of each other's way.

    rows = distill_library(space_choices(space), library=BlockLibrary(dir), teacher=info,
                           train=train_cache, val=val_cache, jobs=4)        # or scheduler="tcp://host:8786"

Every block is one task (`BlockTask`, `distil_block`): claim it (ffnet_nas.claims), train it,
write its weight file atomically and add its row to the table (under the table's lock), all by
the process that trained it. The caller only counts. The files and the table are
`ffnet_nas.distill.library`'s.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from ffnet_nas.claims import CLAIMED, wait_for_release
from ffnet_nas.distill.choices import ChoiceSpec
from ffnet_nas.distill.features import FeatureSet, load_features, plain_provenance
from ffnet_nas.distill.library import WEIGHT_FORMAT, BlockLibrary, TeacherInfo
from ffnet_nas.distill.train import FAILED, BlockResult, train_block
from ffnet_nas.settings import BlockTrainConfig
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import DIGEST_KEY, atomic_torch_save, tensor_digest

logger = logging.getLogger(__name__)


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
    device: str = "cpu"  # where the student trains (a Dask worker: its own GPU, when it names cuda)



_FEATURES: dict[tuple[str, int, int], FeatureSet] = {}


def _features(path: str) -> FeatureSet:
    """A worker process reads each cache once, not once per block (memory-mapped: pages are shared).
    Its chunks' digests were checked by the process that made or reused the cache (cached_features):
    hashing every chunk again in every worker would read the whole set once per worker."""
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _FEATURES:
        if len(_FEATURES) >= 4:
            _FEATURES.clear()
        _FEATURES[key] = load_features(path, verify=False)
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
        row = _train_and_save(spec, train, val, task.teacher, task.config, library.weight_path(spec), device=task.device)
        library.ensure_recorded(row)
        return row


def _train_and_save(spec: ChoiceSpec, train: FeatureSet, val: FeatureSet, info: TeacherInfo,
                    config: BlockTrainConfig, out: Path, *, device: str = "cpu") -> dict:
    """Train, save the weight file (atomically), return its row."""
    result: BlockResult = train_block(spec, train, val, teacher_channels=info.channels, num_classes=info.num_classes,
                                      teacher_input_scale=info.input_scale, config=config, device=device)
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
                    device: str = "cpu", progress: bool = True) -> list[dict]:
    """Train every choice not yet in the library; returns the rows trained in this call.

    Where the blocks are trained: in this process (jobs 1), in `jobs` local processes (each with
    cpu_count // jobs torch threads), or on the Dask cluster at `scheduler` (each task with
    `threads` torch threads, default 1). With jobs > 1 or a scheduler, `train`/`val` must be cache
    file paths on a filesystem the workers share: they memory-map them rather than receive copies.
    Each block is claimed (ffnet_nas.claims) by whoever trains it, so other processes on the
    same library (another cluster, a local run) skip it; once every other block is done, the
    blocks claimed elsewhere are waited for and trained here if their holder died. `device`: where
    each student trains (the features are read from the memory-mapped cache batch by batch).
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
                       config=config, threads=worker_threads, watch_parent=jobs > 1, device=device) for s in todo]
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
                wait_for_release(library.claim_path(task.spec))
            pending = claimed
    finally:
        bar.close()
    return trained

