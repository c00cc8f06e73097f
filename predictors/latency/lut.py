"""The latency table: one row per unit key, its metadata, and resumable measurement.

Files, for a table named by its `slug` (device, dtype, backend, batch, input size, threads):

    <slug>.csv        key, kind, estimate_ms, median_ms, p25_ms, min_ms, max_ms, iqr_ms, n, stable, seconds
    <slug>.json       metadata: what was measured, where, how (provenance + protocol)

The CSV is rewritten atomically after every finished key (temp file + rename): a kill at
any moment leaves the previous complete table, a re-run measures only missing keys, and a
key can never appear twice because rows live in a dict keyed by key until written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ffnet_nas.predictors.latency.keys import Unit
from ffnet_nas.predictors.latency.protocol import (
    Protocol,
    Timing,
    measurement_context,
    time_callable,
)
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import (
    atomic_write_csv,
    atomic_write_json,
    provenance,
    read_checked_csv,
    read_json,
)

COLUMNS = ("key", "kind", "estimate_ms", "median_ms", "p25_ms", "min_ms", "max_ms", "iqr_ms", "n", "stable", "seconds",
           "rounds", "round_ms")


@dataclass(frozen=True)
class LutSpec:
    """What a table is valid for. Two tables with different specs never mix."""

    device: str  # cpu, cuda:0
    device_name: str
    dtype: str
    backend: str
    batch: int
    input_hw: tuple[int, int]  # the tensor entering the stem (pre_down points take 2x)
    threads: int
    # The class count of the head timed: the data's, from the teacher (every stored table records it).
    # No default: a table for the wrong count times the wrong head without saying so.
    num_classes: int
    # What was timed for eager/compile: form.FORMS ("module" = as built, what every table before this
    # field timed; from_dict reads a missing field so). Not in the slug or the keys.
    form: str = "module"

    @property
    def slug(self) -> str:
        name = re.sub(r"[^a-z0-9]+", "-", self.device_name.lower()).strip("-")
        h, w = self.input_hw
        if self.device == "external":  # imported (imported.py): the device's own threads are not ours to name
            return f"ext-{name}-{self.dtype}-{self.backend}-b{self.batch}-{h}x{w}"
        dev = "cpu" if self.device == "cpu" else "cuda-" + name
        return f"{dev}-{self.dtype}-{self.backend}-b{self.batch}-{h}x{w}-t{self.threads}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_hw"] = list(self.input_hw)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LutSpec:
        d = dict(d)
        d["input_hw"] = tuple(d["input_hw"])
        d.setdefault("form", "module")  # written before the form was recorded: timed as built
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class LatencyTable:
    spec: LutSpec
    rows: dict = field(default_factory=dict)  # key -> row dict (COLUMNS)
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    def ms(self, key: str) -> float:
        return float(self.rows[key]["estimate_ms"])

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def missing(self, units: Iterable[Unit], rounds: int = 1) -> list[Unit]:
        """Units with fewer than `rounds` finished rounds (absent ones included)."""
        return [u for u in units if self.rounds_done(u.key) < rounds]

    def rounds_done(self, key: str) -> int:
        return int(self.rows[key]["rounds"]) if key in self.rows else 0

    def frame(self):
        import pandas as pd

        return pd.DataFrame([self.rows[k] for k in sorted(self.rows)], columns=list(COLUMNS))


def table_paths(lut_dir: str | Path, spec: LutSpec) -> tuple[Path, Path]:
    base = Path(lut_dir) / spec.slug
    return base.with_suffix(".csv"), base.with_suffix(".json")


def load_table(csv_path: str | Path) -> LatencyTable:
    """A table and its metadata; clear errors for missing, corrupt or mismatched files."""
    csv_path = Path(csv_path)
    meta_path = csv_path.with_suffix(".json")
    meta = read_json(meta_path, what="latency table metadata")
    if "spec" not in meta:
        raise InvalidInput(f"latency table metadata {str(meta_path)!r} has no 'spec'; delete it and re-run measure-latency")
    spec = LutSpec.from_dict(meta["spec"])
    rows: dict = {}
    if csv_path.exists():
        # Our writes are atomic, so a short row, a repeated key or a missing estimate means the file
        # was damaged (cut by a copy, edited): refuse it rather than treat the remains as measurements.
        # A torn last row is dropped (with a warning): measure-latency measures that key again.
        frame = read_checked_csv(csv_path, what="latency table", required=COLUMNS, key=("key",),
                                 finite=("estimate_ms",), dtype={"round_ms": str, "key": str},
                                 fix="expected one complete row per key: delete it and re-run measure-latency")
        rows = {r["key"]: r for r in frame[list(COLUMNS)].to_dict("records")}
    return LatencyTable(spec=spec, rows=rows, meta=meta, path=csv_path)


def _save(table: LatencyTable) -> None:
    atomic_write_csv(table.path, table.frame())


def open_table(lut_dir: str | Path, spec: LutSpec, protocol: Protocol, *, space: str | None = None,
               form_probe: dict | None = None) -> LatencyTable:
    """The table for `spec` in `lut_dir`, created (metadata written) if new.

    An existing table measured with a different protocol is refused rather than mixed:
    keys timed under two protocols would not add up to one comparable sum.
    """
    csv_path, meta_path = table_paths(lut_dir, spec)
    if meta_path.exists():
        table = load_table(csv_path)
        if table.spec != spec:
            raise InvalidInput(f"latency table {str(csv_path)!r} was measured for {table.spec.to_dict()}, not "
                               f"{spec.to_dict()}; expected another --workdir or deleting the table")
        old = table.meta.get("protocol")
        if old is not None and old != protocol.to_dict():
            raise InvalidInput(f"latency table {str(csv_path)!r} was measured with protocol {old}; this run asks "
                               f"{protocol.to_dict()}; expected the same settings, another --workdir, or deleting it")
        meta = dict(table.meta)
    else:
        meta = {}
        table = LatencyTable(spec=spec, path=csv_path)
    spaces = sorted(set(meta.get("spaces", [])) | ({space} if space else set()))
    from ffnet_nas.predictors.latency.backends import backend_versions

    meta.update(
        spec=spec.to_dict(),
        protocol=protocol.to_dict(),
        spaces=spaces,
        versions=backend_versions(spec.backend, spec.dtype),
        provenance=meta.get("provenance") or provenance(device=spec.device, device_name=spec.device_name,
                                                        dtype=spec.dtype, backend=spec.backend, batch=spec.batch,
                                                        input_size=f"{spec.input_hw[0]}x{spec.input_hw[1]}",
                                                        threads=spec.threads),
    )
    if form_probe is not None:  # how `deploy` chose this table's form (form.py)
        meta["form_probe"] = form_probe
    atomic_write_json(meta_path, meta)
    return replace(table, meta=meta)


def time_unit(unit: Unit, spec: LutSpec, protocol: Protocol) -> Timing:
    from ffnet_nas.predictors.latency.backends import prepare
    from ffnet_nas.predictors.latency.modules import unit_inputs, unit_module

    fn = prepare(unit_module(unit), unit_inputs(unit, spec.batch), backend=spec.backend, device=spec.device,
                 dtype=spec.dtype, threads=spec.threads, form=spec.form, cache_key=("unit", unit.key, spec.batch))
    return time_callable(fn, device=timing_device(spec), protocol=protocol)


def timing_device(spec: LutSpec) -> str:
    # ONNX Runtime's CUDA provider runs on its own stream and run() returns when the outputs
    # are ready, so host wall clock (the "cpu" timer) is the right ruler for it.
    return "cpu" if spec.backend == "onnxruntime" else spec.device


def measure_units(table: LatencyTable, units: Iterable[Unit], protocol: Protocol, *, progress: bool = True,
                  limit: int | None = None) -> LatencyTable:
    """Measure every (unit, round) not done yet, saving after each; returns the table.

    Rounds are interleaved: every key's round 1, then every key's round 2, ... `limit` stops
    after that many measurements (tests use it to simulate an interrupted run).
    """
    units = list(units)
    rows = dict(table.rows)
    table = replace(table, rows=rows)
    jobs = [(r, u) for r in range(protocol.rounds) for u in units if table.rounds_done(u.key) <= r]
    if limit is not None:
        jobs = jobs[:limit]
    if not jobs:
        _save(table)
        return table
    from tqdm import tqdm

    bar = tqdm(jobs, desc=f"latency {table.spec.slug}", unit="key", disable=not progress, dynamic_ncols=True)
    with measurement_context(table.spec.device, table.spec.threads):
        for r, unit in bar:
            bar.set_postfix_str(f"round {r + 1}/{protocol.rounds} {unit.key[:50]}", refresh=False)
            t0 = time.perf_counter()
            timing = time_unit(unit, table.spec, protocol)
            rows[unit.key] = _merge(rows.get(unit.key), unit, timing, time.perf_counter() - t0)
            _save(table)
    return table


def _merge(old: dict | None, unit: Unit, timing: Timing, seconds: float) -> dict:
    """Add one round to a key's row: the round with the lowest estimate supplies the figures."""
    fields = ("estimate_ms", "median_ms", "p25_ms", "min_ms", "max_ms", "iqr_ms")
    new = {k: getattr(timing, k) for k in fields}
    if old is None:
        return {"key": unit.key, "kind": unit.kind, **new, "n": timing.n, "stable": timing.stable,
                "seconds": round(seconds, 3), "rounds": 1, "round_ms": f"{timing.estimate_ms:.6g}"}
    best = new if timing.estimate_ms < float(old["estimate_ms"]) else {k: old[k] for k in fields}
    return {"key": unit.key, "kind": unit.kind, **best, "n": int(old["n"]) + timing.n,
            "stable": bool(old["stable"]) and timing.stable, "seconds": round(float(old["seconds"]) + seconds, 3),
            "rounds": int(old["rounds"]) + 1, "round_ms": f"{old['round_ms']};{timing.estimate_ms:.6g}"}
