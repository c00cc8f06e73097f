"""Find the real predictors in a workdir and turn them into the search's two callables.

* latency: a table made by `ffnet-nas measure-latency` in `Workspace.lut_dir` (`<slug>.csv` +
  `<slug>.json`), measured at the space's input size, used through
  `predictors.latency.predict_latency` with its calibration loaded once;
* accuracy: the predictor made by `ffnet-nas fit-predictor` (`Workspace.predictor_dir/accuracy.json`),
  loaded through `predictors.accuracy.load_predictor(dir)` (a callable Arch -> predicted mIoU).

Both are memoised per arch code: NSGA-II proposes the same points again and again.

When either is missing the error is one line naming the command that makes it. The objective id
(which tables/predictor files, by content hash) is stored with the study so a resumed study
is never scored by other predictors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput, closest
from ffnet_nas.space.searchspace import SearchSpace


@dataclass(frozen=True)
class Predictors:
    latency_ms: Callable[[Arch], float]
    miou: Callable[[Arch], float]
    objective_id: str
    description: str


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha1()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def lut_candidates(lut_dir: Path) -> list[Path]:
    """Latency tables (CSV with their JSON metadata) in `lut_dir`, excluding calibration files."""
    if not lut_dir.is_dir():
        return []
    return sorted(p for p in lut_dir.glob("*.csv") if p.with_suffix(".json").exists())


def find_lut(lut_dir: Path, space: SearchSpace, *, lut: str | None = None) -> Path | None:
    """The table for this space's input size (or the one named `lut`); None when there is none."""
    found = lut_candidates(lut_dir)
    if lut:
        named = [p for p in found if p.stem == lut or str(p) == lut]
        if not named:
            raise InvalidInput(f"no latency table {lut!r} in {str(lut_dir)!r}: expected one of "
                               f"{', '.join(p.stem for p in found) or '(none)'}{closest(lut, [p.stem for p in found])}")
        return named[0]
    size = f"-{space.input_hw[0]}x{space.input_hw[1]}-"
    matching = [p for p in found if size in p.stem]
    if len(matching) > 1:
        raise InvalidInput(f"several latency tables fit space {space.name!r} in {str(lut_dir)!r} "
                           f"({', '.join(p.stem for p in matching)}): expected --lut NAME to pick one")
    if not matching and found:
        raise InvalidInput(f"no latency table in {str(lut_dir)!r} is measured at {space.input_hw[0]}x{space.input_hw[1]} "
                           f"(space {space.name!r}); have {', '.join(p.stem for p in found)}: run ffnet-nas measure-latency "
                           f"--space {space.name}, or pass --lut NAME")
    return matching[0] if matching else None


def load_latency(csv_path: Path) -> tuple[Callable[[Arch], float], str]:
    from ffnet_nas.predictors.latency import predict_latency
    from ffnet_nas.predictors.latency.lut import load_table
    from ffnet_nas.predictors.latency.predict import Calibration, calibration_path, load_calibration

    table = load_table(csv_path)
    calibration = load_calibration(table) or Calibration()
    memo: dict[str, float] = {}

    def latency_ms(arch: Arch) -> float:
        # the same arch recurs (NSGA-II re-proposes front points): sum its units once
        code = arch.code
        if code not in memo:
            memo[code] = predict_latency(arch, table, calibration=calibration)
        return memo[code]

    files = [csv_path, csv_path.with_suffix(".json")] + [p for p in [calibration_path(table)] if p.exists()]
    return latency_ms, f"lut:{csv_path.stem}:{_digest(files)}"


def accuracy_file(predictor_dir: Path) -> Path:
    from ffnet_nas.predictors.accuracy import PREDICTOR_FILE

    return Path(predictor_dir) / PREDICTOR_FILE


def load_accuracy(predictor_dir: Path) -> tuple[Callable[[Arch], float], str]:
    from ffnet_nas.predictors.accuracy import load_predictor

    predict = load_predictor(predictor_dir)
    memo: dict[str, float] = {}

    def miou(arch: Arch) -> float:
        code = arch.code
        if code not in memo:
            memo[code] = predict(arch)
        return memo[code]

    return miou, f"acc:{_digest([accuracy_file(predictor_dir)])}"


def load(*, lut_dir: Path, predictor_dir: Path, space: SearchSpace, lut: str | None = None) -> Predictors:
    """Both predictors for `space`, or one InvalidInput line naming what is missing and how to make it."""
    lut_path = find_lut(Path(lut_dir), space, lut=lut)
    predictor_dir = Path(predictor_dir)
    has_acc = accuracy_file(predictor_dir).is_file()
    missing = []
    if lut_path is None:
        missing.append(f"a latency table in {str(lut_dir)!r} (run: ffnet-nas measure-latency --space {space.name})")
    if not has_acc:
        missing.append(f"an accuracy predictor in {str(predictor_dir)!r} (run: ffnet-nas fit-predictor)")
    if missing:
        raise InvalidInput("search needs " + " and ".join(missing))
    latency_ms, lat_id = load_latency(lut_path)
    miou, acc_id = load_accuracy(predictor_dir)
    return Predictors(latency_ms=latency_ms, miou=miou, objective_id=f"{lat_id}+{acc_id}",
                      description=f"latency from {lut_path.name}, mIoU from {predictor_dir}")
