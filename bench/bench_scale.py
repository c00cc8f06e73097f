"""Scale-out overhead on this machine: the block library on a Dask cluster of 1 vs 2 workers, and
one fine-tune as a 2-process DDP job vs 1 process.

    .venv/bin/python -m bench.bench_scale [--blocks 12] [--steps 60] [--input-size 64x128] [--rounds 2]
        [--ddp-steps 20]       # 0: skip the DDP part (bench/bench_ddp.py, run as a subprocess)

Builds the same block library (the first `--blocks` choices of the mobile space, `--steps` steps
each, teacher = the quick budget's, random init, features of 64 generated images) three ways,
side by side in one run and interleaved over `--rounds`: in this process (the serial baseline,
1 torch thread), on a `LocalCluster` with 1 worker process and with 2 (1 thread each). Prints
the wall times, the speed-ups over the 1-worker cluster, and the cluster's fixed overhead
(1-worker cluster vs serial). The cluster's start-up (worker processes importing torch and the library) is
timed apart: a real cluster is started once and serves many runs.

On this 2-core box two workers can at best halve the time, and any other load on the box eats
into that; the number that carries over to a real cluster is the per-block overhead, since
blocks are independent and each worker reads the shared feature cache itself.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _library(root: Path, choices, *, info, train, val, config, scheduler=None) -> float:
    from ffnet_nas.distill.dispatch import distill_library
    from ffnet_nas.distill.library import BlockLibrary

    t0 = time.perf_counter()
    rows = distill_library(choices, library=BlockLibrary(root), teacher=info, train=train, val=val, config=config,
                           scheduler=scheduler, threads=1, progress=False)
    assert len(rows) == len(choices) and all(r["status"] == "ok" for r in rows), rows
    return time.perf_counter() - t0


def _warm() -> None:
    import ffnet_nas.distill.library  # noqa: F401 - imports torch


def main(argv: list[str] | None = None) -> None:
    import torch
    from distributed import Client, LocalCluster

    from ffnet_nas.budgets import get_budget
    from ffnet_nas.data import make_dataset
    from ffnet_nas.distill.choices import space_choices
    from ffnet_nas.distill.features import compute_features, save_features
    from ffnet_nas.distill.library import TeacherInfo
    from ffnet_nas.settings import BlockTrainConfig
    from ffnet_nas.space.builder import build_model
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.space.searchspace import get_space

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=12)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--input-size", default="64x128")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ddp-steps", type=int, default=20)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    hw = parse_hw(args.input_size)
    torch.manual_seed(0)
    teacher = build_model(get_budget("quick").teacher.arch, num_classes=19).eval()
    info = TeacherInfo.of(teacher, digest="bench")
    # a spread over positions: every 6th choice of the mobile space
    choices = space_choices(get_space("mobile"))[::6][: args.blocks]
    config = BlockTrainConfig(steps=args.steps, batch_size=8)
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        tmp = Path(tmp)
        data = make_dataset("synthetic", "train", size_hw=hw, cache_dir=tmp / "data")
        train = save_features(tmp / "train.pt", compute_features(teacher, data, limit=64, progress=False))
        val = save_features(tmp / "val.pt", compute_features(teacher, data, limit=16, progress=False))
        clusters, start = {}, {}
        for n in (1, 2):
            t0 = time.perf_counter()
            clusters[n] = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                       worker_dashboard_address=None)
            with Client(clusters[n]) as client:  # workers import torch and the library once, as a real cluster has
                client.run(_warm)
            start[n] = time.perf_counter() - t0
        times: dict[str, list[float]] = {"serial": [], "1 worker": [], "2 workers": []}
        try:
            for r in range(args.rounds):
                times["serial"].append(_library(tmp / f"s{r}", choices, info=info, train=train, val=val, config=config))
                for n in (1, 2):
                    times[f"{n} worker{'s' if n > 1 else ''}"].append(_library(
                        tmp / f"c{n}-{r}", choices, info=info, train=train, val=val, config=config,
                        scheduler=clusters[n].scheduler_address))
        finally:
            for c in clusters.values():
                c.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"block library: {len(choices)} blocks x {args.steps} steps at {hw[0]}x{hw[1]}, {args.rounds} round(s), "
          f"{torch.__version__}")
    for k, v in times.items():
        print(f"  {k:10s} {med[k]:7.2f} s  (rounds: {', '.join(f'{x:.2f}' for x in v)})")
    print(f"  speed-up, 2 workers vs 1 worker: {med['1 worker'] / med['2 workers']:.2f}x")
    print(f"  cluster overhead, 1 worker vs serial: {med['1 worker'] / med['serial']:.2f}x "
          f"({(med['1 worker'] - med['serial']) / len(choices) * 1000:.0f} ms per block)")
    print(f"  cluster start-up (once per cluster): 1 worker {start[1]:.1f} s, 2 workers {start[2]:.1f} s")
    if args.ddp_steps:
        import subprocess
        import sys

        print("one fine-tune, 1 process vs 2 DDP processes (bench.bench_ddp):", flush=True)
        subprocess.run([sys.executable, "-m", "bench.bench_ddp", "--steps", str(args.ddp_steps)], check=True)


if __name__ == "__main__":
    main()
