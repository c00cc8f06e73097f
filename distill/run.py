"""Distil every block choice of a space from one teacher: features, then the library.

The caller hands in the teacher file and the two data sets (this layer does not know how
data sets are made, see ffnet_nas.data); everything else is decided here:

    LIBRARY/features/{train,val}.pt     cached teacher features (float16): an index, and the
    LIBRARY/features/*.pt.chunks/       features in chunks (streamed, resumable; see features.py),
                                        reused while the teacher file, data and image count are unchanged
    LIBRARY/library.json, blocks.csv, blocks/*.pt   (see library.py)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ffnet_nas.distill.choices import space_choices
from ffnet_nas.distill.features import cache_bytes, cached_features, compute_features, file_digest
from ffnet_nas.distill.dispatch import distill_library
from ffnet_nas.distill.library import BlockLibrary, TeacherInfo
from ffnet_nas.distill.teacher import load_teacher, weights_digest
from ffnet_nas.distill.train import FAILED, OK
from ffnet_nas.settings import BlockTrainConfig


@dataclass(frozen=True)
class DistillSummary:
    library_dir: Path
    table_path: Path
    feature_paths: tuple[Path, ...]
    choices: int
    trained: int
    skipped: int
    failed: tuple[str, ...] = field(default_factory=tuple)  # "position:choice: message"
    feature_bytes: int = 0


def distill_space(space, *, teacher_path: str | Path, train_data, val_data, library_dir: str | Path,
                  data_spec: str = "", config: BlockTrainConfig = BlockTrainConfig(), jobs: int = 1,
                  scheduler: str | None = None, threads: int | None = None,
                  train_images: int | None = 256, val_images: int | None = 64, retry_failed: bool = False,
                  device: str = "cpu", progress: bool = True) -> DistillSummary:
    teacher = load_teacher(teacher_path)
    info = TeacherInfo.of(teacher, digest=weights_digest(teacher.arch.code, teacher.num_classes, teacher.state_dict()))
    library = BlockLibrary(library_dir)
    library.adopt_file_digest(info, file_digest=lambda: file_digest(teacher_path))
    library.bind(info)  # refuse a foreign library before spending minutes on features
    library.recover()  # rows for files a kill left unrecorded; damaged or missing files are trained again
    choices = space_choices(space)
    done = library.rows()
    pending = [c for c in choices if (c.position, c.choice) not in done
               or (retry_failed and done[(c.position, c.choice)]["status"] == FAILED)]
    paths: list[Path] = []
    if pending:
        for split, data, limit in (("train", train_data, train_images), ("val", val_data, val_images)):
            key = {"teacher": info.digest, "data": data_spec, "split": split,
                   "n": min(limit, len(data)) if limit else len(data)}
            path = library.root / "features" / f"{split}.pt"
            # streamed into the cache chunk by chunk (one chunk in memory), resumed after a kill
            cached_features(path, key, lambda d=data, n=limit, s=split, k=key, p=path: compute_features(
                teacher, d, limit=n, progress=progress, desc=f"teacher features ({s})", device=device, cache=p, key=k))
            paths.append(path)
    rows = distill_library(pending, library=library, teacher=info,
                           train=paths[0] if paths else None, val=paths[1] if paths else None,
                           config=config, jobs=jobs, scheduler=scheduler, threads=threads, retry_failed=retry_failed,
                           device=device, progress=progress)
    wanted = {(c.position, c.choice) for c in choices}
    all_rows = library.rows()
    failed = tuple(f"{p}:{c}: {r['message']}" for (p, c), r in all_rows.items()
                   if (p, c) in wanted and r["status"] != OK)
    return DistillSummary(library_dir=library.root, table_path=library.table_path, feature_paths=tuple(paths),
                          choices=len(choices), trained=len(rows), skipped=len(choices) - len(pending), failed=failed,
                          feature_bytes=sum(cache_bytes(p) for p in paths))
