"""What the benchmarks share about workdirs: their own copy of a finished one (so what they add never
lands in the run's files), the held-out points a check draws, and a check's figures as they read them."""

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


def check_points(folder: str | Path):
    """A predictor check's held-out points and its summary, read from a `bench.bench_predictor --out`
    (or `ffnet-nas fit-predictor --check`) folder: one row per point of its summary.json, with `seed_a`
    and `seed_b` (its two fine-tuning seeds' mIoU) and `truth`, their mean, which every bench ranks
    against. The one place the benches read a check's figures, so they all form the truth alike."""
    import json

    import pandas as pd

    from ffnet_nas.predictor_check import SUMMARY_FILE
    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.workspace import Workspace

    path = Workspace(folder).predictor_check_dir / SUMMARY_FILE
    if not path.is_file():
        raise InvalidInput(f"{str(folder)!r} holds no predictor check ({path} is missing); expected a "
                           "'bench.bench_predictor --out' folder")
    summary = json.loads(path.read_text())
    points = pd.DataFrame(summary["points"])
    a, b = (f"seed{s}" for s in summary["seeds"])
    points["seed_a"], points["seed_b"] = points[a], points[b]
    points["truth"] = (points[a] + points[b]) / 2
    return points, summary
