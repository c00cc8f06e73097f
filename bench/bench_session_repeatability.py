"""How repeatable is one ONNX Runtime network time, fp32 and int8: fresh sessions vs one session.

The latency table's validation ruler times each network twice, each time in a new
`InferenceSession` of the same graph bytes. When that ruler disagrees with itself, is it the
session (memory placement, kernel choice at session creation) or the machine (load)? This times
each of `--points` random points of the space `--sessions` times in fresh sessions and
`--sessions` times in one session, under the table's protocol, and prints each set's estimates and
their spread (max - min) / min.

    .venv/bin/python -m bench.bench_session_repeatability --input-size 256x512 --points 3 --sessions 5
"""

from __future__ import annotations

import argparse
import os


def spread_pct(values: list[float]) -> float:
    return 100.0 * (max(values) - min(values)) / min(values)


def main(argv: list[str] | None = None) -> int:
    from ffnet_nas.predictors.latency.backends import prepare
    from ffnet_nas.predictors.latency.modules import network
    from ffnet_nas.predictors.latency.protocol import Protocol, measurement_context, time_callable
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.space.searchspace import get_space

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="mobile")
    p.add_argument("--input-size", default="256x512")
    p.add_argument("--points", type=int, default=3)
    p.add_argument("--sessions", type=int, default=5)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--precisions", default="fp32,int8")
    a = p.parse_args(argv)

    hw = parse_hw(a.input_size)
    # the fidelity benchmark's protocol (bench_latency_backends: --repeats 5:30 --max-seconds 3, CPU clock)
    protocol = Protocol(min_repeats=5, max_repeats=30, max_seconds=3.0, clock="cpu", rounds=1)
    print(f"cpu: 1 thread, clock cpu; load {os.getloadavg()}; space {a.space} at {hw[0]}x{hw[1]}", flush=True)
    spreads: dict[tuple[str, str], list[float]] = {}
    with measurement_context("cpu", 1):
        for arch in get_space(a.space).sample_many(a.points, seed=a.seed):
            model, inputs = network(arch, hw, 1, num_classes=19)
            for dtype in a.precisions.split(","):
                key = ("net", arch.code, hw, 1, 19)  # one export (and quantisation) for every session below

                def session():
                    return prepare(model, inputs, backend="onnxruntime", device="cpu", dtype=dtype, threads=1,
                                   cache_key=key)

                fresh = [time_callable(session(), device="cpu", protocol=protocol).estimate_ms for _ in range(a.sessions)]
                fn = session()
                same = [time_callable(fn, device="cpu", protocol=protocol).estimate_ms for _ in range(a.sessions)]
                print(f"{arch.code} {dtype}", flush=True)
                for label, xs in (("fresh sessions", fresh), ("one session", same)):
                    spreads.setdefault((dtype, label), []).append(spread_pct(xs))
                    print(f"  {label:<15} " + " ".join(f"{x:8.2f}" for x in xs) + f"  spread {spread_pct(xs):4.1f}%",
                          flush=True)
    for (dtype, label), xs in spreads.items():
        print(f"{dtype:<5} {label:<15} spread over {len(xs)} points: {min(xs):.1f}-{max(xs):.1f}%")
    print(f"load after {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
