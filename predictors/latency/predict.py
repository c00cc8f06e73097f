"""`predict_latency(arch, lut)`: the sum of the arch's unit times, calibrated end to end.

The raw sum misses what happens *between* units in a real forward pass: each unit is timed
alone with its input already in cache and its own call overhead, while in the network the
input was just written by the previous unit (warm or evicted, depending on size), and the
framework's per-module launch gaps differ. Those effects scale roughly with the work
(a factor `a`) plus a fixed per-inference cost (`b`: the Python/dispatcher path, the first
allocation), so the calibration is the line

    measured = a * sum + b

fitted on a handful of end-to-end measurements, by least squares on *relative* residuals
(every point counts the same whatever its size). Leave-one-out decides whether the line,
a scale alone, or no correction generalises best (see `fit_calibration`). The interpolations, adds and concatenation
of the head are inside the `head` unit, so no separate term is needed for them.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ffnet_nas.predictors.latency.keys import units_of
from ffnet_nas.predictors.latency.lut import LatencyTable, load_table
from ffnet_nas.space.arch import Arch, resolve
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_write_json, read_json

MODELS = ("identity", "scale", "line")


@dataclass(frozen=True)
class Calibration:
    a: float = 1.0
    b: float = 0.0  # ms
    n_points: int = 0
    rel_rmse: float = float("nan")  # of the fit on its own points
    codes: tuple[str, ...] = ()
    model: str = "identity"  # which of MODELS leave-one-out chose
    loo_rel_rmse: float = float("nan")  # its leave-one-out error: what to expect on new points

    def apply(self, raw_ms: float) -> float:
        return self.a * raw_ms + self.b

    def to_dict(self) -> dict:
        d = asdict(self)
        d["codes"] = list(self.codes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        d = dict(d)
        d["codes"] = tuple(d.get("codes", ()))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _fit(model: str, raw, meas) -> tuple[float, float]:
    """Least squares of the relative residual (a*raw + b - m)/m for one model."""
    import numpy as np

    if model == "identity" or len(raw) == 0:
        return 1.0, 0.0
    if model == "scale" or len(raw) == 1:
        r = raw / meas
        return float(np.dot(r, np.ones_like(r)) / np.dot(r, r)), 0.0
    design = np.stack([raw / meas, 1.0 / meas], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, np.ones_like(meas), rcond=None)
    return float(a), float(b)


def _rel_rmse(a: float, b: float, raw, meas) -> float:
    import numpy as np

    return float(np.sqrt(np.mean(((a * raw + b - meas) / meas) ** 2))) if len(raw) else float("nan")


def fit_calibration(raw_ms: Sequence[float], measured_ms: Sequence[float], *, codes: Sequence[str] = (),
                    model: str = "auto") -> Calibration:
    """Fit measured ~ a*raw + b; `auto` picks identity, scale or line by leave-one-out error.

    With a handful of points a two-parameter line can fit them well and still extrapolate
    badly (an offset fitted on large networks over-predicts small ones), so each model is
    judged on the points it did not see; the simpler one wins ties within 0.5%.
    """
    import numpy as np

    raw, meas = np.asarray(raw_ms, float), np.asarray(measured_ms, float)
    if model not in MODELS + ("auto",):
        raise ValueError(f"unknown calibration model {model!r}")
    candidates = MODELS if model == "auto" else (model,)
    n = len(raw)
    scores = {}
    for m in candidates:
        if n < 3:  # too few points to judge out of sample: in-sample error
            scores[m] = _rel_rmse(*_fit(m, raw, meas), raw, meas) if n else 0.0
            continue
        errs = []
        for i in range(n):
            keep = np.arange(n) != i
            a, b = _fit(m, raw[keep], meas[keep])
            errs.append((a * raw[i] + b - meas[i]) / meas[i])
        scores[m] = float(np.sqrt(np.mean(np.square(errs))))
    best = min(scores.values())
    chosen = next(m for m in candidates if scores[m] <= best + 0.005)
    if model == "auto" and n < 3:
        chosen = "scale" if n else "identity"
    a, b = _fit(chosen, raw, meas)
    return Calibration(a=a, b=b, n_points=n, rel_rmse=_rel_rmse(a, b, raw, meas), codes=tuple(codes),
                       model=chosen, loo_rel_rmse=scores.get(chosen, float("nan")) if n >= 3 else float("nan"))


def calibration_path(table: LatencyTable) -> Path:
    return _calibration_file(table.path)


def _calibration_file(csv_path: Path) -> Path:
    # beside the table: <slug>.calibration.json
    return Path(csv_path).with_suffix(".calibration.json")


def save_calibration(table: LatencyTable, cal: Calibration) -> Path:
    return atomic_write_json(calibration_path(table), {"spec": table.spec.to_dict(), "calibration": cal.to_dict()})


def load_calibration(table: LatencyTable) -> Calibration | None:
    path = calibration_path(table)
    if not path.exists():
        return None
    data = read_json(path, what="latency calibration")
    if data.get("spec") != table.spec.to_dict():
        raise InvalidInput(f"calibration {str(path)!r} belongs to another table; delete it and re-run measure-latency")
    return Calibration.from_dict(data["calibration"])


def _as_table(lut: LatencyTable | str | Path) -> LatencyTable:
    return lut if isinstance(lut, LatencyTable) else _load_cached(*_stamp(Path(lut)))


def _stamp(path: Path) -> tuple[str, int, int]:
    """Path plus modification times: a re-measured table or a refitted calibration is re-read."""
    def mtime(p: Path) -> int:
        return p.stat().st_mtime_ns if p.exists() else 0

    return str(path.resolve()), mtime(path), mtime(_calibration_file(path))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _csv_mtime: int, _cal_mtime: int) -> LatencyTable:
    # A search calls predict_latency(arch, path) thousands of times: parse the files once.
    table = load_table(path)
    return replace(table, meta={**table.meta, "calibration": load_calibration(table)})


def check_spec(table: LatencyTable, **asked) -> None:
    """Refuse a table measured for other settings than the ones asked (None = not asked)."""
    spec = table.spec
    have = {"device": spec.device, "dtype": spec.dtype, "backend": spec.backend, "batch": spec.batch,
            "input_hw": tuple(spec.input_hw), "threads": spec.threads, "num_classes": spec.num_classes}
    for name, want in asked.items():
        if want is None:
            continue
        if name == "input_hw":
            want = tuple(want)
        if name == "device" and str(want) == "cuda":
            want = "cuda:0"
        if have[name] != want:
            raise InvalidInput(f"latency table {str(table.path)!r} was measured with {name}={have[name]!r}, "
                               f"but {want!r} was asked; expected a table measured for it (run measure-latency)")


def raw_sum(arch: Arch, table: LatencyTable) -> float:
    """Sum over the arch's units of count x time; every unit must be in the table."""
    counts: Counter = units_of(arch, table.spec.input_hw, num_classes=table.spec.num_classes)
    missing = [u.key for u in counts if u.key not in table]
    if missing:
        raise InvalidInput(f"latency table {str(table.path)!r} lacks {len(missing)} key(s) needed by {arch.code} "
                           f"(first: {missing[0]}); expected a table measured for a space containing it "
                           f"(run measure-latency --space ...)")
    return sum(n * table.ms(u.key) for u, n in counts.items())


def predict_latency(arch: Arch | str, lut: LatencyTable | str | Path, *, calibrated: bool = True,
                    device: str | None = None, dtype: str | None = None, backend: str | None = None,
                    input_hw: tuple[int, int] | None = None, batch: int | None = None,
                    calibration: Calibration | None = None) -> float:
    """Predicted latency in ms of `arch` (a point, code or published name) under `lut`'s settings.

    Any of device/dtype/backend/input_hw/batch given must match the table's: a table for
    other settings is an error, never a silently wrong number. Without a fitted calibration
    the raw sum is returned (a=1, b=0).
    """
    table = _as_table(lut)
    check_spec(table, device=device, dtype=dtype, backend=backend, input_hw=input_hw, batch=batch)
    raw = raw_sum(resolve(arch), table)
    if not calibrated:
        return raw
    if calibration is None:
        calibration = table.meta["calibration"] if "calibration" in table.meta else load_calibration(table)
    cal = calibration or Calibration()
    return cal.apply(raw)
