"""Loading the latency table and the accuracy predictor: one home, one rule for choosing the table.

    preds = load_predictors(lut_dir=ws.lut_dir, predictor_dir=ws.predictor_dir, space=space)
    preds.latency_ms(arch), preds.miou(arch), preds.objective_id

Every caller (`search`, `evaluate`, `fit-predictor`, `report`, `run` and its refine rounds) goes
through `choose_lut`, so a workdir gives the same table to all of them. No torch at import: the
report imports this module too.

The rule for choosing a latency table in a folder (`<slug>.csv` + `<slug>.json`, written by
`ffnet-nas measure-latency`; the slug spells the table's settings: device, dtype, backend, batch,
input size, threads):

1. a table named explicitly (`--lut NAME`: its slug, or its CSV path) wins; a name that is not
   there is an error listing the tables that are;
   `--lut` may also be the device name an imported table records (`import-latency --device-name
   "Galaxy S24"`, any case), when exactly one table was imported from that device;
2. otherwise the tables that fit what the caller asks: the input size (the space's, or the
   teacher's for a full evaluation and the report; only a report without a teacher leaves it
   open), and the device kind, dtype, backend and threads when the caller knows them. An imported
   table (`ext-...`) fits by the settings its metadata records (device kind `external`, so a caller
   that asks for `cpu` or `cuda` never gets one; one that asks for no device does);
3. exactly one fits: that one. None fits although the folder holds tables: an error naming them
   and how to make or pick one. Several fit: an error listing them and saying `--lut NAME`. An
   empty or missing folder: None (the caller says which command makes one, or runs without).

The two predictors become the search's callables, memoised per arch code (NSGA-II proposes the
same points again and again). The objective id (which table and predictor files, by content
hash) is stored with a study, so a resumed study is never scored by other predictors.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput, closest

# LutSpec.slug: "<cpu | cuda-<gpu name>>-<dtype>-<backend>-b<batch>-<H>x<W>-t<threads>"
_SLUG = re.compile(r"^(?P<device>cpu|cuda-[a-z0-9-]+?)-(?P<dtype>[a-z0-9]+)-(?P<backend>[a-z0-9_]+)"
                   r"-b(?P<batch>\d+)-(?P<h>\d+)x(?P<w>\d+)-t(?P<threads>\d+)$")


@dataclass(frozen=True)
class Predictors:
    """What a search scores points with (and where it came from)."""

    latency_ms: Callable[[Arch], float]
    miou: Callable[[Arch], float]
    objective_id: str
    description: str
    lut_path: Path | None = None
    predictor_dir: Path | None = None


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha1()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def lut_candidates(lut_dir: str | Path) -> list[Path]:
    """Latency tables in `lut_dir`: `<slug>.csv` with its `<slug>.json`. A slug holds no dot, so the
    by-products beside a table (`<slug>.validation.csv`, `<slug>.e2e.csv`) are not tables."""
    lut_dir = Path(lut_dir)
    if not lut_dir.is_dir():
        return []
    return sorted(p for p in lut_dir.glob("*.csv") if "." not in p.stem and p.with_suffix(".json").exists())


def slug_settings(stem: str) -> dict | None:
    """The settings a table's name spells (device kind, dtype, backend, batch, input size, threads),
    or None for a name not made by `LutSpec.slug`."""
    m = _SLUG.match(stem)
    if m is None:
        return None
    return {"device": m["device"].split("-")[0], "dtype": m["dtype"], "backend": m["backend"],
            "batch": int(m["batch"]), "input_hw": (int(m["h"]), int(m["w"])), "threads": int(m["threads"])}


def choose_lut(*, lut_dir: str | Path, input_hw: tuple[int, int] | None, lut: str | None = None,
               device: str | None = None, dtype: str | None = None, backend: str | None = None,
               threads: int | None = None, space_name: str | None = None) -> Path | None:
    """The latency table to use, by the module's rule; None when the folder holds no table.
    `input_hw` None: any size fits (a report on a workdir without a teacher)."""
    lut_dir = Path(lut_dir)
    found = lut_candidates(lut_dir)
    if lut:
        named = [p for p in found if p.stem == lut or str(p) == str(lut)]
        if not named:
            named = [p for p in found if (imported_device(p) or "").casefold() == str(lut).casefold()]
            if len(named) > 1:
                raise InvalidInput(f"--lut {lut!r}: {len(named)} tables were imported from that device "
                                   f"({', '.join(p.stem for p in named)}): expected one of their names")
        if not named:
            raise InvalidInput(f"no latency table {lut!r} in {str(lut_dir)!r}: expected one of "
                               f"{', '.join(p.stem for p in found) or '(none)'}{closest(lut, [p.stem for p in found])}")
        return named[0]
    if not found:
        return None
    asked = {"input_hw": tuple(input_hw) if input_hw is not None else None,
             "device": device.split(":")[0] if device else None, "dtype": dtype, "backend": backend, "threads": threads}
    asked = {k: v for k, v in asked.items() if v is not None}
    fitting = [p for p in found if _fits(table_settings(p), asked)]
    if len(fitting) == 1:
        return fitting[0]
    what = f"space {space_name!r}" if space_name else "this run"
    if len(fitting) > 1:
        raise InvalidInput(f"several latency tables fit {what} in {str(lut_dir)!r} "
                           f"({', '.join(p.stem for p in fitting)}): expected --lut NAME to pick one")
    wanted = ", ".join(f"{k}={v}" for k, v in asked.items() if k != "input_hw")
    at = f" at {input_hw[0]}x{input_hw[1]}" if input_hw is not None else ""
    make = f"ffnet-nas measure-latency --space {space_name}" if space_name else "ffnet-nas measure-latency"
    raise InvalidInput(f"no latency table in {str(lut_dir)!r} is measured{at}" + (f" with {wanted}" if wanted else "")
                       + f" ({what}); have {', '.join(p.stem for p in found)}: run {make}, or pass --lut NAME")


def _external_spec(csv_path: Path) -> dict | None:
    """The spec an imported table's metadata records, or None (not imported, or unreadable: such a
    table can still be named; loading it says what is wrong)."""
    import json

    if not csv_path.stem.startswith("ext-"):
        return None
    try:
        spec = json.loads(csv_path.with_suffix(".json").read_text()).get("spec")
    except (OSError, ValueError, AttributeError):
        return None
    return spec if isinstance(spec, dict) and spec.get("device") == "external" else None


def imported_device(csv_path: Path) -> str | None:
    """The device name an imported table was measured on (`import-latency --device-name`), else None."""
    spec = _external_spec(Path(csv_path))
    return str(spec.get("device_name")) if spec is not None else None


def table_settings(csv_path: Path) -> dict | None:
    """The settings a table fits by: its slug's, or for an imported table its metadata's (the device
    kind `external`; its threads are the device's, not ours to name, so a caller asking for threads
    never gets one)."""
    settings = slug_settings(csv_path.stem)
    if settings is not None:
        return settings
    spec = _external_spec(csv_path)
    try:
        return None if spec is None else {
            "device": "external", "dtype": str(spec["dtype"]), "backend": str(spec["backend"]),
            "batch": int(spec["batch"]), "input_hw": tuple(int(v) for v in spec["input_hw"]), "threads": None}
    except (KeyError, TypeError, ValueError):
        return None


def _fits(settings: dict | None, asked: dict) -> bool:
    # a table whose name is not a slug can only be picked by name (its settings are unknown here)
    return settings is not None and all(settings[k] == v for k, v in asked.items())


def find_lut(lut_dir: str | Path, space, *, lut: str | None = None) -> Path | None:
    """`choose_lut` for a space: its input size (what `search` knows)."""
    return choose_lut(lut_dir=lut_dir, input_hw=space.input_hw, lut=lut, space_name=space.name)


def load_latency_table(path: str | Path):
    """The table at `path` with its calibration (identity when none was fitted) in `meta["calibration"]`."""
    from dataclasses import replace

    from ffnet_nas.predictors.latency.lut import load_table
    from ffnet_nas.predictors.latency.predict import Calibration, load_calibration

    table = load_table(path)
    return replace(table, meta={**table.meta, "calibration": load_calibration(table) or Calibration()})


def load_latency(csv_path: str | Path) -> tuple[Callable[[Arch], float], str]:
    """`arch -> predicted ms` from one table (calibration loaded once, memoised) and its objective id."""
    from ffnet_nas.predictors.latency import predict_latency
    from ffnet_nas.predictors.latency.predict import calibration_path

    csv_path = Path(csv_path)
    table = load_latency_table(csv_path)
    calibration = table.meta["calibration"]
    memo: dict[str, float] = {}

    def latency_ms(arch: Arch) -> float:
        code = arch.code
        if code not in memo:
            memo[code] = predict_latency(arch, table, calibration=calibration)
        return memo[code]

    files = [csv_path, csv_path.with_suffix(".json")] + [p for p in [calibration_path(table)] if p.exists()]
    return latency_ms, f"lut:{csv_path.stem}:{_digest(files)}"


def accuracy_file(predictor_dir: str | Path) -> Path:
    from ffnet_nas.predictors.accuracy import PREDICTOR_FILE

    return Path(predictor_dir) / PREDICTOR_FILE


def load_accuracy_predictor(predictor_dir: str | Path):
    """The `AccuracyPredictor` stored in `predictor_dir`, or None when there is none."""
    from ffnet_nas.predictors.accuracy import AccuracyPredictor

    path = accuracy_file(predictor_dir)
    return AccuracyPredictor.load(path) if path.exists() else None


def load_zero_shot_predictor(predictor_dir: str | Path):
    """The zero-shot stage stored in `predictor_dir` (`ZERO_SHOT_FILE`), or None when it was not fitted."""
    from ffnet_nas.predictors.accuracy import ZERO_SHOT_FILE, AccuracyPredictor

    path = Path(predictor_dir) / ZERO_SHOT_FILE
    return AccuracyPredictor.load(path) if path.exists() else None


def load_accuracy(predictor_dir: str | Path) -> tuple[Callable[[Arch], float], str]:
    """`arch -> predicted mIoU` from `predictor_dir` (memoised) and its objective id."""
    from ffnet_nas.predictors.accuracy import load_predictor

    predict = load_predictor(predictor_dir)
    memo: dict[str, float] = {}

    def miou(arch: Arch) -> float:
        code = arch.code
        if code not in memo:
            memo[code] = predict(arch)
        return memo[code]

    return miou, f"acc:{_digest([accuracy_file(predictor_dir)])}"


def load_predictors(*, lut_dir: str | Path, predictor_dir: str | Path, space, lut: str | None = None,
                    device: str | None = None, dtype: str | None = None, backend: str | None = None,
                    threads: int | None = None) -> Predictors:
    """Both predictors for `space` (table chosen by the module's rule), or one InvalidInput line
    naming what is missing and the command that makes it."""
    lut_path = choose_lut(lut_dir=lut_dir, input_hw=space.input_hw, lut=lut, device=device, dtype=dtype,
                          backend=backend, threads=threads, space_name=space.name)
    predictor_dir = Path(predictor_dir)
    missing = []
    if lut_path is None:
        missing.append(f"a latency table in {str(lut_dir)!r} (run: ffnet-nas measure-latency --space {space.name})")
    if not accuracy_file(predictor_dir).is_file():
        missing.append(f"an accuracy predictor in {str(predictor_dir)!r} (run: ffnet-nas fit-predictor)")
    if missing:
        raise InvalidInput("search needs " + " and ".join(missing))
    miou, acc_id = load_accuracy(predictor_dir)
    _check_covers(lut_path, space)
    latency_ms, lat_id = load_latency(lut_path)
    return Predictors(latency_ms=latency_ms, miou=miou, objective_id=f"{lat_id}+{acc_id}",
                      description=f"latency from {lut_path.name}, mIoU from {predictor_dir}", lut_path=lut_path,
                      predictor_dir=predictor_dir)


def _check_covers(lut_path: Path, space) -> None:
    """Refuse, before any trial runs, a table that lacks keys the space needs (a table measured
    for another space, or one whose torn last row was dropped): otherwise the first trial that
    needs one fails inside Optuna, which logs a traceback."""
    from ffnet_nas.predictors.latency.keys import space_units

    table = load_latency_table(lut_path)
    needed = space_units(space, table.spec.input_hw, num_classes=table.spec.num_classes)
    missing = [u.key for u in needed if u.key not in table]
    if missing:
        raise InvalidInput(f"latency table {str(lut_path)!r} lacks {len(missing)} of the {len(needed)} keys space "
                           f"{space.name!r} needs (first: {missing[0]}); expected a table measured for it: run "
                           f"'ffnet-nas measure-latency --space {space.name}' (it measures only the missing keys)")


__all__ = ["Predictors", "accuracy_file", "choose_lut", "find_lut", "load_accuracy", "load_accuracy_predictor",
           "load_latency", "load_latency_table", "load_predictors", "lut_candidates", "slug_settings"]
