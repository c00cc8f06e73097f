"""Eager CPU latency: plain eval vs BN-folded vs BN-folded + channels_last (and optionally vs the reference code).

    .venv/bin/python bench/bench_deploy.py [--reference /path/to/FFNet-clone] [--rounds 10] [--input-size 256x512]

All configurations of one variant are measured in the same run, interleaved: each round times
one forward of every configuration in a rotating order, so drifts of a shared machine hit all
of them alike. Reported: min and median per configuration and their ratios to the plain model
(min is the steadier estimator on a busy CPU; see DESIGN.md "Measuring latency").

With --reference PATH (a clone of Qualcomm-AI-research/FFNet), each variant is also built with
the reference code (imported from that path at run time, never copied), the same weights are
loaded into it strictly (ours -> state dict -> reference, strict=True), the outputs are
compared, and the ratio ours/reference is printed. The reference imports torchvision only
for an unused transform; a stub module in a temporary folder stands in for it here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

from ffnet_nas.space.builder import build_model  # noqa: E402
from ffnet_nas.space.complexity import parse_hw  # noqa: E402
from ffnet_nas.space.deploy import fold_bn, to_channels_last  # noqa: E402

DEFAULT_VARIANTS = (
    "segmentation_ffnet40S_BBB_mobile",
    "segmentation_ffnet78S_BCC_mobile",
    "segmentation_ffnet46NS_CCC_mobile",
    "segmentation_ffnet122NS_CBB_mobile",
)


def import_reference(path: Path):
    """The reference repo's model registry, with a stub torchvision (only `transforms` is imported, unused)."""
    if not (path / "models" / "ffnet_blocks.py").is_file():
        sys.exit(f"--reference {path}: expected a clone of Qualcomm-AI-research/FFNet (models/ffnet_blocks.py not found)")
    stub = Path(tempfile.mkdtemp(prefix="tv_stub_"))
    (stub / "torchvision").mkdir()
    (stub / "torchvision" / "__init__.py").write_text("from . import transforms\n")
    (stub / "torchvision" / "transforms.py").write_text("# stub: the FFNet reference imports it but never uses it\n")
    sys.path[:0] = [str(path), str(stub)]
    from models import ffnet_blocks, model_registry  # type: ignore  # noqa: E402

    # The registered functions load weights from /workspace/ffnet_weights; we load ours instead.
    ffnet_blocks.FFNet.init_model = lambda self, *a, **k: None
    return model_registry


def build_reference(registry, name: str, state: dict) -> torch.nn.Module:
    with contextlib.redirect_stdout(io.StringIO()):
        model = registry.model_entrypoint(name)()
    model.load_state_dict(state, strict=True)
    return model.eval()


def randomise_bn(model: torch.nn.Module, seed: int = 1) -> None:
    """Non-trivial BN statistics, so that folding is checked on something other than an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def bench_variant(name: str, hw: tuple[int, int], rounds: int, warmup: int, registry) -> dict:
    torch.manual_seed(0)
    plain = build_model(name).eval()
    randomise_bn(plain)
    x = torch.randn(1, 3, *hw)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    folded = fold_bn(plain)
    folded_cl = to_channels_last(fold_bn(plain))
    configs = {"plain": (plain, x), "folded": (folded, x), "folded+CL": (folded_cl, x_cl)}
    if registry is not None:
        configs["reference"] = (build_reference(registry, name, plain.state_dict()), x)
    with torch.inference_mode():
        ref_out = plain(x)
        checks = {k: rel_diff(m(inp), ref_out) for k, (m, inp) in configs.items() if k != "plain"}
        for _ in range(warmup):
            for m, inp in configs.values():
                m(inp)
        times: dict[str, list[float]] = {k: [] for k in configs}
        keys = list(configs)
        from tqdm import tqdm

        for r in tqdm(range(rounds), desc=name.removeprefix("segmentation_"), unit="round", leave=False):
            order = keys[r % len(keys):] + keys[: r % len(keys)]  # rotate: no config always runs first
            for k in order:
                m, inp = configs[k]
                t0 = time.perf_counter()
                m(inp)
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {"times": times, "checks": checks}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    p.add_argument("--input-size", default="256x512", help="network input HxW (default 256x512)")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reference", type=Path, default=None, help="path to a clone of Qualcomm-AI-research/FFNet")
    args = p.parse_args(argv)
    hw = parse_hw(args.input_size)
    torch.set_num_threads(args.threads)
    registry = import_reference(args.reference) if args.reference else None
    print(f"torch {torch.__version__}, {args.threads} threads, input 1x3x{hw[0]}x{hw[1]}, fp32 eager, "
          f"{args.rounds} interleaved rounds after {args.warmup} warm-up")
    print("latency ms as min / median; ratios = config / plain (min, median); 'ours/ref' = plain / reference\n")
    header = f"{'variant':<28} {'config':<10} {'min':>8} {'median':>8} {'ratio min':>9} {'ratio med':>9} {'max rel diff':>12}"
    print(header)
    print("-" * len(header))
    for name in args.variants:
        res = bench_variant(name, hw, args.rounds, args.warmup, registry)
        t = res["times"]
        base_min, base_med = min(t["plain"]), statistics.median(t["plain"])
        for k, ts in t.items():
            lo, med = min(ts), statistics.median(ts)
            diff = f"{res['checks'][k]:.2e}" if k in res["checks"] else "-"
            print(f"{name.removeprefix('segmentation_'):<28} {k:<10} {lo:8.1f} {med:8.1f} {lo / base_min:9.3f} {med / base_med:9.3f} {diff:>12}")
        if "reference" in t:
            r_min, r_med = min(t["reference"]), statistics.median(t["reference"])
            print(f"{'':<28} {'ours/ref':<10} {'':>8} {'':>8} {base_min / r_min:9.3f} {base_med / r_med:9.3f}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
