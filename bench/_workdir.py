"""A benchmark's own copy of a finished workdir, so what it adds never lands in the run's files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_copy(src: str | Path, dst: str | Path, *, ignore: tuple[str, ...] = ()) -> Path:
    """`dst` as a hard-linked copy of `src` (patterns in `ignore` left out); an existing `dst` is
    kept as it is, so a killed benchmark resumes in it. Hard links are safe to share: every workdir
    file is replaced atomically, never written in place."""
    dst = Path(dst)
    if not dst.exists():
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*ignore) if ignore else None, copy_function=os.link)
    return dst


def held_out_points(workspace, space, k: int, *, seed: int) -> list:
    """The `k` points `ffnet-nas fit-predictor --check k --draw-seed seed` draws from a workdir:
    random points of `space` the workdir never evaluated, all of whose blocks its library holds. The
    benches that measure those points another way draw them here, so they measure the same ones."""
    from ffnet_nas.distill.library import BlockLibrary
    from ffnet_nas.evaluate import read_evaluated
    from ffnet_nas.predictor_check import draw_points
    from ffnet_nas.predictors.accuracy import nsr_table

    evaluated = read_evaluated(workspace.evaluated_path)
    nsr = nsr_table(BlockLibrary(workspace.library_dir).table().to_dict("records"))
    return draw_points(space, k, seed=seed, exclude=set(evaluated["code"]) if len(evaluated) else set(), nsr=nsr)
