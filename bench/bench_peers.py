"""The peer designs on this CPU: FAM/FAM2/JPU heads vs FFNet's B/C heads, metamixer vs basic blocks.

    .venv/bin/python -m bench.bench_peers [--input-size 256x512] [--rounds 10] [--threads 1] [--no-blocks] [--no-networks]

Everything is timed at FFNet-40S mobile's backbone (stemB-basic-d4.5.6.4-w64.128.192.320-s1),
so the heads see the same four features and the blocks the same shapes. Three tables:

1. heads: each head as the latency table times it (one head unit, `predictors.latency.modules`),
   eager and ONNX Runtime (the exported graph `ffnet-nas export` ships), ms min / median and the
   ratio to up-head B by min, side by side in one run;
2. blocks: one stride-2 and one repeat block of each stage, basic vs metamixer;
3. networks (unless --no-networks): FFNet-40S BBB mobile and its peer transplants
   (`peer_*_mobile`), whole, eager and ONNX Runtime; with params and GMACs.

Plus the share of the FAM heads' time spent in the gathers: `grid_sampler_2d` in eager (torch
profiler) and `GridSample` under ONNX Runtime (its per-node profile). Each table's configurations are timed interleaved, one forward each per round
in a rotating order, so drifts of the shared machine hit all of them alike (DESIGN.md "Measuring
latency": min is the steadier estimator on a busy CPU).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from ffnet_nas.predictors.latency.backends import prepare
from ffnet_nas.predictors.latency.keys import units_of
from ffnet_nas.predictors.latency.modules import network, unit_inputs, unit_module
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.complexity import complexity, parse_hw
from ffnet_nas.space.peers import get_peer

BACKBONE = "stemB-{block}-d4.5.6.4-w64.128.192.320-s1-up{up}-seg{seg}-nearest"
HEADS = (("B", "B"), ("C", "C"), ("FAM", "B"), ("FAM2", "B"), ("JPU", "B"))
NETWORKS = ("segmentation_ffnet40S_BBB_mobile", "peer_metamixer_mobile", "peer_sfnet_mobile",
            "peer_sfnet_lite_mobile", "peer_fastfcn_mobile")


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            fns[n]()
            times[n].append((time.perf_counter() - t0) * 1e3)
    return times


def backends(module: torch.nn.Module, xs: tuple[torch.Tensor, ...], threads: int) -> dict[str, Callable[[], object]]:
    out = {}
    for backend in ("eager", "onnxruntime"):
        out[backend] = prepare(module, xs, backend=backend, device="cpu", dtype="fp32", threads=threads)
    return out


def table(title: str, rows: list[tuple[str, dict[str, list[float]]]], ref: str, extra: dict[str, str] | None = None) -> None:
    print(f"\n{title}")
    head = "| config | eager ms (min / median) | eager / ref | ORT ms (min / median) | ORT / ref | ORT / eager |"
    if extra:
        head += " params (M) / GMACs |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    refs = dict(rows)[ref]
    for name, t in rows:
        e, o = t["eager"], t["onnxruntime"]
        line = (f"| {name} | {min(e):.2f} / {statistics.median(e):.2f} | {min(e) / min(refs['eager']):.2f} | "
                f"{min(o):.2f} / {statistics.median(o):.2f} | {min(o) / min(refs['onnxruntime']):.2f} | "
                f"{min(o) / min(e):.2f} |")
        if extra:
            line += f" {extra[name]} |"
        print(line)


def grid_sample_share(module: torch.nn.Module, xs: tuple[torch.Tensor, ...]) -> float:
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        module(*xs)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                module(*xs)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    grid = sum(e.self_cpu_time_total for e in events if "grid_sampler" in e.key)
    return grid / total if total else float("nan")


def ort_op_share(module: torch.nn.Module, xs: tuple[torch.Tensor, ...], threads: int, op: str = "GridSample") -> float:
    """Share of ONNX Runtime's node time spent in `op` nodes (ORT's own profile, 5 runs)."""
    import json
    import os
    import tempfile

    import onnxruntime as ort

    from ffnet_nas.predictors.latency.backends import export_onnx

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="ort_profile_"), "ort")  # not the cwd
    opts.log_severity_level = 3
    session = ort.InferenceSession(export_onnx(module.eval(), xs), sess_options=opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), xs)}
    for _ in range(5):
        session.run(None, feeds)
    path = session.end_profiling()
    with open(path) as f:
        events = [e for e in json.load(f) if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    os.remove(path)
    total = sum(e["dur"] for e in events)
    return sum(e["dur"] for e in events if e.get("args", {}).get("op_name") == op) / total if total else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input-size", default="256x512", help="network input HxW (default 256x512)")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num-classes", type=int, default=19)
    p.add_argument("--no-blocks", action="store_true", help="skip the block table")
    p.add_argument("--no-networks", action="store_true", help="skip the whole-network table (the slowest)")
    args = p.parse_args()
    hw = parse_hw(args.input_size)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"# bench_peers: input {hw[0]}x{hw[1]}, {args.threads} thread(s), fp32, batch 1, {args.rounds} rounds, "
          f"torch {torch.__version__}")

    # 1. heads at the same backbone
    rows, shares = [], {}
    for up, seg in HEADS:
        arch = Arch.parse(BACKBONE.format(block="basic", up=up, seg=seg))
        unit = next(u for u in units_of(arch, hw, num_classes=args.num_classes) if u.kind == "head")
        module, xs = unit_module(unit), unit_inputs(unit, 1)
        rows.append((f"up{up}-seg{seg}", interleaved(backends(module, xs, args.threads), args.rounds)))
        if up.startswith("FAM"):
            shares[up] = (grid_sample_share(module, xs), ort_op_share(module, xs, args.threads))
    table("heads (one LUT head unit each) at FFNet-40S mobile's features", rows, "upB-segB")
    for up, (eager, onnx) in shares.items():
        print(f"up{up} head: grid sampling takes {eager:.1%} of its eager time (grid_sampler_2d), "
              f"{onnx:.1%} of its ONNX Runtime node time (GridSample)")
    import sys

    sys.stdout.flush()
    if args.no_blocks and args.no_networks:
        return

    # 2. blocks: first (stride 2) and repeat block of each stage
    rows = []
    for block in () if args.no_blocks else ("basic", "metamixer"):
        arch = Arch.parse(BACKBONE.format(block=block, up="B", seg="B"))
        units = [u for u in units_of(arch, hw) if u.kind == "block"]
        fns = {}
        for u in units:
            module, xs = unit_module(u), unit_inputs(u, 1)
            for backend, fn in backends(module, xs, args.threads).items():
                fns[f"{u.key}|{backend}"] = fn
        t = interleaved(fns, args.rounds)
        for u in units:
            rows.append((u.key, {b: t[f"{u.key}|{b}"] for b in ("eager", "onnxruntime")}))
    if rows:
        print("\nblocks (each key once; a stage runs its repeat block depth-1 times)")
        print("| key | eager ms (min) | ORT ms (min) | metamixer / basic (eager, ORT) |")
        print("|---|---:|---:|---:|")
    by_key = dict(rows)
    for key, t in rows:
        twin = key.replace("metamixer", "basic")
        ratio = "" if twin == key or twin not in by_key else \
            f"{min(t['eager']) / min(by_key[twin]['eager']):.2f}, {min(t['onnxruntime']) / min(by_key[twin]['onnxruntime']):.2f}"
        print(f"| {key} | {min(t['eager']):.2f} | {min(t['onnxruntime']):.2f} | {ratio} |")

    if args.no_networks:
        return
    # 3. whole networks: FFNet-40S BBB mobile and its peer transplants
    rows, extra = [], {}
    for name in NETWORKS:
        arch = Arch.from_name(name) if not name.startswith("peer_") else get_peer(name).arch
        module, xs = network(arch, hw, 1, num_classes=args.num_classes)
        rows.append((name, interleaved(backends(module, xs, args.threads), max(3, args.rounds // 2))))
        c = complexity(arch, hw, num_classes=args.num_classes)
        extra[name] = f"{c.params / 1e6:.2f} / {c.macs / 1e9:.1f}"
    table("whole networks", rows, NETWORKS[0], extra)


if __name__ == "__main__":
    main()
