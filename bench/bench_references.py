"""Does the run beat *every* published variant, not only the one nearest the default target?

    python bench/bench_references.py --workdir runs/quick5            # every non-pre_down published variant
    python bench/bench_references.py --workdir runs/quick5 --references segmentation_ffnet40S_BBB_mobile

Takes a finished `ffnet-nas run` workdir and, for each published variant of its space, re-runs the
pipeline with the target set to that variant's predicted latency (rounded up to 0.001 ms), so that it
becomes the reference. Each run works in its own scratch workdir (`<workdir>-bench-references/<name>/`)
that shares the teacher, data, block library and latency table of the given one (symlinks) and starts
from a copy of its evaluated table, predictor and study journal: runs are independent of each other,
and the given workdir is not changed. Fine-tuning is seeded, so a point scores the same in every run.

Prints one row per reference — its measured mIoU and latency beside the best point found, the
verdict, the held-out check and the refine rounds used — then the tallies.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import time
from pathlib import Path


import pandas as pd  # noqa: E402

from ffnet_nas.budgets import get_budget  # noqa: E402
from ffnet_nas.pipeline import nearest_published, run_pipeline  # noqa: E402
from ffnet_nas.run_summary import read_summary  # noqa: E402
from ffnet_nas.run_config import RunConfig  # noqa: E402
from ffnet_nas.workspace import Workspace  # noqa: E402

# Workspace properties: read only by a run whose steps 1-3 are done, so shared by symlink ...
SHARED = ("teacher_dir", "data_dir", "library_dir", "lut_dir")
COPIED = ("predictor_dir", "search_dir", "evaluated_path")  # ... or written by the run, so copied


def scratch(workdir: Path, name: str) -> Workspace:
    given, ws = Workspace(workdir), Workspace(Path(f"{workdir}-bench-references") / name)
    if ws.root.exists():
        shutil.rmtree(ws.root)
    ws.root.mkdir(parents=True)
    for item in SHARED:
        os.symlink(getattr(given, item).resolve(), getattr(ws, item))
    for item in COPIED:
        src = getattr(given, item)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, getattr(ws, item))
    # finished points: link their folders (model.pt is read for the held-out check); new points get their own
    ws.evaluated_dir.mkdir()
    for point in given.evaluated_dir.iterdir():
        os.symlink(point.resolve(), ws.evaluated_dir / point.name)
    return ws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True, help="a finished 'ffnet-nas run' workdir")
    ap.add_argument("--references", default="", help="comma-separated published names (default: all non-pre_down)")
    ap.add_argument("--with-pre-down", action="store_true", help="also the pre_down variants")
    args = ap.parse_args()

    given = Workspace(args.workdir)
    done = read_summary(given.run_summary_path)
    budget, space = done.budget, done.space
    published = pd.read_csv(given.search_dir / "published.csv")
    published_ms = dict(zip(published["name"], published["latency_ms"]))
    names = [n for n in args.references.split(",") if n] or sorted(
        (n for n in published_ms if args.with_pre_down or "pre_down" not in n), key=published_ms.get)

    print("| reference | its mIoU | its ms | best found | mIoU | ms | beats it | held-out mIoU (found vs ref) | rounds | s |")
    print("|---|---:|---:|---|---:|---:|---|---|---:|---:|")
    rows = []
    for name in names:
        bound = math.ceil(published_ms[name] * 1000) / 1000
        if nearest_published(published_ms, bound) != name:
            print(f"{name}: another variant is predicted within 0.001 ms of it; skipped", flush=True)
            continue
        ws = scratch(args.workdir, name)
        t0 = time.perf_counter()
        config = RunConfig(budget=get_budget(budget), space=space, target=f"latency<={bound}ms")
        s = run_pipeline(workspace=ws, config=config, progress=False)  # its log lines go nowhere: no handler here
        best, ref = s.best or {}, s.reference_row or {}
        rows.append({
            "reference": name.replace("segmentation_ffnet", ""), "ref_miou": ref.get("measured_miou"),
            "ref_ms": ref.get("measured_latency_ms"), "found": best.get("code"), "found_miou": best.get("measured_miou"),
            "found_ms": best.get("measured_latency_ms"), "beats": s.beats_reference,
            "held_out": (f"{best['held_out_miou']:.2f} vs {ref['held_out_miou']:.2f}"
                         if best.get("held_out_miou") is not None and ref.get("held_out_miou") is not None else ""),
            "held_out_more_accurate": s.held_out_confirms, "rounds": len(s.rounds),
            "seconds": round(time.perf_counter() - t0),
        })
        r = rows[-1]
        print(f"| {r['reference']} | {r['ref_miou']:.2f} | {r['ref_ms']:.2f} | `{r['found']}` | {r['found_miou']:.2f} | "
              f"{r['found_ms']:.2f} | {'yes' if r['beats'] else 'no'} | {r['held_out']} | {r['rounds']} | {r['seconds']} |",
              flush=True)
        shutil.rmtree(ws.root)  # its fine-tuned models are GBs; the row above is the result
    table = pd.DataFrame(rows)
    out = Path(f"{args.workdir}-bench-references") / "references.csv"
    table.to_csv(out, index=False)
    wins = table[table["beats"] == True]  # noqa: E712
    print(f"beats {len(wins)} of {len(table)} references; more accurate on the held-out images too in "
          f"{int((wins['held_out_more_accurate'] == True).sum())} of those {len(wins)}; wrote {out}")  # noqa: E712


if __name__ == "__main__":
    main()
