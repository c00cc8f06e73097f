"""What blockwise distillation of a whole space costs on this CPU, and whether its NSR is sensible.

    .venv/bin/python bench/bench_distill.py [--space mobile] [--input-size 64x128] [--batch 8]
        [--timed 3] [--teacher FILE] [--nsr-positions s8,s16,s32,head] [--nsr-steps 150] [--out DIR]

Part 1, cost (measured side by side in one run): one training step of EVERY block choice of
the space (student + out-adapter + NSR loss, AdamW) on teacher-shaped inputs, interleaved with
one training step of the published variant `--variant` end to end (cross-entropy) on the same
batch size and input size, so a drift of the shared machine hits both. Every block is trained
with the same steps and batch, so (library time) / (end-to-end time for the same number of
images) = sum of block step times / (blocks x full-model step time), whatever the step count.
Reported with the extrapolation to `--steps-per-block` (the distill default, 300).

Part 2, feature cache: teacher forward time per image vs loading cached float16 features, and
the disk they take: the cache replaces blocks x steps x batch teacher forwards by one pass.

Part 3, NSR: distil the choices at `--nsr-positions` from the teacher on the embedded data
and print held-out NSR per choice, grouped by (position, width), with the Spearman rank
correlation of depth vs NSR in each group (negative = deeper is better, as expected).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]

from ffnet_nas.distill.blocks import StudentBlock, block_io, nsr  # noqa: E402
from ffnet_nas.distill.choices import space_choices  # noqa: E402
from ffnet_nas.distill.features import compute_features, load_features, save_features  # noqa: E402
from ffnet_nas.distill.teacher import weights_digest  # noqa: E402
from ffnet_nas.distill.dispatch import distill_library
from ffnet_nas.distill.library import BlockLibrary, TeacherInfo  # noqa: E402
from ffnet_nas.distill.teacher import load_teacher  # noqa: E402
from ffnet_nas.settings import BlockTrainConfig  # noqa: E402
from ffnet_nas.space.builder import build_model  # noqa: E402
from ffnet_nas.space.complexity import parse_hw  # noqa: E402
from ffnet_nas.space.searchspace import get_space  # noqa: E402


def random_features(teacher, batch: int, hw: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Teacher-shaped tensors (cost does not depend on values): one real teacher pass on noise."""
    from ffnet_nas.distill.features import teacher_features

    return {k: v.detach() for k, v in teacher_features(teacher.eval(), torch.randn(batch, 3, *hw)).items()}


