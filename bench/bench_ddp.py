"""One training job in 1 process vs 2 processes under torchrun (DDP, gloo, CPU), same global batch.

    python -m bench.bench_ddp --steps 20            # default: the default teacher at 64x128, batch 8

Trains the same network for the same steps on the same global batch on the CPU: in one process
with one torch thread, and in two processes of one thread each under
`python -m torch.distributed.run --standalone --nproc_per_node 2` (each rank takes half of every
batch); `--two-threads` adds one process with two threads (both cores to one process: the fair
baseline on an idle 2-core box; on this shared one two threads ran 34x slower than one, 114 s vs
3.4 s for 10 steps, which is why the suite and this default use one). It times the training loop alone (`TrainResult.seconds`, rank 0: no start-up, data or
scoring) and the whole run (process start, torch import, process group, data, training), and
prints both and the ratios. The synthetic scenes are generated once into a scratch folder first.

What to expect: on 2 shared cores little or nothing. Two single-thread processes do the work of
one two-thread process plus a gradient all-reduce per step, and the cores are shared with whatever
else runs. DDP earns its keep with one GPU (or one machine) per rank: then each rank's half batch
runs on hardware of its own, and the all-reduce (NCCL over NVLink or InfiniBand) overlaps the
backward pass. This figure is the overhead on this box, not the speed-up on a cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCH = "segmentation_ffnet46NS_CCC_mobile"


def job(*, arch: str, steps: int, batch_size: int, input_hw: tuple[int, int], cache_dir: Path, out: Path) -> None:
    """The measured work: `train` inside a distributed session (no session without torchrun)."""
    import torch

    from ffnet_nas import distributed
    from ffnet_nas.data import make_dataset
    from ffnet_nas.settings import TrainConfig
    from ffnet_nas.space.builder import build_model
    from ffnet_nas.training import train

    with distributed.session(device="cpu"):
        data = make_dataset("synthetic", "train", size_hw=input_hw, augment=True, cache_dir=cache_dir)
        torch.manual_seed(0)
        model = build_model(arch, num_classes=data.num_classes)
        config = TrainConfig(steps=steps, batch_size=batch_size, optimizer="adamw", lr=2e-3, checkpoint_every=10**6)
        result = train(model, data, config=config, progress=False)
        if distributed.is_main():
            out.write_text(json.dumps({"train_s": result.seconds, "final_loss": result.final_loss,
                                       "processes": distributed.world_size(), "threads": torch.get_num_threads()}))


def _measure(argv: list[str], *, threads: int, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    run = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])}...: exit {run.returncode}\n{run.stderr[-3000:]}")
    return {**json.loads(out.read_text()), "wall_s": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    parser.add_argument("--batch-size", type=int, default=8, help="the global batch (default 8; even)")
    parser.add_argument("--arch", default=ARCH, help=f"network (default {ARCH})")
    parser.add_argument("--input-size", default="64x128", metavar="HxW")
    parser.add_argument("--two-threads", action="store_true", help="also time one process with two threads")
    parser.add_argument("--job", action="store_true", help=argparse.SUPPRESS)  # the measured run itself
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    hw = tuple(int(v) for v in args.input_size.lower().split("x"))
    if args.job:
        job(arch=args.arch, steps=args.steps, batch_size=args.batch_size, input_hw=hw, cache_dir=args.cache_dir,
            out=args.out)
        return 0
    if args.steps < 1 or args.batch_size < 2 or args.batch_size % 2:
        parser.error("--steps >= 1 and an even --batch-size >= 2 (it is split over 2 processes)")

    from ffnet_nas.data import make_dataset

    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        cache = Path(tmp) / "data"
        make_dataset("synthetic", "train", size_hw=hw, cache_dir=cache)  # generated once, outside the timings
        job_args = ["-m", "bench.bench_ddp", "--job", "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                    "--arch", args.arch, "--input-size", args.input_size, "--cache-dir", str(cache)]
        runs = {}
        plan = [("1 process, 1 thread", [sys.executable], 1)]
        if args.two_threads:
            plan.append(("1 process, 2 threads", [sys.executable], 2))
        plan.append(("2 processes x 1 thread (torchrun)",
                     [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], 1))
        for name, launcher, threads in plan:
            out = Path(tmp) / f"{len(runs)}.json"
            runs[name] = _measure([*launcher, *job_args, "--out", str(out)], threads=threads, out=out)
            print(f"{name:36s} train {runs[name]['train_s']:7.2f} s   whole run {runs[name]['wall_s']:7.2f} s   "
                  f"final loss {runs[name]['final_loss']:.3f}", flush=True)
    ddp = runs.pop("2 processes x 1 thread (torchrun)")
    print(f"\n{args.arch} at {args.input_size}, {args.steps} steps x global batch {args.batch_size}, "
          f"{os.cpu_count()} CPUs (load average now {os.getloadavg()[0]:.1f}); speed-up = 1-process time / DDP time")
    for what, key in (("training loop", "train_s"), ("whole run", "wall_s")):
        ratios = ", ".join(f"{base[key] / ddp[key]:.2f}x vs {name}" for name, base in runs.items())
        print(f"speed-up of 2-process DDP, {what + ':':14s} {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
