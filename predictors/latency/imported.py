"""Times measured on a device elsewhere, read back into a latency table.

The files timed are the ones `export_units` wrote; their times come back as

* a CSV with a header `key,ms` or `file,ms` (key: a table key or `net:<code>`; file: the path in
  the manifest, or its base name), one row per file, milliseconds;
* Qualcomm AI Hub profiles (`ProfileJob.download_profile()`, a dict whose `execution_summary`
  holds `estimated_inference_time` in microseconds, and `all_inference_times` when it has them):
  a JSON object mapping each key or file to its profile, or a folder of `<file stem>.json`.

The result is an ordinary table (`<slug>.csv` + `.json` + `.calibration.json`) whose spec has
`device="external"`, the device's name, the precision as `dtype` and the runtime (spelt as a
slug) as `backend`; its metadata's `external` records device, runtime, toolchain version,
precision and the file the times came from. Search, evaluate and report read it like any other
table; what cannot be done here with it (time a network on that device) says so.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ffnet_nas.predictors.latency.export_units import Manifest
from ffnet_nas.space.errors import InvalidInput

EXTERNAL = "external"
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
_WRONG_UNITS = {"us": "microseconds", "µs": "microseconds", "usec": "microseconds", "microseconds": "microseconds",
                "s": "seconds", "sec": "seconds", "seconds": "seconds", "ns": "nanoseconds", "time": "no unit",
                "latency": "no unit"}
# Unit times summed vs whole networks measured: on every backend here the ratio is 0.5-2; a factor
# of 30 either way is a file in other units (AI Hub's microseconds written as ms), not a device.
_RATIO_LIMIT = 30.0


@dataclass(frozen=True)
class Times:
    ms: dict[str, float]  # name as written (key, file or file stem) -> estimate in ms
    detail: dict[str, list[float]]  # name -> every run (ms) when the source had them
    source: str  # what kind of file: csv | aihub


def slug_text(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unnamed"


def _positive(name: str, value, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: time {value!r} for {name!r} is not a number; expected a positive "
                           "time in milliseconds") from None
    if not math.isfinite(v) or v <= 0:
        raise InvalidInput(f"{where}: time {value!r} for {name!r} is not positive; expected a positive time "
                           "in milliseconds for every file")
    return v


def read_times(path: str | Path) -> Times:
    """Times from a CSV (`key,ms` / `file,ms`), an AI Hub profile JSON, or a folder of profiles."""
    path = Path(path)
    if path.is_dir():
        profiles = {}
        for p in sorted(path.glob("*.json")):
            try:
                profiles[p.stem] = json.loads(p.read_text())
            except (OSError, ValueError) as e:
                raise InvalidInput(f"AI Hub profile {str(p)!r} is not JSON ({e}); expected download_profile()'s "
                                   "output saved with json.dump") from None
        if not profiles:
            raise InvalidInput(f"{str(path)!r} holds no *.json profiles: expected one AI Hub profile per exported "
                               "file, named <file stem>.json, or a CSV key,ms")
        return _from_profiles(profiles, str(path))
    if not path.is_file():
        raise InvalidInput(f"no file {str(path)!r}: expected a CSV (key,ms or file,ms) or an AI Hub profile JSON")
    text = path.read_text(errors="replace")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise InvalidInput(f"{str(path)!r} is not valid JSON ({e}); expected AI Hub profiles "
                               "({name: download_profile() output}) or a CSV key,ms") from None
        if not isinstance(data, dict) or not data:
            raise InvalidInput(f"{str(path)!r}: expected a JSON object mapping each exported file (or key) to its "
                               "AI Hub profile")
        if "execution_summary" in data:
            raise InvalidInput(f"{str(path)!r} is one AI Hub profile with no name: expected an object "
                               "{file or key: profile, ...}, or a folder of <file stem>.json profiles")
        return _from_profiles(data, str(path))
    return _from_csv(text, str(path))


def _from_csv(text: str, where: str) -> Times:
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if not rows:
        raise InvalidInput(f"{where} is empty: expected a header key,ms (or file,ms) and one row per exported file")
    header = [c.strip().lower() for c in rows[0]]
    if len(header) != 2 or header[0] not in ("key", "file"):
        raise InvalidInput(f"{where}: header {','.join(rows[0])!r}: expected exactly 'key,ms' or 'file,ms'")
    if header[1] != "ms":
        unit = _WRONG_UNITS.get(header[1], f"{header[1]!r}")
        raise InvalidInput(f"{where}: time column {rows[0][1].strip()!r} ({unit}): expected milliseconds in a "
                           "column named 'ms' (divide microseconds by 1000)")
    out: dict[str, float] = {}
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise InvalidInput(f"{where} line {i}: {len(row)} fields; expected 2 ({header[0]},ms)")
        name = row[0].strip()
        if name in out:
            raise InvalidInput(f"{where} line {i}: {name!r} appears twice; expected one time per file")
        out[name] = _positive(name, row[1].strip(), f"{where} line {i}")
    return Times(ms=out, detail={}, source="csv")


def _from_profiles(profiles: dict, where: str) -> Times:
    ms, detail = {}, {}
    for name, prof in profiles.items():
        summary = prof.get("execution_summary") if isinstance(prof, dict) else None
        if not isinstance(summary, dict) or "estimated_inference_time" not in summary:
            raise InvalidInput(f"{where}: the entry for {name!r} has no execution_summary.estimated_inference_time; "
                               "expected ProfileJob.download_profile() output (times in microseconds)")
        # AI Hub reports microseconds
        ms[str(name)] = _positive(str(name), summary["estimated_inference_time"], where) / 1000.0
        runs = summary.get("all_inference_times")
        if isinstance(runs, list) and runs:
            detail[str(name)] = [_positive(str(name), v, where) / 1000.0 for v in runs]
    return Times(ms=ms, detail=detail, source="aihub")


def resolve_names(times: Times, manifest: Manifest) -> tuple[dict[str, float], dict[str, list[float]]]:
    """key -> ms (and key -> every run, where the source had them): each name matched to the manifest
    by key, file path, base name or file stem."""
    lookup: dict[str, str] = {}
    for e in manifest.entries:
        for alias in (e.key, e.file, Path(e.file).name, Path(e.file).stem):
            lookup[alias] = e.key
    out, runs, unknown = {}, {}, []
    for name, value in times.ms.items():
        key = lookup.get(name)
        if key is None:
            unknown.append(name)
        elif key in out:
            raise InvalidInput(f"{key!r} has two times (one as {name!r}); expected one per file")
        else:
            out[key] = value
            if name in times.detail:
                runs[key] = times.detail[name]
    if unknown:
        raise InvalidInput(f"{len(unknown)} name(s) not in the manifest {str(manifest.path)!r} (first: {unknown[0]!r}); "
                           "expected the keys or file names it lists (was this folder exported for another space "
                           "or size?)")
    return out, runs


def require(keys: list[str], have: dict[str, float], *, what: str, manifest: Manifest) -> None:
    missing = [k for k in keys if k not in have]
    if missing:
        raise InvalidInput(f"{len(missing)} of {len(keys)} {what} have no time (first: {missing[0]!r}); expected "
                           f"one time for every file in {str(manifest.path)!r}")


def check_units(raw: list[float], measured: list[float]) -> None:
    """Networks against their units' sum: a mixed-up unit shows as a factor of ~1000."""
    import statistics

    if not raw:
        return
    ratio = statistics.median(m / r for m, r in zip(measured, raw))
    if not 1 / _RATIO_LIMIT <= ratio <= _RATIO_LIMIT:
        raise InvalidInput(f"the whole networks took {ratio:.3g}x the sum of their units' times: expected both in "
                           "milliseconds (AI Hub's JSON is read in microseconds; a CSV must say ms)")


def source_digest(path: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(path.glob("*.json")) if path.is_dir() else [path]:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]
