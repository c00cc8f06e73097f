"""What remembering the teacher's targets saves a fine-tune (ffnet_nas.soft_targets).

    .venv/bin/python -m bench.bench_soft_targets [--points 3] [--steps 50] [--rounds 2] [--input-size 64x128]

Fine-tunes `--points` points of the mobile space (a spread of sizes) from one random start each,
under the quick budget's teacher and fine-tuning settings (KD weight 1, batch 8), twice per round
and interleaved: with the memo off (every target computed, as before it existed) and with the memo
holding the targets of the stream (filled by one fine-tune of another point first, as the first
fine-tune of a run's seed fills it). Prints each point's median times, the ratio, the cost of
filling (the filling fine-tune against the same point with the memo off), and checks that the
weights each pair ends with are bit-identical.
"""

from __future__ import annotations

import argparse
import statistics
import time


POINTS = ("stemB-basic-d6.8.8-w64.128.256-s2-upC-segC-nearest",
          "stemC-basic-d5.5.16.4-w64.128.192.320-s1-upC-segB-nearest",
          "segmentation_ffnet40S_BBB_mobile_pre_down",
          "segmentation_ffnet78S_BCC_mobile_pre_down")


def main(argv: list[str] | None = None) -> None:
    import torch

    from ffnet_nas import soft_targets
    from ffnet_nas.budgets import finetune_config, get_budget
    from ffnet_nas.data import make_dataset
    from ffnet_nas.space.builder import build_model
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.training import train

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--input-size", default="64x128")
    args = ap.parse_args(argv)
    hw = parse_hw(args.input_size)
    data = make_dataset("synthetic", "train", size_hw=hw, augment=True)
    torch.manual_seed(0)
    teacher = build_model(get_budget("quick").teacher.arch, num_classes=data.num_classes).eval()
    config = finetune_config(steps=args.steps, batch_size=8)
    memo = soft_targets.shared()

    def finetune(code: str, *, keep: bool) -> tuple[float, dict]:
        memo.enabled = keep
        torch.manual_seed(1)
        model = build_model(code, num_classes=data.num_classes)
        t0 = time.perf_counter()
        train(model, data, config=config, teacher=teacher, progress=False)
        return time.perf_counter() - t0, model.state_dict()

    points = POINTS[1:1 + args.points]
    finetune(POINTS[0], keep=False)  # warm-up: imports, allocator
    fill_off, _ = finetune(POINTS[0], keep=False)
    memo.clear()
    fill_on, _ = finetune(POINTS[0], keep=True)  # fills the memo with the stream's targets
    filled = memo.bytes
    off: dict[str, list[float]] = {p: [] for p in points}
    on: dict[str, list[float]] = {p: [] for p in points}
    identical = True
    for _ in range(args.rounds):
        for p in points:
            t_off, w_off = finetune(p, keep=False)
            hits = memo.hits
            t_on, w_on = finetune(p, keep=True)
            assert memo.hits - hits == args.steps, "the memo missed a batch of the stream"
            identical &= all(torch.equal(w_off[k], w_on[k]) for k in w_off)
            off[p].append(t_off)
            on[p].append(t_on)
    print(f"{args.steps}-step fine-tunes at {hw[0]}x{hw[1]}, batch 8, teacher {get_budget('quick').teacher.arch}, "
          f"{torch.get_num_threads()} threads, {args.rounds} round(s), torch {torch.__version__}")
    print(f"  filling the memo ({filled / 2**20:.1f} MB): {fill_on:.2f} s vs {fill_off:.2f} s off "
          f"({fill_on / fill_off:.3f}x)")
    for p in points:
        a, b = statistics.median(off[p]), statistics.median(on[p])
        print(f"  {p:58s} off {a:6.2f} s  memo {b:6.2f} s  {a / b:.2f}x faster")
    total_off = sum(statistics.median(v) for v in off.values())
    total_on = sum(statistics.median(v) for v in on.values())
    print(f"  all points: {total_off / total_on:.2f}x faster with the memo; weights bit-identical: {identical}")


if __name__ == "__main__":
    main()
