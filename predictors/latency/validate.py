"""End-to-end measurements: calibration of the sum, and validation of the predictor.

Whole networks are timed with the same protocol, backend and settings as the table's
units. Every finished measurement is saved atomically to `<slug>.e2e.csv` (one row per
code and pass), so calibration and validation resume after a kill without re-measuring.

Validation measures each point twice, in two independent passes (the second in reverse
order, so slow drift of the machine does not hit the same points twice): their agreement
is the ruler's own repeatability, reported next to the predictor's error. A predictor
cannot be judged finer than its ruler.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ffnet_nas.predictors.latency.lut import LatencyTable, timing_device
from ffnet_nas.predictors.latency.predict import (
    Calibration,
    fit_calibration,
    raw_sum,
    save_calibration,
)
from ffnet_nas.predictors.latency.protocol import (
    Protocol,
    Timing,
    measurement_context,
    time_callable,
)
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_write_csv, atomic_write_json, provenance

E2E_COLUMNS = ("code", "pass", "estimate_ms", "median_ms", "p25_ms", "min_ms", "iqr_ms", "n", "stable", "seconds")
CALIBRATION_PASS0 = 10  # calibration passes are 10, 11, ... (one per protocol round); validation 1 and 2
CALIBRATION_SEED = 1_000_003  # far from validation seeds: the two sets should not overlap


def e2e_path(table: LatencyTable) -> Path:
    return table.path.with_suffix(".e2e.csv")


def _load_e2e(path: Path) -> dict[tuple[str, int], dict]:
    if not path.exists():
        return {}
    from ffnet_nas.space.io import read_checked_csv

    # a torn last row is dropped (that network is timed again); other damage is one line
    frame = read_checked_csv(path, what="end-to-end timing table", required=E2E_COLUMNS, key=("code", "pass"),
                             fix="delete it: 'ffnet-nas measure-latency --validate N' (or run) times those networks again")
    return {(r["code"], int(r["pass"])): r for r in frame.to_dict("records")}


def _save_e2e(path: Path, rows: dict) -> None:
    import pandas as pd

    atomic_write_csv(path, pd.DataFrame([rows[k] for k in sorted(rows)], columns=list(E2E_COLUMNS)))


def time_arch(arch: Arch, table: LatencyTable, protocol: Protocol) -> Timing:
    from ffnet_nas.predictors.latency.backends import prepare
    from ffnet_nas.predictors.latency.modules import network

    spec = table.spec
    if spec.device == "external":  # imported: the device timed it (or not); this process cannot
        from ffnet_nas.predictors.latency.import_build import stored_network_ms

        ms = stored_network_ms(table, arch.code)
        return Timing(estimate_ms=ms, median_ms=ms, p25_ms=ms, min_ms=ms, max_ms=ms, iqr_ms=0.0, n=1, stable=True)
    model, inputs = network(arch, spec.input_hw, spec.batch, num_classes=spec.num_classes)
    fn = prepare(model, inputs, backend=spec.backend, device=spec.device, dtype=spec.dtype, threads=spec.threads,
                 form=spec.form, cache_key=("net", arch.code, tuple(spec.input_hw), spec.batch, spec.num_classes))
    return time_callable(fn, device=timing_device(spec), protocol=protocol)


def measure_archs(table: LatencyTable, archs: Sequence[Arch], passes: Iterable[int], protocol: Protocol, *,
                  progress: bool = True, desc: str = "end-to-end") -> dict[tuple[str, int], float]:
    """(code, pass) -> estimate_ms for every arch and pass, measuring only what is not saved yet."""
    from tqdm import tqdm

    path = e2e_path(table)
    rows = _load_e2e(path)
    jobs = []
    for i, p in enumerate(passes):
        order = list(archs) if i % 2 == 0 else list(reversed(archs))
        jobs += [(a, p) for a in order if (a.code, p) not in rows]
    if jobs:
        bar = tqdm(jobs, desc=f"{desc} {table.spec.slug}", unit="net", disable=not progress, dynamic_ncols=True)
        with measurement_context(table.spec.device, table.spec.threads):
            for arch, p in bar:
                t0 = time.perf_counter()
                timing = time_arch(arch, table, protocol)
                rows[(arch.code, p)] = {"code": arch.code, "pass": p, **{k: getattr(timing, k) for k in (
                    "estimate_ms", "median_ms", "p25_ms", "min_ms", "iqr_ms", "n", "stable")},
                    "seconds": round(time.perf_counter() - t0, 3)}
                _save_e2e(path, rows)
    wanted = {(a.code, p) for a in archs for p in passes}
    return {k: float(rows[k]["estimate_ms"]) for k in wanted}


def calibration_points(space, n: int) -> list[Arch]:
    return space.sample_many(n, seed=CALIBRATION_SEED)


def calibrate(table: LatencyTable, space, *, n: int, protocol: Protocol, progress: bool = True) -> Calibration:
    """Measure `n` points end to end, fit measured = a*sum + b, save it next to the table.

    Each point is measured in as many interleaved passes as the protocol has rounds, and the
    lowest pass is kept, like the table keeps the lowest round of each key.
    """
    archs = calibration_points(space, n)
    passes = list(range(CALIBRATION_PASS0, CALIBRATION_PASS0 + protocol.rounds))
    measured = measure_archs(table, archs, passes, protocol, progress=progress, desc="calibration")
    raws = [raw_sum(a, table) for a in archs]
    lowest = [min(measured[(a.code, p)] for p in passes) for a in archs]
    cal = fit_calibration(raws, lowest, codes=[a.code for a in archs])
    save_calibration(table, cal)
    return cal


# ---- metrics ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Agreement:
    """How well `predicted` matches `reference` over a set of points."""

    n: int  # pairs with both values finite
    median_abs_pct: float
    within_10pct: float  # share of points with |error| <= 10%
    spearman: float
    kendall: float

    def to_dict(self) -> dict:
        return asdict(self)


def agreement(predicted: Sequence[float], reference: Sequence[float]) -> Agreement:
    """Relative error and rank agreement over the pairs where both values are finite.

    The rank statistics follow the project's one rule (`ffnet_nas.stats.rank_correlations`):
    NaN for fewer than 3 pairs or constant data, never a number scipy made up with a warning.
    """
    import numpy as np

    from ffnet_nas.stats import rank_correlations

    p, r = np.asarray(predicted, float), np.asarray(reference, float)
    ok = np.isfinite(p) & np.isfinite(r)
    p, r = p[ok], r[ok]
    ranks = rank_correlations(p, r)
    if len(p) == 0:
        return Agreement(n=0, median_abs_pct=float("nan"), within_10pct=float("nan"), spearman=ranks.spearman,
                         kendall=ranks.kendall)
    err = np.abs(p - r) / r * 100
    return Agreement(
        n=len(p),
        median_abs_pct=float(np.median(err)),
        within_10pct=float(np.mean(err <= 10.0)),
        spearman=ranks.spearman,
        kendall=ranks.kendall,
    )


# the table's validation counts a network within 10% of its prediction as right; a run whose later
# timings sit wholly outside that band did not time on the machine the table describes
DRIFT_TOLERANCE = 0.10
DRIFT_MIN_POINTS = 3  # fewer timed points say nothing about a scale


@dataclass(frozen=True)
class TableDrift:
    """The table's scale against timings taken later on the same device, under its protocol (a run
    times every point it fine-tunes): the geometric mean of measured / predicted over the points,
    with a bootstrap 95% interval. Validation right after the table is built cannot see a machine
    that runs at another speed later (other jobs, clocks, thermal state); this can."""

    n: int  # points with both latencies finite and positive
    ratio: float  # measured / predicted, geometric mean (NaN for fewer than DRIFT_MIN_POINTS)
    low: float
    high: float

    @property
    def drifted(self) -> bool:
        """The whole interval lies outside the validation's +-10% band: the table's milliseconds (and a
        target read against them) are not this machine's now."""
        return self.n >= DRIFT_MIN_POINTS and (self.low > 1 + DRIFT_TOLERANCE or self.high < 1 - DRIFT_TOLERANCE)

    def text(self) -> str:
        if self.n < DRIFT_MIN_POINTS:
            return f"too few timed points to check the latency table's scale ({self.n})"
        line = (f"the latency table against the {self.n} points timed with it in this workdir: they ran at "
                f"{self.ratio:.2f}x [{self.low:.2f}, {self.high:.2f}] their predicted latency")
        if not self.drifted:
            return line + f" (not wholly outside +-{DRIFT_TOLERANCE:.0%}: no drift shown)"
        pace = "faster" if self.ratio < 1 else "slower"
        return (line + f": this machine runs {pace} than the table says (it ran at another speed while the table or "
                "its calibration was measured), so the table's milliseconds and a target read against them are not "
                "this machine's now (the verdict's side-by-side timings do not depend on them); delete the table's "
                "files in lut/ and measure it again with the machine in the state it will run in")

    def to_dict(self) -> dict:
        # None, not NaN, where undefined: run_summary.json stays strict JSON
        return {**{k: (v if isinstance(v, int) or math.isfinite(v) else None) for k, v in asdict(self).items()},
                "drifted": self.drifted}


