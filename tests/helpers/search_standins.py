"""Cheap, deterministic STAND-IN objectives for testing and benchmarking the search.

They are NOT predictions of anything: latency grows with depth x width (halved by pre_down,
like a smaller input) and mIoU rises smoothly and saturates with the same budget, plus a small
bonus per head type, so the two objectives conflict and the front is non-trivial.
"""

from __future__ import annotations

import math

from ffnet_nas.space.arch import Arch

_HEAD_BONUS = {"A": 0.0, "B": 0.4, "C": 0.7}


def _budget(arch: Arch) -> float:
    expansion = 4 if arch.block == "bottleneck" else 1
    return sum(d * w * expansion for d, w in zip(arch.depths, arch.widths)) / (2.0 if arch.first_stride == 2 else 1.0)


def standin_latency_ms(arch: Arch) -> float:
    scale = 0.25 if arch.pre_down else 1.0
    return 1.0 + scale * _budget(arch) / 500.0 + 0.3 * "ABC".index(arch.up_head) + (0.2 if arch.upsample == "bilinear" else 0.0)


def standin_miou(arch: Arch) -> float:
    resolution_penalty = 3.0 if arch.pre_down else 0.0
    return (55.0 + 20.0 * (1.0 - math.exp(-_budget(arch) / 4000.0)) + _HEAD_BONUS[arch.seg_head]
            + 0.3 * "ABC".index(arch.up_head) - resolution_penalty + 0.1 * "ABC".index(arch.stem))


# A small space (512 points, input 64x128) that contains several published mobile variants,
# so searches in tests finish in seconds and parts of the complexity cache recur.
TINY_SPACE = {
    "base": "mobile",
    "name": "tiny",
    "stems": ["B", "C"],
    "up_heads": ["B", "C"],
    "seg_heads": ["B", "C"],
    "stages": {4: {"depths": [[4, 5], [5, 8], [6, 8], [4, 5]], "widths": [[64], [128], [192], [320]]}},
    "input_size": "64x128",
}


def tiny_space():
    from ffnet_nas.space.searchspace import from_dict

    return from_dict(TINY_SPACE)


def write_tiny_space(path) -> str:
    import yaml

    with open(path, "w") as f:
        yaml.safe_dump(TINY_SPACE, f)
    return str(path)


def cli_with_standins(argv: list[str]) -> int:
    """Run `ffnet-nas` with the workdir predictors replaced by the stand-ins above (tests only)."""
    from ffnet_nas import cli
    from ffnet_nas.predictors import load as loading

    import os

    latency = standin_latency_ms
    barrier = os.environ.get("FFNET_TEST_START_BARRIER")  # "FOLDER:PARTIES", set by multi-worker tests
    if barrier:
        folder, parties = barrier.rsplit(":", 1)
        latency = start_barrier(folder, int(parties))

    def load(**_kw):
        return loading.Predictors(latency_ms=latency, miou=standin_miou,
                                  objective_id="standin-v1", description="STAND-IN objectives (tests)")

    loading.load_predictors = load  # the one loader the search step calls
    return cli.main(argv)


def start_barrier(folder: str, parties: int, *, timeout: float = 120.0):
    """Wrap the latency stand-in so that each worker process, in its first trial, waits until `parties`
    workers have reached theirs: on a busy machine one process could otherwise run every trial before
    the other has started, and a test of sharing would test nothing."""
    import os
    import time
    from pathlib import Path

    here, waited = Path(folder), []

    def latency_ms(arch):
        if not waited:
            waited.append(True)
            here.mkdir(parents=True, exist_ok=True)
            (here / str(os.getpid())).touch()
            deadline = time.monotonic() + timeout
            while len(list(here.iterdir())) < parties and time.monotonic() < deadline:
                time.sleep(0.02)
        return standin_latency_ms(arch)
    return latency_ms


if __name__ == "__main__":  # python tests/search_standins.py search --workdir ... (used by tests)
    import sys

    sys.exit(cli_with_standins(sys.argv[1:]))
