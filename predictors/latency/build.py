"""The measure-latency pipeline: check settings, fill the table, calibrate, optionally validate.

Every check that can fail on user input runs before anything is measured, so a bad
`--dtype` or `--device` costs nothing and loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ffnet_nas.predictors.latency.backends import check_backend
from ffnet_nas.predictors.latency.keys import space_units
from ffnet_nas.predictors.latency.lut import LatencyTable, LutSpec, measure_units, open_table
from ffnet_nas.predictors.latency.predict import Calibration
from ffnet_nas.predictors.latency.protocol import Protocol, check_clock, check_dtype, default_threads, device_name, parse_device
from ffnet_nas.space.errors import InvalidInput


@dataclass(frozen=True)
class BuildResult:
    table: LatencyTable
    n_keys: int
    n_new: int
    calibration: Calibration | None
    validation: object | None  # validate.ValidationResult


def make_spec(*, device: str, dtype: str = "fp32", backend: str = "eager", batch: int = 1,
              input_hw: tuple[int, int], threads: int | None = None, num_classes: int = 19) -> LutSpec:
    """Parse and check the settings; raises InvalidInput with one clear line."""
    device = parse_device(device)
    check_backend(backend, device)
    check_dtype(device, dtype, backend)
    if not isinstance(batch, int) or batch < 1:
        raise InvalidInput(f"--batch {batch!r}: expected a positive integer")
    threads = default_threads() if threads is None else threads
    if not isinstance(threads, int) or threads < 1:
        raise InvalidInput(f"--threads {threads!r}: expected a positive integer")
    return LutSpec(device=device, device_name=device_name(device), dtype=dtype, backend=backend, batch=batch,
                   input_hw=tuple(input_hw), threads=threads, num_classes=num_classes)


def build(*, lut_dir: str | Path, space, spec: LutSpec, protocol: Protocol, calibrate_n: int = 6,
          validate_n: int = 0, seed: int = 0, progress: bool = True, limit: int | None = None) -> BuildResult:
    from ffnet_nas.predictors.latency.validate import calibrate, validate

    check_clock(protocol, spec.device, spec.threads)
    if validate_n > 0 and space.size <= calibrate_n and not _has_published(space):
        raise InvalidInput(f"space {space.name!r} has {space.size} point(s), all used for calibration and none "
                           "published: nothing left to validate on; expected a smaller --calibrate")
    units = space_units(space, spec.input_hw, num_classes=spec.num_classes)
    table = open_table(lut_dir, spec, protocol, space=space.name)
    n_new = len(table.missing(units, protocol.rounds))
    table = measure_units(table, units, protocol, progress=progress, limit=limit)
    if table.missing(units, protocol.rounds):  # stopped early on purpose (limit)
        return BuildResult(table, len(units), n_new, None, None)
    cal = calibrate(table, space, n=calibrate_n, protocol=protocol, progress=progress) if calibrate_n > 0 else None
    result = None
    if validate_n > 0:
        result = validate(table, space, n=validate_n, calibration=cal or Calibration(), protocol=protocol,
                          seed=seed, progress=progress)
    return BuildResult(table, len(units), n_new, cal, result)


def _has_published(space) -> bool:
    from ffnet_nas.space.catalogue import variants

    return any(v.arch in space for v in variants(task="segmentation"))
