"""Mixed precision on this machine: a training step in bf16 autocast against float32, side by side.

    python -m bench.bench_amp [--arch segmentation_ffnet46NS_CCC_mobile] [--size 64x128] [--steps 10] [--rounds 3]

Each round trains the same network from the same weights for `--steps` steps in float32 and then
in bf16 (the order alternates between rounds), one thread, and prints the seconds per step of each
and their ratio; the summary is the median ratio with its range over the rounds. The loss after the
steps is printed too: bf16 must train, not only run. fp16 autocast needs CUDA and is not timed here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from ffnet_nas.data import make_dataset  # noqa: E402
from ffnet_nas.settings import TrainConfig  # noqa: E402
from ffnet_nas.space.builder import build_model  # noqa: E402
from ffnet_nas.space.complexity import parse_hw  # noqa: E402
from ffnet_nas.training import train  # noqa: E402


def one(arch: str, data, *, amp: str | None, steps: int, batch: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=data.num_classes)
    config = TrainConfig(steps=steps + 2, batch_size=batch, optimizer="adamw", lr=2e-3, amp=amp)
    times = []
    t = [time.perf_counter()]

    def on_step(step: int, loss: float) -> None:
        now = time.perf_counter()
        times.append(now - t[0])
        t[0] = now

    result = train(model, data, config=config, progress=False, on_step=on_step)
    return statistics.median(times[2:]), result.final_loss  # the first two steps warm up


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="segmentation_ffnet46NS_CCC_mobile")
    p.add_argument("--size", default="64x128")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    hw = parse_hw(args.size)
    data = make_dataset("synthetic", "train", size_hw=hw, augment=True, num_images=64)
    print(f"{args.arch} at {args.size}, batch {args.batch}, {args.threads} thread(s), torch {torch.__version__}")
    ratios = []
    for r in range(args.rounds):
        order = (None, "bf16") if r % 2 == 0 else ("bf16", None)
        got = {amp: one(args.arch, data, amp=amp, steps=args.steps, batch=args.batch) for amp in order}
        (fp32, loss32), (bf16, loss16) = got[None], got["bf16"]
        ratios.append(fp32 / bf16)
        print(f"  round {r + 1}: fp32 {fp32:.3f} s/step (loss {loss32:.3f}), bf16 {bf16:.3f} s/step "
              f"(loss {loss16:.3f}): bf16 is {fp32 / bf16:.2f}x the speed of fp32")
    print(f"bf16 autocast vs float32: median {statistics.median(ratios):.2f}x [{min(ratios):.2f}, {max(ratios):.2f}] "
          f"over {len(ratios)} rounds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
