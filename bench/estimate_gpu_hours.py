"""How many GPU-hours a run configuration costs, from its arithmetic: an estimate, not a measurement.

    python -m bench.estimate_gpu_hours configs/cityscapes-mobile.yaml [--tflops 25]

Every training step costs ~3x its forward pass (forward, and a backward of about twice that); the
forward passes are counted exactly (torch's FlopCounterMode on meta tensors, the same count as
`ffnet-nas space show`): the teacher at the training crop, every block of the library on the
teacher's features, the design points and candidates (their mean over a sample of the space) with
the teacher's forward for KD, and the images each step scores. The latency table is timing, not
arithmetic: it is left out (minutes on a GPU at the paper's resolutions). Dividing by an
*assumed* sustained throughput turns FLOPs into hours; small convolutional networks with
BatchNorm sustain a fraction of a GPU's peak, so the result is given for a range.

No GPU was used to write this: the throughput is an assumption, stated on every line. Replace it
with a measured one (bench/gpu_check.sh prints images per second of a fine-tune) when you have one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from ffnet_nas.data import class_count  # noqa: E402
from ffnet_nas.run_config import load_config  # noqa: E402
from ffnet_nas.space.arch import resolve  # noqa: E402
from ffnet_nas.space.complexity import complexity  # noqa: E402
from ffnet_nas.space.errors import InvalidInput  # noqa: E402
from ffnet_nas.space.searchspace import get_search_space  # noqa: E402

# Sustained training throughput assumed for these networks (bf16, one modern data-centre GPU):
# a range, because nobody here measured it. 25 TFLOP/s is ~8% of an A100's dense bf16 peak.
ASSUMED_TFLOPS = (12.0, 25.0, 50.0)


def _forward_macs(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() // 2


def block_macs(space, teacher_arch, train_hw: tuple[int, int], num_classes: int) -> list[int]:
    """Forward MACs per image of every block of the library, on the teacher's features."""
    from ffnet_nas.distill.blocks import StudentBlock, block_io
    from ffnet_nas.distill.choices import space_choices
    from ffnet_nas.distill.features import teacher_features
    from ffnet_nas.space.builder import build_model

    scale = teacher_arch.input_scale
    with torch.device("meta"):
        teacher = build_model(teacher_arch, num_classes=num_classes).eval()
        feats = teacher_features(teacher, torch.empty(1, 3, train_hw[0] * scale, train_hw[1] * scale))
        out = []
        for spec in space_choices(space):
            student = StudentBlock(spec, teacher_channels=tuple(teacher_arch.feature_channels),
                                   num_classes=num_classes).eval()
            x, _ = block_io(spec, feats, teacher_input_scale=scale)
            out.append(_forward_macs(student, x))
    return out


def estimate(config_path: str) -> list[tuple[str, float]]:
    """(step, TFLOPs) of every FLOP-bound step of the configuration."""
    config = load_config(config_path)
    b = config.budget
    space = get_search_space(config.space)
    try:
        num_classes = class_count(config.data)  # a folder data set must be there to name its classes
    except InvalidInput:
        num_classes = 19
    train = b.train_hw
    teacher = resolve(b.teacher.arch)
    teacher_fwd = complexity(teacher, (train[0] * teacher.input_scale, train[1] * teacher.input_scale),
                             num_classes=num_classes).macs
    points = space.sample_many(20, seed=0)
    point_fwd = statistics.mean(complexity(a, (train[0] * a.input_scale, train[1] * a.input_scale),
                                           num_classes=num_classes).macs for a in points)
    val_images = b.evaluate.val_images or 500  # Cityscapes val
    rows = []
    if config.teacher is None:
        rows.append(("teacher (train + score)", 2 * (3 * teacher_fwd * b.teacher.steps * b.teacher.batch_size
                                                    + teacher_fwd * (b.teacher.val_images or 500))))
    rows.append(("teacher features for distillation", 2 * teacher_fwd * (b.distill.train_images + b.distill.val_images)))
    blocks = block_macs(space, teacher, train, num_classes)
    d = b.distill.block
    rows.append((f"distil {len(blocks)} blocks", 2 * sum(3 * m * d.steps * d.batch_size + m * b.distill.val_images
                                                          for m in blocks)))
    e = b.evaluate
    n_points = b.predictor.points + 2 * e.top + 1 + e.rounds * e.round_points
    per_point = 3 * point_fwd * e.finetune.steps * e.finetune.batch_size + teacher_fwd * e.finetune.steps * \
        e.finetune.batch_size + point_fwd * val_images
    rows.append((f"fine-tune and score {n_points} points (design, candidates, reference, refine rounds)",
                 2 * n_points * per_point))
    return [(name, flops / 1e12) for name, flops in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="a run configuration (ffnet-nas run --print-config)")
    args = p.parse_args(argv)
    rows = estimate(args.config)
    total = sum(t for _, t in rows)
    print(f"{args.config}: arithmetic per step (PFLOP), and hours at an ASSUMED sustained throughput of "
          + " / ".join(f"{t:g}" for t in ASSUMED_TFLOPS) + " TFLOP/s")
    for name, tflop in rows + [("total", total)]:
        hours = " / ".join(f"{tflop / t / 3600:.1f}" for t in ASSUMED_TFLOPS)
        print(f"  {name:<75} {tflop / 1e3:8.1f} PFLOP   {hours} h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