def table_drift(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> TableDrift:
    """`TableDrift` over the points where both latencies are finite and positive (pure)."""
    import numpy as np

    from ffnet_nas.stats import mean_interval

    p, m = np.asarray(predicted_ms, float), np.asarray(measured_ms, float)
    ok = np.isfinite(p) & np.isfinite(m) & (p > 0) & (m > 0)
    if ok.sum() < DRIFT_MIN_POINTS:
        return TableDrift(n=int(ok.sum()), ratio=float("nan"), low=float("nan"), high=float("nan"))
    # the mean of log ratios: a point twice as slow and one twice as fast cancel, as they should
    interval = mean_interval(np.log(m[ok] / p[ok]))
    return TableDrift(n=int(ok.sum()), ratio=math.exp(interval.value), low=math.exp(interval.low),
                      high=math.exp(interval.high))


@dataclass(frozen=True)
class ValidationResult:
    predictor: Agreement  # calibrated prediction vs the lower of the two passes
    raw_sum: Agreement  # uncalibrated sum vs the same
    repeatability: Agreement  # pass 2 vs pass 1: the ruler itself
    per_pass: tuple[Agreement, Agreement]  # calibrated prediction vs pass 1 alone, vs pass 2 alone
    calibration: Calibration
    table_path: Path
    summary_path: Path

    @property
    def calibration_hurts(self) -> bool:
        """The calibrated table misses the validation networks by more than the uncalibrated sum does,
        by more than the ruler's own spread: its few calibration networks were timed while the machine
        ran at another speed than during the units or the validation (it happens on a shared VM)."""
        p, r, ruler = self.predictor.median_abs_pct, self.raw_sum.median_abs_pct, self.repeatability.median_abs_pct
        return all(map(math.isfinite, (p, r, ruler))) and p - r > max(ruler, DRIFT_TOLERANCE * 100)

    def text(self) -> str:
        """One line for a run's log; a second sentence when the calibration hurts."""
        line = (f"latency table validated on {self.predictor.n} networks: median |error| "
                f"{self.predictor.median_abs_pct:.1f}% (the uncalibrated sum {self.raw_sum.median_abs_pct:.1f}%, "
                f"the ruler, pass 2 vs pass 1, {self.repeatability.median_abs_pct:.1f}%)")
        if not self.calibration_hurts:
            return line
        c = self.calibration
        return (line + f"; its calibration ({c.model}: {c.a:.2f} x sum + {c.b:.1f} ms, on {c.n_points} networks) makes "
                "it worse by more than the ruler's spread: the machine changed speed while the table was measured, "
                "so its milliseconds are doubtful; delete the table's files and measure again on a steady machine")


def validation_points(space, n: int, *, seed: int, exclude: Iterable[str] = (), published: int | None = None,
                      spread_key=None) -> list[tuple[Arch, str, str]]:
    """(arch, source, published name) for n random points (not in `exclude`) + the published ones in the space.

    `published` caps the published variants at an even spread of that many along `spread_key`
    (default: nominal depth), so a run budget can validate on a few networks that still span
    the space's latency range; None: every one (what `measure-latency --validate` does).
    """
    from ffnet_nas.space.catalogue import name_of, variants

    skip = set(exclude)
    points: list[tuple[Arch, str, str]] = []
    seen: set[str] = set()
    for arch in space.sample_many(n + len(skip), seed=seed):
        if len(points) == n:
            break
        if arch.code not in skip:
            points.append((arch, "random", name_of(arch) or ""))
            seen.add(arch.code)
    pubs = [v for v in variants(task="segmentation") if v.arch in space and v.arch.code not in seen]
    pubs = list({v.arch.code: v for v in pubs}.values())  # one per network (aliases share a code)
    if published is not None and len(pubs) > published:
        key = spread_key or (lambda a: a.nominal_depth)
        ranked = sorted(pubs, key=lambda v: (key(v.arch), v.name))
        # evenly spaced ranks, both ends included: the fastest and the slowest are always timed
        picks = sorted({round(i * (len(ranked) - 1) / max(published - 1, 1)) for i in range(published)}) if published else []
        pubs = [ranked[i] for i in picks]
    points += [(v.arch, "published", v.name) for v in pubs]
    return points


def validate(table: LatencyTable, space, *, n: int, calibration: Calibration, protocol: Protocol, seed: int = 0,
             published: int | None = None, progress: bool = True) -> ValidationResult:
    """Measure n random + the published points (all, or an even spread of `published` of them by
    predicted latency) twice; compare with the prediction; write the table."""
    import pandas as pd

    points = validation_points(space, n, seed=seed, exclude=calibration.codes, published=published,
                               spread_key=lambda a: raw_sum(a, table))
    if not points:
        raise InvalidInput(f"space {space.name!r} has {space.size} point(s), all used for calibration and none "
                           "published: nothing left to validate on; expected a smaller --calibrate")
    archs = [a for a, _, _ in points]
    measured = measure_archs(table, archs, [1, 2], protocol, progress=progress, desc="validation")
    records = []
    for arch, source, name in points:
        m1, m2 = measured[(arch.code, 1)], measured[(arch.code, 2)]
        raw = raw_sum(arch, table)
        pred = calibration.apply(raw)
        best = min(m1, m2)  # the lower pass, as the table keeps the lower round of each key
        records.append({"code": arch.code, "source": source, "name": name, "raw_sum_ms": raw, "predicted_ms": pred,
                        "measured_1_ms": m1, "measured_2_ms": m2, "measured_ms": best,
                        "error_pct": (pred - best) / best * 100, "repeat_diff_pct": (m2 - m1) / m1 * 100})
    frame = pd.DataFrame(records)
    base = table.path.with_suffix("")
    table_path = atomic_write_csv(base.with_name(base.name + ".validation.csv"), frame)
    meas = frame["measured_ms"].to_numpy()
    result = ValidationResult(
        predictor=agreement(frame["predicted_ms"], meas),
        raw_sum=agreement(frame["raw_sum_ms"], meas),
        repeatability=agreement(frame["measured_2_ms"], frame["measured_1_ms"]),
        per_pass=(agreement(frame["predicted_ms"], frame["measured_1_ms"]),
                  agreement(frame["predicted_ms"], frame["measured_2_ms"])),
        calibration=calibration,
        table_path=table_path,
        summary_path=base.with_name(base.name + ".validation.json"),
    )
    published = frame["source"] == "published"
    summary = {
        "spec": table.spec.to_dict(), "space": space.name, "n_random": int((~published).sum()),
        "n_published": int(published.sum()), "seed": seed, "protocol": protocol.to_dict(),
        "predictor": result.predictor.to_dict(), "raw_sum": result.raw_sum.to_dict(),
        "repeatability": result.repeatability.to_dict(), "calibration": calibration.to_dict(),
        "predictor_vs_pass_1": result.per_pass[0].to_dict(), "predictor_vs_pass_2": result.per_pass[1].to_dict(),
        "published_only": agreement(frame.loc[published, "predicted_ms"], meas[published.to_numpy()]).to_dict()
        if published.any() else None,
        "provenance": provenance(device=table.spec.device, device_name=table.spec.device_name),
    }
    atomic_write_json(result.summary_path, summary)
    return result
