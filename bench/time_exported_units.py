"""Time the files `ffnet-nas measure-latency --export-units DIR` wrote with ONNX Runtime; write `file,ms`.

The stand-in for a device: what a phone's benchmark tool does with the exported folder, done here
so the import round trip (export -> time elsewhere -> import-latency -> predict) is checked end to end.
Each file is timed with the project's protocol (`predictors.latency.protocol`: warm-up, repeats
until stable, p25, the lower of `--rounds` interleaved rounds) in one ONNX Runtime session of
`--threads` threads, as the onnxruntime backend times its in-memory graphs.

    python -m bench.time_exported_units DIR --out times.csv [--threads 1] [--clock cpu] [--int8 DATA]

`--int8`: quantise each file first (static QDQ, `predictors.latency.int8`), calibrated on random
inputs of its shape, as a device toolchain would before timing; the precision to import is then int8.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path


def session(model: bytes, threads: int):
    # the latency table's own ONNX Runtime settings, so the stand-in device times what the table would
    from ffnet_nas.predictors.latency.int8 import session as ort_session

    return ort_session(model, threads=threads)


def time_folder(folder: Path, *, threads: int = 1, rounds: int = 2, clock: str = "wall", min_repeats: int = 10,
                max_repeats: int = 100, max_seconds: float = 10.0, tolerance: float = 0.02, int8: bool = False,
                kinds: tuple[str, ...] | None = None) -> dict[str, float]:
    """file (relative to the folder) -> ms, the lowest of `rounds` interleaved rounds."""
    import numpy as np
    from ffnet_nas.predictors.latency.export_units import load_manifest
    from ffnet_nas.predictors.latency.protocol import (
        Protocol,
        measurement_context,
        time_callable,
    )

    manifest = load_manifest(folder)
    protocol = Protocol(min_repeats=min_repeats, max_repeats=max_repeats, max_seconds=max_seconds, rel_tol=tolerance,
                        clock=clock, rounds=rounds)
    entries = [e for e in manifest.entries if kinds is None or e.kind in kinds]
    sessions = {}
    for e in entries:
        model = (manifest.folder / e.file).read_bytes()
        feeds = {n: np.random.default_rng(0).standard_normal(s).astype(np.float32) for n, s in e.inputs}
        if int8:
            from ffnet_nas.predictors.latency.int8 import quantize_onnx

            model = quantize_onnx(model, [feeds])
        sessions[e.file] = (session(model, threads), feeds)
    best: dict[str, float] = {}
    with measurement_context("cpu", threads):
        for _ in range(rounds):
            for e in entries:
                sess, feeds = sessions[e.file]
                t = time_callable(lambda s=sess, f=feeds: s.run(None, f), device="cpu", protocol=protocol)
                best[e.file] = min(best.get(e.file, float("inf")), t.estimate_ms)
    return best


def write_csv(times: dict[str, float], out: Path) -> None:
    from ffnet_nas.space.io import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "ms"])
    for f, ms in sorted(times.items()):
        w.writerow([f, f"{ms:.6g}"])
    atomic_write_text(out, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    p.add_argument("--int8", action="store_true", help="quantise each file (static QDQ) before timing")
    a = p.parse_args(argv)
    times = time_folder(a.folder, threads=a.threads, rounds=a.rounds, clock=a.clock, int8=a.int8)
    write_csv(times, a.out)
    print(f"{len(times)} files timed -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
