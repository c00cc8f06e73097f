"""`import-latency`: device times + the unit manifest -> a calibrated (and validated) latency table.

Every check runs before anything is written: a missing, unknown, non-positive or mis-scaled
time leaves the workdir as it was. With `validate_n`, the validation networks (random points
the calibration did not use, plus the space's published variants, as `measure-latency
--validate` picks them) are added to the export folder and its manifest; when the times file
holds theirs too, the predictor is scored against them. The device time of a network is one
figure (its estimate), so there is no second pass: the ruler's repeatability on the device is
unknown here and the summary says so (NaN).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

from ffnet_nas.predictors.latency.export_units import (
    NET_PREFIX,
    add_networks,
    load_manifest,
)
from ffnet_nas.predictors.latency.imported import (
    EXTERNAL,
    PRECISIONS,
    Times,
    check_units,
    read_times,
    require,
    resolve_names,
    slug_text,
    source_digest,
)
from ffnet_nas.predictors.latency.lut import LatencyTable, LutSpec, table_paths
from ffnet_nas.space.errors import InvalidInput, closest
from ffnet_nas.space.io import atomic_write_csv, atomic_write_json, provenance

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportResult:
    table: LatencyTable
    n_units: int
    calibration: object | None  # predict.Calibration
    to_time: tuple[str, ...]  # validation files (relative to the manifest's folder) still without a time
    validation: dict | None  # the summary written, when every validation network had a time


def import_latency(*, times_path: str | Path, units: str | Path | None, lut_dir: str | Path, device_name: str,
                   runtime: str, precision: str, toolchain: str | None = None, validate_n: int = 0,
                   seed: int = 0) -> ImportResult:
    from ffnet_nas.predictors.latency.predict import (
        fit_calibration,
        raw_sum,
        save_calibration,
    )
    from ffnet_nas.predictors.latency.validate import validation_points
    from ffnet_nas.space.searchspace import get_space

    if precision not in PRECISIONS:
        raise InvalidInput(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}"
                           f"{closest(precision, PRECISIONS)}")
    if not device_name.strip() or not runtime.strip():
        raise InvalidInput("--device-name and --runtime must name something: expected e.g. --device-name "
                           "'Galaxy S24' --runtime 'tflite 2.16'")
    if validate_n < 0:
        raise InvalidInput(f"--validate {validate_n}: expected a count >= 0")
    times_path = Path(times_path)
    times: Times = read_times(times_path)
    manifest = load_manifest(units if units is not None else times_path.parent)
    space = get_space(manifest.space)
    spec = LutSpec(device=EXTERNAL, device_name=device_name.strip(), dtype=precision, backend=slug_text(runtime),
                   batch=manifest.batch, input_hw=manifest.input_hw, threads=1, num_classes=manifest.num_classes)
    if validate_n > 0:
        cal_codes = [e.key[len(NET_PREFIX):] for e in manifest.networks("calibration")]
        points = validation_points(space, validate_n, seed=seed, exclude=cal_codes)
        if not points:
            raise InvalidInput(f"space {space.name!r} has {space.size} point(s), all used for calibration and none "
                               "published: nothing left to validate on; expected export with a smaller --calibrate")
        manifest = add_networks(manifest, [a for a, _, _ in points], kind="validation")
    have, detail = resolve_names(times, manifest)
    unit_keys = [e.key for e in manifest.units()]
    require(unit_keys, have, what="unit files", manifest=manifest)
    cal_entries = manifest.networks("calibration")
    require([e.key for e in cal_entries], have, what="calibration networks", manifest=manifest)

    kinds = {e.key: e.kind for e in manifest.entries}
    rows = {k: _row(k, kinds[k], have[k], detail.get(k)) for k in unit_keys}
    csv_path, meta_path = table_paths(lut_dir, spec)
    table = LatencyTable(spec=spec, rows=rows, path=csv_path)
    from ffnet_nas.space.arch import Arch

    cal_archs = [Arch.parse(e.key[len(NET_PREFIX):]) for e in cal_entries]
    raws = [raw_sum(a, table) for a in cal_archs]
    measured = [have[NET_PREFIX + a.code] for a in cal_archs]
    check_units(raws, measured)

    external = {"device_name": spec.device_name, "runtime": runtime.strip(), "toolchain": (toolchain or "").strip()
                or "unrecorded", "precision": precision, "times_from": times_path.name, "times_format": times.source,
                "times_sha1": source_digest(times_path), "manifest": str(manifest.path),
                "export": manifest.meta.get("export"), "files_dtype": manifest.meta.get("dtype_of_files")}
    meta = {"spec": spec.to_dict(), "protocol": None, "spaces": [space.name], "external": external,
            "versions": {"runtime": external["runtime"], "toolchain": external["toolchain"]},
            "provenance": provenance(device=EXTERNAL, device_name=spec.device_name, dtype=precision,
                                     runtime=external["runtime"], toolchain=external["toolchain"])}
    atomic_write_json(meta_path, meta)
    atomic_write_csv(csv_path, table.frame())
    table = replace(table, meta=meta)
    cal = None
    if cal_archs:
        cal = fit_calibration(raws, measured, codes=[a.code for a in cal_archs])
        save_calibration(table, cal)
    _write_e2e(table, have, manifest)

    val_entries = manifest.networks("validation") if validate_n > 0 else []
    to_time = tuple(e.file for e in val_entries if e.key not in have)
    summary = None
    if val_entries and not to_time:
        summary = _validate(table, space, val_entries, have, cal, seed=seed)
    return ImportResult(table=table, n_units=len(unit_keys), calibration=cal, to_time=to_time, validation=summary)


def _row(key: str, kind: str, ms: float, runs: list[float] | None) -> dict:
    from ffnet_nas.predictors.latency.protocol import quantile

    runs = runs or [ms]
    return {"key": key, "kind": kind, "estimate_ms": ms, "median_ms": quantile(runs, 0.5), "p25_ms": quantile(runs, 0.25),
            "min_ms": min(runs), "max_ms": max(runs), "iqr_ms": quantile(runs, 0.75) - quantile(runs, 0.25),
            "n": len(runs), "stable": True, "seconds": 0.0, "rounds": 1, "round_ms": f"{ms:.6g}"}


def _write_e2e(table: LatencyTable, have: dict[str, float], manifest) -> None:
    """The device's network times beside the table, in `validate`'s e2e format (calibration: pass 10,
    validation: pass 1), so `validate.time_arch` can answer with them for an imported table."""
    from ffnet_nas.predictors.latency.validate import (
        CALIBRATION_PASS0,
        _save_e2e,
        e2e_path,
    )

    rows = {}
    for e in manifest.entries:
        if e.key.startswith(NET_PREFIX) and e.key in have:
            code, ms = e.key[len(NET_PREFIX):], have[e.key]
            p = CALIBRATION_PASS0 if e.kind == "calibration" else 1
            rows[(code, p)] = {"code": code, "pass": p, "estimate_ms": ms, "median_ms": ms, "p25_ms": ms, "min_ms": ms,
                               "iqr_ms": 0.0, "n": 1, "stable": True, "seconds": 0.0}
    e2e_path(table).unlink(missing_ok=True)
    if rows:
        _save_e2e(e2e_path(table), rows)


def _validate(table: LatencyTable, space, entries, have: dict[str, float], cal, *, seed: int) -> dict:
    import pandas as pd
    from ffnet_nas.predictors.latency.predict import Calibration, raw_sum
    from ffnet_nas.predictors.latency.validate import agreement
    from ffnet_nas.space.arch import Arch
    from ffnet_nas.space.catalogue import name_of

    cal = cal or Calibration()
    records = []
    for e in entries:
        arch = Arch.parse(e.key[len(NET_PREFIX):])
        raw = raw_sum(arch, table)
        pred, meas = cal.apply(raw), have[e.key]
        name = name_of(arch) or ""
        records.append({"code": arch.code, "source": "published" if name else "random", "name": name,
                        "raw_sum_ms": raw, "predicted_ms": pred, "measured_1_ms": meas, "measured_2_ms": math.nan,
                        "measured_ms": meas, "error_pct": (pred - meas) / meas * 100, "repeat_diff_pct": math.nan})
    frame = pd.DataFrame(records)
    base = table.path.with_suffix("")
    atomic_write_csv(base.with_name(base.name + ".validation.csv"), frame)
    pub = frame["source"] == "published"
    summary = {"spec": table.spec.to_dict(), "space": space.name, "n_random": int((~pub).sum()),
               "n_published": int(pub.sum()), "seed": seed, "protocol": None,
               "predictor": agreement(frame["predicted_ms"], frame["measured_ms"]).to_dict(),
               "raw_sum": agreement(frame["raw_sum_ms"], frame["measured_ms"]).to_dict(),
               "repeatability": None,  # one device time per network: the device's ruler is not measured here
               "calibration": cal.to_dict(), "external": table.meta["external"],
               "provenance": provenance(device=EXTERNAL, device_name=table.spec.device_name)}
    atomic_write_json(base.with_name(base.name + ".validation.json"), summary)
    return summary


def stored_network_ms(table: LatencyTable, code: str) -> float:
    """The device's own time of network `code` for an imported table (NaN: not timed there)."""
    from ffnet_nas.predictors.latency.validate import _load_e2e, e2e_path

    rows = _load_e2e(e2e_path(table))
    found = [float(r["estimate_ms"]) for (c, _), r in rows.items() if c == code]
    if not found:
        logger.warning("latency table %s was measured on %s: network %s was not timed there, so its measured "
                       "latency is unknown (export it with import-latency --validate, time it, import again)",
                       table.path.name, table.spec.device_name, code)
        return math.nan
    return min(found)


__all__ = ["ImportResult", "import_latency", "stored_network_ms"]
