"""The measure-latency pipeline: check settings, fill the table, calibrate, optionally validate.

Every check that can fail on user input runs before anything is measured, so a bad
`--dtype` or `--device` costs nothing and loses nothing. That includes an onnxruntime table
whose graphs came from another ONNX export than the one this version times (the one
`ffnet-nas export` ships, `backends.SHIPPED_EXPORT`): its keys would not add up with new ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ffnet_nas.predictors.latency.backends import (
    SHIPPED_EXPORT,
    check_backend,
    table_export,
)
from ffnet_nas.predictors.latency.keys import space_units
from ffnet_nas.predictors.latency.lut import (
    LatencyTable,
    LutSpec,
    measure_units,
    open_table,
    table_paths,
)
from ffnet_nas.predictors.latency.predict import Calibration
from ffnet_nas.predictors.latency.protocol import (
    Protocol,
    check_clock,
    check_dtype,
    default_threads,
    device_name,
    parse_device,
)
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import read_json


@dataclass(frozen=True)
class BuildResult:
    table: LatencyTable
    n_keys: int
    n_new: int
    calibration: Calibration | None
    validation: object | None  # validate.ValidationResult


def make_spec(*, device: str, dtype: str = "fp32", backend: str = "eager", batch: int = 1,
              input_hw: tuple[int, int], num_classes: int, threads: int | None = None,
              form: str = "module") -> LutSpec:
    """Parse and check the settings; raises InvalidInput with one clear line. `num_classes`: the
    head's, the teacher's (or, before a teacher exists, the data's)."""
    device = parse_device(device)
    check_backend(backend, device)
    check_dtype(device, dtype, backend)
    if not isinstance(batch, int) or batch < 1:
        raise InvalidInput(f"--batch {batch!r}: expected a positive integer")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise InvalidInput(f"--num-classes {num_classes!r}: expected a positive number of classes")
    threads = default_threads() if threads is None else threads
    if not isinstance(threads, int) or threads < 1:
        raise InvalidInput(f"--threads {threads!r}: expected a positive integer")
    from ffnet_nas.predictors.latency.form import check_form

    return LutSpec(device=device, device_name=device_name(device), dtype=dtype, backend=backend, batch=batch,
                   input_hw=tuple(input_hw), threads=threads, num_classes=num_classes,
                   form=check_form(form, backend))


def build(*, lut_dir: str | Path, space, spec: LutSpec, protocol: Protocol, calibrate_n: int = 6,
          validate_n: int = 0, seed: int = 0, progress: bool = True, limit: int | None = None,
          validate_published: int | None = None) -> BuildResult:
    from ffnet_nas.predictors.latency.validate import calibrate, validate

    check_clock(protocol, spec.device, spec.threads)
    check_table_export(lut_dir, spec)
    if validate_n > 0 and space.size <= calibrate_n and not _has_published(space):
        raise InvalidInput(f"space {space.name!r} has {space.size} point(s), all used for calibration and none "
                           "published: nothing left to validate on; expected a smaller --calibrate")
    from ffnet_nas.predictors.latency.form import resolve_form

    spec, probe = resolve_form(lut_dir=lut_dir, spec=spec, protocol=protocol, space=space)  # `deploy` -> a form
    units = space_units(space, spec.input_hw, num_classes=spec.num_classes)
    table = open_table(lut_dir, spec, protocol, space=space.name, form_probe=probe)
    n_new = len(table.missing(units, protocol.rounds))
    table = measure_units(table, units, protocol, progress=progress, limit=limit)
    if table.missing(units, protocol.rounds):  # stopped early on purpose (limit)
        return BuildResult(table, len(units), n_new, None, None)
    cal = calibrate(table, space, n=calibrate_n, protocol=protocol, progress=progress) if calibrate_n > 0 else None
    result = None
    if validate_n > 0:
        result = validate(table, space, n=validate_n, calibration=cal or Calibration(), protocol=protocol,
                          seed=seed, published=validate_published, progress=progress)
    return BuildResult(table, len(units), n_new, cal, result)


def check_table_export(lut_dir: str | Path, spec: LutSpec) -> None:
    """Refuse to extend an onnxruntime table timed on graphs from another export than `SHIPPED_EXPORT`.

    Tables written before the export was recorded read as `backends.LEGACY_EXPORT` (TorchScript,
    opset 17). They still load and predict; only measuring more into them is refused.
    """
    csv_path, meta_path = table_paths(lut_dir, spec)
    if spec.backend != "onnxruntime" or not meta_path.exists():
        return
    try:
        meta = read_json(meta_path, what="latency table metadata")
    except InvalidInput:
        return  # open_table reports a corrupt file in its own words
    recorded = table_export(meta)
    if recorded is not None and recorded != SHIPPED_EXPORT:
        raise InvalidInput(f"latency table {str(csv_path)!r} timed graphs from the {recorded}; this version times "
                           f"the graph `ffnet-nas export` ships ({SHIPPED_EXPORT}); expected deleting the table (or "
                           "another --workdir) so that it is measured again")


def _has_published(space) -> bool:
    from ffnet_nas.space.catalogue import variants

    return any(v.arch in space for v in variants(task="segmentation"))
