"""Does the embedded data set separate good architectures from bad ones?

Trains several published variants from scratch for the same budget (steps x batch, same
seed, same augmentation) on the synthetic streets and prints val mIoU per variant, the
context/thin-structure classes that explain the gaps, and time per step measured side by side
in this one run (ratios to the first variant).

    .venv/bin/python bench/bench_synthetic_separation.py                 # 64x128, 400 steps, batch 8
    .venv/bin/python bench/bench_synthetic_separation.py --size 128x256 --steps 600

Threads default to 1: on a CPU shared with other jobs two OpenMP threads were ~10x slower
per step than one (measured here: 5.9 s vs 0.6 s for 40S_BBB at 64x128, batch 8).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

DEFAULT_VARIANTS = (
    "segmentation_ffnet46NS_CCC_mobile",  # 3-stage NS, weakest heads
    "segmentation_ffnet40S_BBB_mobile",   # 4-stage S, output stride 4
    "segmentation_ffnet40S_dBBB_mobile",  # same backbone, first stage strided: output stride 8
    "segmentation_ffnet18_dAAC",          # GPU-small: ResNet-18, stride-8 output, seg head C
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    ap.add_argument("--size", default="64x128", help="HxW of generated scenes and training crops")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--optimizer", default="adamw")
    ap.add_argument("--train-images", type=int, default=512)
    ap.add_argument("--val-images", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="optional JSON file for the results")
    args = ap.parse_args(argv)

    from ffnet_nas.data import make_dataset
    from ffnet_nas.settings import TrainConfig
    from ffnet_nas.training import evaluate, train
    from ffnet_nas.space.builder import build_model
    from ffnet_nas.space.complexity import complexity, parse_hw

    torch.set_num_threads(args.threads)
    hw = parse_hw(args.size)
    t0 = time.perf_counter()
    train_ds = make_dataset(f"synthetic:{args.seed}", "train", size_hw=hw, augment=True, num_images=args.train_images,
                            scale_range=(0.75, 1.5))
    val_ds = make_dataset(f"synthetic:{args.seed}", "val", size_hw=hw, num_images=args.val_images)
    print(f"data: {len(train_ds)} train / {len(val_ds)} val scenes at {hw[0]}x{hw[1]}, generated in {time.perf_counter() - t0:.1f} s",
          flush=True)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                         weight_decay=1e-4 if args.optimizer == "sgd" else 1e-2, warmup_steps=min(50, args.steps // 10),
                         seed=args.seed)
    rows = []
    for name in args.variants:
        torch.manual_seed(args.seed)
        model = build_model(name, num_classes=train_ds.num_classes)
        cx = complexity(model.arch, hw, num_classes=train_ds.num_classes)
        result = train(model, train_ds, config=config, desc=name.replace("segmentation_ffnet", ""))
        score = evaluate(model, val_ds, progress=False)
        iou = score.per_class()
        rows.append({"variant": name, "params_M": cx.params / 1e6, "gmac": cx.macs / 1e9, "out_stride": model.arch.output_stride,
                     "miou": score.miou, "s_per_step": result.seconds / args.steps, "final_loss": result.final_loss, "iou": iou})
        print(f"{name}: mIoU {100 * score.miou:.1f}  ({result.seconds:.0f} s)", flush=True)

    base = rows[0]["s_per_step"]
    print(f"\nsame budget: {args.steps} steps x batch {args.batch_size}, {args.optimizer} lr {args.lr}, {hw[0]}x{hw[1]}, "
          f"{args.threads} thread(s), seed {args.seed}")
    names = list(rows[0]["iou"])
    print(f"{'variant':38s} {'params':>7s} {'GMAC':>5s} {'OS':>3s} {'mIoU':>5s} " + " ".join(f"{n[:6]:>6s}" for n in names)
          + f" {'s/step':>6s} {'ratio':>5s}")
    for r in rows:
        print(f"{r['variant'].replace('segmentation_', ''):38s} {r['params_M']:6.1f}M {r['gmac']:5.2f} {r['out_stride']:3d} "
              f"{100 * r['miou']:5.1f} " + " ".join(f"{100 * r['iou'][n]:6.1f}" for n in names)
              + f" {r['s_per_step']:6.2f} {r['s_per_step'] / base:5.2f}")
    spread = max(r["miou"] for r in rows) - min(r["miou"] for r in rows)
    print(f"mIoU spread (best - worst): {100 * spread:.1f} points")
    if args.out:
        from ffnet_nas.space.io import atomic_write_json, provenance

        atomic_write_json(args.out, {"rows": rows, "args": vars(args), "provenance": provenance(threads=args.threads)})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
