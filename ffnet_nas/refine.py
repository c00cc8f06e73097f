"""Refine rounds: when no evaluated point beats the reference yet, learn from what was measured
and search again.

    rounds = refine(workspace=ws, space=space, targets=targets, reference=ref_arch, reference_ms=19.2,
                    settings=settings, rounds=2, points=3, trials=300, num_classes=8)

The accuracy predictor starts from ~10 fine-tuned points; its leave-one-out error (2-3 mIoU on
the embedded data) is as large as the gaps it must rank near the target, so its favourites are
often overrated. But every full evaluation is one more training point measured by exactly the
protocol the predictor models. A round refits the predictor on every evaluated point, searches
again with it, and evaluates the new points that could beat the reference (predicted faster by
a margin, most accurate first). Rounds stop as soon as an evaluated point beats the reference.

Kill and resume: a round's predictor (`predictor/round<k>/`) and its list of points
(`search/round<k>/to_evaluate.csv`) are written once and read back on a re-run, so a resumed
round evaluates the same points — not new ones picked by a predictor refitted on the half-done
round — and finished evaluations are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from ffnet_nas.workspace import Workspace
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.io import atomic_write_csv

CHALLENGER_MARGIN = 0.95  # predicted latency at most 95% of the reference's: the LUT's error is a few %


@dataclass(frozen=True)
class Round:
    index: int
    predictor: str  # folder of the predictor this round searched with
    fitted_on: int  # evaluated points it was fitted on
    kendall_tau: float  # its leave-one-out rank correlation
    points: tuple[str, ...]  # codes this round evaluated


def beats(row: dict, ref: dict | None) -> bool:
    """Higher measured mIoU at lower (or equal) measured latency, same device and data."""
    if ref is None or _missing(row.get("measured_latency_ms")) or _missing(ref.get("measured_latency_ms")):
        return False
    return row["measured_miou"] > ref["measured_miou"] and row["measured_latency_ms"] <= ref["measured_latency_ms"]


def _missing(value) -> bool:
    return value is None or value != value  # NaN


def challengers(rows: pd.DataFrame, reference_ms: float, *, k: int, exclude: Sequence[str] = (),
                margin: float = CHALLENGER_MARGIN) -> list[str]:
    """Up to k points predicted faster than the reference by the margin, most accurate first.

    `rows` has columns code, latency_ms, miou (a search's front or all its trials); published
    variants are left out (a published point beating another is not a find)."""
    fast = rows[(rows["latency_ms"] <= margin * reference_ms) & ~rows["code"].isin(list(exclude))]
    if "published" in fast.columns:
        fast = fast[fast["published"].isna() | (fast["published"] == "")]
    return list(fast.sort_values("miou", ascending=False, kind="stable")["code"][:k])


def evaluated_rows(workspace: Workspace) -> dict[str, dict]:
    from ffnet_nas.evaluate import read_evaluated

    table = read_evaluated(workspace.evaluated_path)
    table = table[table["init"] == "distilled"]
    return {r["code"]: r for r in table.to_dict("records")}


def refine(*, workspace: Workspace, space, targets, reference: Arch, reference_ms: float, candidates: Sequence[str],
           settings, rounds: int, points: int, trials: int, num_classes: int, lut: str | None = None,
           device: str = "cpu", progress: bool = True, log: Callable[[str], None] = print) -> list[Round]:
    """Up to `rounds` refit-search-evaluate rounds, each evaluating up to `points` new points;
    stops when one of the `candidates` (the search's points already evaluated) or of the rounds'
    points beats `reference` (which must be evaluated). Other evaluated points (the predictor's
    design, published variants) teach the predictor but are not finds."""
    done: list[Round] = []
    for index in range(1, rounds + 1):
        rows = evaluated_rows(workspace)
        ref = rows.get(reference.code)
        finds = [*candidates, *(c for r in done for c in r.points)]
        if any(beats(rows[c], ref) for c in finds if c in rows and c != reference.code):
            break
        done.append(_round(index, workspace=workspace, space=space, targets=targets, reference_ms=reference_ms,
                           settings=settings, points=points, trials=trials, num_classes=num_classes, lut=lut,
                           device=device, progress=progress, log=log))
        if not done[-1].points:
            log(f"  round {index}: no new point is predicted to beat the reference; stopping")
            break
    return done


def _round(index: int, *, workspace: Workspace, space, targets, reference_ms: float, settings, points: int,
           trials: int, num_classes: int, lut: str | None, device: str, progress: bool,
           log: Callable[[str], None]) -> Round:
    from ffnet_nas.evaluate import evaluate_points
    from ffnet_nas.fit_predictor import fit_from_table
    from ffnet_nas.search.api import predictor_study_name, run_search
    from ffnet_nas.search.predictors import load as load_predictors
    from ffnet_nas.predictors.accuracy import PREDICTOR_FILE, AccuracyPredictor

    ws = workspace
    predictor_dir = ws.predictor_dir / f"round{index}"
    if (predictor_dir / PREDICTOR_FILE).exists():
        predictor = AccuracyPredictor.load(predictor_dir / PREDICTOR_FILE)  # fitted before a kill: keep it
    else:
        predictor = fit_from_table(ws, out_dir=predictor_dir)  # same feature convention as the first fit
    v = predictor.validation
    log(f"  round {index}: predictor refitted on {v.n} evaluated points (LOO Kendall tau {v.kendall_tau:.2f}) "
        f"-> {predictor_dir}")

    out_dir = ws.search_dir / f"round{index}"
    listed = out_dir / "to_evaluate.csv"
    if listed.exists():
        codes = list(pd.read_csv(listed)["code"])
    else:
        preds = load_predictors(lut_dir=ws.lut_dir, predictor_dir=predictor_dir, space=space, lut=lut)
        study = predictor_study_name(space, targets, preds.objective_id)
        found = run_search(space=space, predict_latency_ms=preds.latency_ms, predict_miou=preds.miou, targets=targets,
                           n_trials=trials, storage=ws.adopt_legacy_journal(), seed=index, study_name=study,
                           objective_id=preds.objective_id, num_classes=num_classes, progress=progress)
        every = pd.DataFrame(found.extra["rows"])
        seen = list(evaluated_rows(ws))
        codes = challengers(every, reference_ms, k=points, exclude=seen)
        # near the fastest published variants few points are clearly faster: then also try the
        # ones predicted only a little faster (the verdict uses measured latency anyway)
        codes += challengers(every, reference_ms, k=points - len(codes), exclude=seen + codes, margin=1.0)
        scored = every.set_index("code").loc[codes, ["latency_ms", "miou"]].reset_index() if codes else \
            pd.DataFrame(columns=["code", "latency_ms", "miou"])
        atomic_write_csv(listed, scored)
    log(f"  round {index}: {len(codes)} point(s) to evaluate -> {listed}")
    if codes:
        evaluate_points([Arch.parse(c) for c in codes], workspace=ws, settings=settings, device=device,
                        progress=progress, predictor_dir=predictor_dir)
    return Round(index, str(predictor_dir), v.n, round(v.kendall_tau, 3), tuple(codes))


def best_candidate(rows: dict[str, dict], candidates: Sequence[str], reference: Arch | None) -> tuple[dict | None, bool]:
    """The most accurate candidate that beats the reference (or, if none does, the most accurate
    candidate) and whether it beats it."""
    pool = [rows[c] for c in dict.fromkeys(candidates) if c in rows and (reference is None or c != reference.code)]
    ref = rows.get(reference.code) if reference is not None else None
    winning = [r for r in pool if beats(r, ref)]
    best = max(winning or pool, key=lambda r: r["measured_miou"], default=None)
    return best, bool(winning)


__all__ = ["Round", "beats", "best_candidate", "challengers", "refine", "CHALLENGER_MARGIN"]
