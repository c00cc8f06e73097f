"""Refine rounds: when no evaluated point beats the reference yet, learn from what was measured
and search again.

    rounds = refine(workspace=ws, request=RefineRequest(space=space, targets=targets, reference=ref_arch,
                    reference_ms=19.2, candidates=top, finetune=config, val_images=64, rounds=2, points=3,
                    trials=300, num_classes=8))

The accuracy predictor starts from ~10 fine-tuned points; its leave-one-out error (2-3 mIoU on
the embedded data) is as large as the gaps it must rank near the target, so its favourites are
often overrated. But every full evaluation is one more training point measured by exactly the
protocol the predictor models. A round refits the predictor on every evaluated point, searches
again with it, and evaluates the new points that could beat the reference (predicted faster by
a margin, most accurate first). Rounds stop as soon as an evaluated point beats the reference.

With a `rival` (the most accurate published variant within the target the run measured, when it
is not the reference: `ffnet_nas.rivals`), beating the nearest reference is not enough: rounds go
on until a find beats the reference and also is more accurate than the rival (both on measured
values; by more than `rival_margin` mIoU, since a one-seed margin inside the seeds' noise is
not a win), and each round re-ranks its candidates by the expected gain over the rival. The
challengers are picked as for the reference (predicted faster than it), so the point that stops
the rounds is one the verdict can take as its best.

A stalled chase stops early (`stop_stalled`): once a find beats the reference, a round ends the
rounds when, at its pace, the rounds left would not close what the best such find still lacks to
out-score the rival by the margin (the round raised it by less than that shortfall divided by the
rounds left). In the three quick runs of 2026-12-07 (two rounds each) the second round raised the
best find by +0.02, 0 and 0 mIoU; this rule would have skipped it in the two where round 1 had
raised it by +0.34 with 0.64 still lacking and by 0 with 0.69 (docs/results.md, "A stalled chase
stops"). Two cases, one budget: a rule to keep checking, not a law. A round whose list an earlier
run wrote is finished, not decided again, so a resumed workdir keeps the rounds it had.

A round calls the same step functions as `fit-predictor`, `search` and `evaluate`
(`ffnet_nas.steps`): nothing of predictor -> search -> evaluate is copied here.

Kill and resume: a round's predictor (`Workspace.round_predictor_dir(k)`) and its list of points
(`Workspace.round_to_evaluate_path(k)`) are written once and read back on a re-run, so a resumed
round evaluates the same points — not new ones picked by a predictor refitted on the half-done
round — and finished evaluations are skipped.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from ffnet_nas.workspace import Workspace
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.io import atomic_write_csv
from ffnet_nas.stats import finite_or_none

logger = logging.getLogger(__name__)

CHALLENGER_MARGIN = 0.95  # predicted latency at most 95% of the reference's: the LUT's error is a few %


@dataclass(frozen=True)
class Round:
    index: int
    predictor: str  # folder of the predictor this round searched with
    fitted_on: int  # evaluated points it was fitted on
    kendall_tau: float | None  # its leave-one-out rank correlation (None: undefined)
    points: tuple[str, ...]  # codes this round evaluated
    # why the rounds stopped after this one, short of the budget's and the rival not out-scored (`stalled`); None: they did not
    stopped: str | None = None


def beats(row: dict, ref: dict | None, *, accuracy: str = "measured_miou") -> bool:
    """Higher measured accuracy (the `accuracy` column: measured_miou, or int8_miou in an INT8 run)
    at lower (or equal) measured latency, same device and data."""
    if ref is None or any(finite_or_none(r.get(c)) is None for r in (row, ref) for c in ("measured_latency_ms", accuracy)):
        return False
    return row[accuracy] > ref[accuracy] and row["measured_latency_ms"] <= ref["measured_latency_ms"]


def challengers(rows: pd.DataFrame, reference_ms: float, *, k: int, exclude: Sequence[str] = (),
                margin: float = CHALLENGER_MARGIN) -> list[str]:
    """Up to k points predicted faster than the reference by the margin, most accurate first (the
    largest expected gain over the reference first, when `rows` is a re-ranked list).

    `rows` has columns code, latency_ms, miou (a search's front or all its trials, or the zero-shot
    stage's re-ranked candidates); published variants are left out (a published point beating
    another is not a find)."""
    fast = rows[(rows["latency_ms"] <= margin * reference_ms) & ~rows["code"].isin(list(exclude))]
    if "published" in fast.columns:
        fast = fast[fast["published"].isna() | (fast["published"] == "")]
    keys = [c for c in ("expected_gain", "miou") if c in fast.columns and fast[c].notna().any()]
    return list(fast.sort_values(keys, ascending=False, kind="stable")["code"][:k])


def evaluated_rows(workspace: Workspace) -> dict[str, dict]:
    from ffnet_nas.evaluate import read_evaluated

    table = read_evaluated(workspace.evaluated_path)
    table = table[table["init"] == "distilled"]
    return {r["code"]: r for r in table.to_dict("records")}


@dataclass(frozen=True, kw_only=True)
class RefineRequest:
    space: object  # SearchSpace (at the run's input size)
    targets: tuple
    reference: Arch  # the published variant to beat (already evaluated)
    reference_ms: float  # its predicted latency
    candidates: tuple[str, ...]  # the search's points already evaluated (finds)
    finetune: object  # settings.TrainConfig of the full evaluations
    val_images: int | None
    rounds: int
    points: int  # new points evaluated per round
    trials: int
    num_classes: int
    seed: int = 0  # round k searches with seed + k
    lut: str | None = None
    device: str = "cpu"
    scheduler: str | None = None  # a Dask scheduler: the rounds' fine-tunes run on its workers
    score_at: str = "train"  # the size the mIoU is scored at (evaluate.SCORE_AT)
    rerank: int = 0  # candidates re-ranked each round (steps.SearchRequest.rerank)
    rerank_by: str = "predictor"  # by what (steps.SearchRequest.rerank_by)
    rerank_per_class: int = 0  # each structure class's best held in that pool (steps.SearchRequest.rerank_per_class)
    precision: str = "fp32"  # "int8": points scored, fitted on and judged by their INT8 mIoU (an INT8 table)
    rival: Arch | None = None  # a published variant a find must also out-score (already evaluated; module docstring)
    rival_margin: float = 0.0  # by more than this many mIoU (EvaluateBudget.chase_margin)
    stop_stalled: bool = False  # end the rival chase when, at a round's pace, the rounds left cannot close it (module docstring)


def refine(*, workspace: Workspace, request: RefineRequest, progress: bool = True) -> list[Round]:
    """Up to `rounds` refit-search-evaluate rounds, each evaluating up to `points` new points;
    stops when one of the `candidates` (the search's points already evaluated) or of the rounds'
    points beats `reference` (which must be evaluated) and, given a `rival`, out-scores it too.
    Other evaluated points (the predictor's design, published variants) teach the predictor but
    are not finds."""
    from ffnet_nas.settings import accuracy_column

    accuracy = accuracy_column(request.precision)
    done: list[Round] = []
    for index in range(1, request.rounds + 1):
        rows = evaluated_rows(workspace)
        ref = rows.get(request.reference.code)
        # a rival without a row cannot be out-scored: its rounds run (the run evaluates it first)
        rival = rows.get(request.rival.code, {}) if request.rival is not None else None
        finds = [*request.candidates, *(c for r in done for c in r.points)]
        if any(beats(rows[c], ref, accuracy=accuracy)
               and _out_scores(rows[c], rival, accuracy=accuracy, margin=request.rival_margin)
               for c in finds if c in rows and c != request.reference.code):
            break
        if done and request.stop_stalled and not workspace.round_to_evaluate_path(index).exists():
            why = stalled(rows, request, finds=finds, last=done[-1].points, rounds_left=request.rounds - index + 1,
                          accuracy=accuracy)
            if why is not None:
                logger.info("  round %d %s: the chase stops", done[-1].index, why)
                done[-1] = dataclasses.replace(done[-1], stopped=why)
                break
        done.append(_round(index, workspace=workspace, request=request, progress=progress))
        if not done[-1].points:
            logger.info("  round %d: no new point is predicted to beat the reference; stopping", index)
            break
    return done


def stalled(rows: dict[str, dict], request: RefineRequest, *, finds: Sequence[str], last: Sequence[str],
            rounds_left: int, accuracy: str = "measured_miou") -> str | None:
    """Why the rival chase stops after a round whose points were `last` (`finds` includes them), with
    `rounds_left` of the budget's rounds still to run; None to go on. It stops when, at the pace of
    that round, the rounds left would not close the shortfall: the round raised the best find that
    beats the reference by less than 1/`rounds_left` of what that find still lacks to out-score the
    rival by the margin. Only the chase stalls: while no find beats the reference (or without a
    rival) the rounds go on, and a round that made the first winner is progress."""
    if request.rival is None or rounds_left < 1:
        return None
    ref, rival = rows.get(request.reference.code), rows.get(request.rival.code)
    theirs = finite_or_none((rival or {}).get(accuracy))
    if theirs is None or ref is None:
        return None

    def best(codes) -> float | None:
        won = winners(rows, codes, request.reference, accuracy=accuracy)
        return won[0][accuracy] if won else None

    newest = set(last)
    before, after = best([c for c in finds if c not in newest]), best(finds)
    if before is None or after is None:
        return None
    raised, short = after - before, theirs + request.rival_margin - after
    if raised * rounds_left >= short:
        return None
    from ffnet_nas.settings import accuracy_label
    from ffnet_nas.space.catalogue import name_of

    unit = accuracy_label(accuracy)
    pace = (f"raised the best find that beats the reference by {raised:+.2f} {unit} ({before:.2f} -> {after:.2f})"
            if raised > 0 else f"did not raise the best find that beats the reference ({after:.2f} {unit})")
    left = f"the {rounds_left} round{'s' if rounds_left > 1 else ''} left"
    return (f"{pace}; at that pace {left} would not close the {short:.2f} {unit} it still lacks to out-score "
            f"{name_of(request.rival) or request.rival.code} ({theirs:.2f}) by {request.rival_margin:g} {unit}")


def _out_scores(row: dict, rival: dict | None, *, accuracy: str, margin: float = 0.0) -> bool:
    """More accurate than the rival by more than `margin` (None: no rival, nothing more to
    out-score). A rival without a score cannot be out-scored."""
    if rival is None:
        return True
    mine, theirs = finite_or_none(row.get(accuracy)), finite_or_none(rival.get(accuracy))
    return mine is not None and theirs is not None and mine > theirs + margin


def _round(index: int, *, workspace: Workspace, request: RefineRequest, progress: bool) -> Round:
    """One round through the same step functions as the commands: fit-predictor (refit), search, evaluate."""
    from ffnet_nas import steps

    ws = workspace
    fitted = steps.fit_predictor(workspace=ws, progress=progress, request=steps.PredictorRequest(
        refit_only=True, reuse=True, out_dir=ws.round_predictor_dir(index),  # reuse: fitted before a kill, keep it
        val_images=request.val_images, score_at=request.score_at, device=request.device, lut=request.lut,
        precision=request.precision))
    v = fitted.predictor.validation
    logger.info("  round %d: predictor refitted on %d evaluated points (LOO Kendall tau %.2f) -> %s",
                index, v.n, v.kendall_tau, fitted.folder)

    listed = ws.round_to_evaluate_path(index)
    if listed.exists():
        codes = list(pd.read_csv(listed)["code"])
    else:
        found = steps.search(workspace=ws, progress=progress, request=steps.SearchRequest(
            space=request.space, targets=request.targets, trials=request.trials, num_classes=request.num_classes,
            seed=request.seed + index, study_per_predictors=True, lut=request.lut, predictor_dir=fitted.folder,
            rerank=request.rerank, rerank_by=request.rerank_by, rerank_per_class=request.rerank_per_class,
            reference=(request.rival or request.reference).code,
            device=request.device))
        every = pd.DataFrame(found.result.extra["rows"])
        seen = list(evaluated_rows(ws))
        # the re-ranked candidates first (likeliest to beat the reference), then the search's
        codes = challengers(found.reranked, request.reference_ms, k=request.points, exclude=seen) \
            if found.reranked is not None else []
        codes += challengers(every, request.reference_ms, k=request.points - len(codes), exclude=seen + codes)
        # near the fastest published variants few points are clearly faster: then also try the
        # ones predicted only a little faster (the verdict uses measured latency anyway)
        codes += challengers(every, request.reference_ms, k=request.points - len(codes), exclude=seen + codes, margin=1.0)
        scored = every.set_index("code").loc[codes, ["latency_ms", "miou"]].reset_index() if codes else \
            pd.DataFrame(columns=["code", "latency_ms", "miou"])
        atomic_write_csv(listed, scored)
    logger.info("  round %d: %d point(s) to evaluate -> %s", index, len(codes), listed)
    if codes:
        steps.evaluate(workspace=ws, progress=progress, request=steps.EvaluateRequest(
            points=tuple(Arch.parse(c) for c in codes), finetune=request.finetune, val_images=request.val_images,
            lut=request.lut, predictor_dir=fitted.folder, device=request.device, scheduler=request.scheduler,
            score_at=request.score_at, precision=request.precision))
    return Round(index, str(fitted.folder), v.n, _plain_tau(v.kendall_tau), tuple(codes))


def _plain_tau(tau: float) -> float | None:
    # rounded for the summary; an undefined tau (NaN, see ffnet_nas.stats) is None so the JSON stays JSON
    return round(tau, 3) if tau == tau else None


def _measured(rows: dict[str, dict], candidates: Sequence[str], reference: Arch | None, accuracy: str) -> list[dict]:
    # the candidates' rows with an accuracy, once each, the reference itself left out
    return [rows[c] for c in dict.fromkeys(candidates) if c in rows and (reference is None or c != reference.code)
            and finite_or_none(rows[c].get(accuracy)) is not None]


def winners(rows: dict[str, dict], candidates: Sequence[str], reference: Arch | None, *,
            accuracy: str = "measured_miou") -> list[dict]:
    """The candidates that beat the reference on measured values (`beats`), most accurate first."""
    if reference is None:
        return []
    ref = rows.get(reference.code)
    return sorted((r for r in _measured(rows, candidates, reference, accuracy) if beats(r, ref, accuracy=accuracy)),
                  key=lambda r: r[accuracy], reverse=True)


def best_candidate(rows: dict[str, dict], candidates: Sequence[str], reference: Arch | None, *,
                   accuracy: str = "measured_miou") -> tuple[dict | None, bool]:
    """The most accurate candidate (by the `accuracy` column) that beats the reference (or, if none
    does, the most accurate candidate) and whether it beats it."""
    pool = _measured(rows, candidates, reference, accuracy)
    winning = winners(rows, candidates, reference, accuracy=accuracy)
    best = winning[0] if winning else max(pool, key=lambda r: r[accuracy], default=None)
    return best, bool(winning)


# How many winners, most accurate first, are timed beside the reference before the verdict settles
# for one that is not faster side by side (each try: PAIRED_ROUNDS timings of both networks).
SIDE_BY_SIDE_TRIES = 3


def first_faster_side_by_side(winning: Sequence[dict], reference: Arch, table, *, tries: int = SIDE_BY_SIDE_TRIES,
                              rounds: int = 5) -> tuple[dict, list[tuple[dict, object]]]:
    """The most accurate of `winning` that is also faster than `reference` timed side by side
    (`evaluate.paired_latency`), and every pair timed on the way, in order.

    The evaluate step timed each network on its own, minutes apart; a winner by a few percent there
    can be slower beside the reference. Then the next most accurate winner is tried, up to `tries`;
    when none is faster, the most accurate winner is returned (its pair, the first, says so)."""
    from ffnet_nas.evaluate import paired_latency

    if not winning:
        raise ValueError("no winner to time: expected at least one candidate that beats the reference")
    timed = []
    for row in winning[:max(1, tries)]:
        pair = paired_latency(Arch.parse(row["code"]), reference, table, rounds=rounds)
        timed.append((row, pair))
        if pair.first_ms < pair.second_ms:
            return row, timed
    return winning[0], timed


__all__ = ["RefineRequest", "Round", "beats", "best_candidate", "challengers", "first_faster_side_by_side", "refine",
           "stalled", "winners", "CHALLENGER_MARGIN", "SIDE_BY_SIDE_TRIES"]