def block_stepper(spec, teacher, feats):
    student = StudentBlock(spec, teacher_channels=teacher.arch.feature_channels, num_classes=teacher.num_classes).train()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    x, target = block_io(spec, feats, teacher_input_scale=teacher.arch.input_scale)

    def step():
        loss = nsr(student(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def full_stepper(variant: str, num_classes: int, batch: int, hw: tuple[int, int]):
    model = build_model(variant, num_classes=num_classes).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, *hw)
    y = torch.randint(num_classes, (batch, *hw))

    def step():
        logits = F.interpolate(model(x), size=hw, mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def timed(step, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        out.append(time.perf_counter() - t)
    return out


def part_cost(args, space, teacher, hw) -> None:
    choices = space_choices(space)
    feats = random_features(teacher, args.batch, hw)
    full = full_stepper(args.variant, teacher.num_classes, args.batch, hw)
    full()  # warm-up
    block_times, full_times, by_position = {}, [], {}
    from tqdm.auto import tqdm

    for spec in tqdm(choices, desc="timing block steps", unit="block"):
        step = block_stepper(spec, teacher, feats)
        step()  # warm-up (allocations, first-call dispatch)
        # interleave: block step, full step, block step, ... so both see the same machine state
        bt = []
        for _ in range(args.timed):
            bt += timed(step, 1)
            full_times += timed(full, 1) if len(full_times) < 3 * len(choices) else []
        block_times[spec] = statistics.median(bt)
        by_position.setdefault(spec.position, []).append(block_times[spec])
    t_full = statistics.median(full_times)
    total = sum(block_times.values())
    n = len(choices)
    print(f"\n== cost: space {space.name!r}, {n} block choices, input {hw[0]}x{hw[1]}, batch {args.batch}, "
          f"{torch.get_num_threads()} torch thread(s) ==")
    for pos, ts in by_position.items():
        print(f"  {pos:5s} {len(ts):3d} choices  median step {statistics.median(ts) * 1e3:8.1f} ms  "
              f"sum {sum(ts):7.2f} s")
    print(f"  one step of every block (sum):            {total:8.2f} s")
    print(f"  one end-to-end step of {args.variant}: {t_full * 1e3:8.1f} ms (median of {len(full_times)}, "
          f"spread p10-p90 {sorted(full_times)[len(full_times) // 10] * 1e3:.0f}-{sorted(full_times)[9 * len(full_times) // 10] * 1e3:.0f} ms)")
    ratio = total / (n * t_full)
    print(f"  RATIO library / end-to-end for the same images: {ratio:.3f} "
          f"(the whole library costs {total / t_full:.1f} end-to-end steps per block step)")
    steps = args.steps_per_block
    print(f"  at {steps} steps/block: library {steps * total / 60:.1f} min vs end-to-end for the same "
          f"{steps * args.batch * n} images {steps * n * t_full / 60:.1f} min on this CPU")


def part_cache(args, teacher, train_ds, tmp: Path) -> None:
    n = min(args.cache_images, len(train_ds))
    t = time.perf_counter()
    fs = compute_features(teacher, train_ds, limit=n, progress=False)
    t_compute = time.perf_counter() - t
    path = save_features(tmp / "train.pt", fs)
    t = time.perf_counter()
    loaded = load_features(path, mmap=False)
    _ = sum(v.float().sum() for v in loaded.tensors.values())  # touch every byte
    t_load = time.perf_counter() - t
    size = path.stat().st_size
    per_step = t_compute / n * args.batch  # teacher forward for one batch, done again per step without a cache
    print(f"\n== feature cache: {n} images at {fs.tensors['image'].shape[-2]}x{fs.tensors['image'].shape[-1]} ==")
    print(f"  teacher pass: {t_compute / n * 1e3:.1f} ms/image; cache on disk: {size / n / 1e3:.0f} kB/image "
          f"(float16), {size / 1e6:.1f} MB in all; load + read back: {t_load / n * 1e3:.2f} ms/image")
    blocks = len(space_choices(get_space(args.space)))
    print(f"  without the cache every block step would rerun the teacher: {blocks} blocks x {args.steps_per_block} "
          f"steps x {per_step * 1e3:.0f} ms = {blocks * args.steps_per_block * per_step / 60:.1f} min, vs "
          f"{t_compute:.1f} s once (+ {t_load:.1f} s per process that loads it)")


def spearman(xs, ys) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(xs, ys).statistic) if len(set(xs)) > 1 else float("nan")


def part_nsr(args, space, teacher_path, train_ds, val_ds, out: Path) -> None:
    teacher = load_teacher(teacher_path)
    info = TeacherInfo.of(teacher, digest=weights_digest(teacher.arch.code, teacher.num_classes, teacher.state_dict()))
    positions = args.nsr_positions.split(",")
    choices = [c for c in space_choices(space) if c.position in positions]
    if args.nsr_s4:
        choices += [c for c in space_choices(space) if c.position == "s4" and not c.pre_down and c.stride in (1, None)
                    and c.stem == args.nsr_s4]
    out.mkdir(parents=True, exist_ok=True)
    train = save_features(out / "train.pt", compute_features(teacher, train_ds, limit=args.train_images, progress=False))
    val = save_features(out / "val.pt", compute_features(teacher, val_ds, limit=args.val_images, progress=False))
    lib = BlockLibrary(out / "library")
    t = time.perf_counter()
    distill_library(choices, library=lib, teacher=info, train=train, val=val,
                    config=BlockTrainConfig(steps=args.nsr_steps, batch_size=args.batch))
    table = lib.table()
    table = table[table.choice.isin([c.choice for c in choices])]
    print(f"\n== held-out NSR: teacher {info.arch}, {args.nsr_steps} steps/block, batch {args.batch}, "
          f"{args.train_images} train / {args.val_images} val images ({time.perf_counter() - t:.0f} s this run) ==")
    specs = {c.choice: c for c in choices}
    groups: dict[tuple, list] = {}
    for row in table.itertuples():
        spec = specs[row.choice]
        key = (row.position, spec.width, spec.stem) if spec.position != "head" else ("head", None, None)
        groups.setdefault(key, []).append((spec, row))
    print(f"  {'position':8s} {'choice':34s} {'status':7s} {'NSR val':>8s} {'NSR train':>9s} {'params':>9s} {'s':>6s}")
    for key, members in groups.items():
        members.sort(key=lambda m: (m[0].depth or 0, m[0].choice))
        for spec, row in members:
            print(f"  {row.position:8s} {row.choice:34s} {row.status:7s} {row.nsr_val:8.4f} {row.nsr_train:9.4f} "
                  f"{int(row.params):9d} {row.seconds:6.1f}")
        if key[0] != "head" and len(members) > 2:
            rho = spearman([m[0].depth for m in members], [m[1].nsr_val for m in members])
            print(f"  -> {key[0]} width {key[1]}: Spearman(depth, NSR) = {rho:+.2f} over {len(members)} depths")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="mobile")
    p.add_argument("--variant", default="segmentation_ffnet40S_BBB_mobile", help="end-to-end comparison")
    p.add_argument("--input-size", default="64x128")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--timed", type=int, default=3, help="timed steps per block (after one warm-up)")
    p.add_argument("--steps-per-block", type=int, default=300)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    p.add_argument("--teacher", default=None, help="teacher file for parts 2-3 (default: part 1 only)")
    p.add_argument("--cache-images", type=int, default=64)
    p.add_argument("--nsr-positions", default="s8,s16,s32,head")
    p.add_argument("--nsr-s4", default=None, metavar="STEM", help="also distil the s1 s4 choices of this stem")
    p.add_argument("--nsr-steps", type=int, default=150)
    p.add_argument("--train-images", type=int, default=256)
    p.add_argument("--val-images", type=int, default=64)
    p.add_argument("--skip-cost", action="store_true")
    p.add_argument("--out", default="runs/bench_distill")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hw = parse_hw(args.input_size)
    space = get_space(args.space)
    if args.teacher:
        teacher = load_teacher(args.teacher)
    else:
        teacher = build_model(args.variant, num_classes=8).eval()
    if not args.skip_cost:
        part_cost(args, space, teacher, hw)
    if args.teacher:
        from ffnet_nas.data import make_dataset

        data = teacher.teacher_info.get("data") or "synthetic"
        train_ds = make_dataset(data, "train", size_hw=hw)
        val_ds = make_dataset(data, "val", size_hw=hw)
        out = Path(args.out)
        part_cache(args, teacher, train_ds, out)
        part_nsr(args, space, args.teacher, train_ds, val_ds, out)


if __name__ == "__main__":
    main()
