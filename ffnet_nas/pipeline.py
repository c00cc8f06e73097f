"""The whole pipeline on one workdir: data, teacher, distillation, latency table, accuracy
predictor, search, full evaluation, report.

    summary = run_pipeline(workspace=Workspace("runs/default"), config=RunConfig(budget=get_budget("quick")))

Every step is one function of `ffnet_nas.steps`, the same its command calls; this module only
builds their requests from the run's configuration (`ffnet_nas.run_config.RunConfig`: the budget
of `ffnet_nas.budgets` plus space, target, device, threads) and the run context, and decides
what the results mean (reference, verdict, held-out check). Every step is resumable on its own
(its outputs are written atomically as they finish), and a step whose outputs exist is skipped,
so a killed run re-run with the same arguments continues where it stopped without redoing
finished work. The budget sets sizes and step counts only; the code path is the same for `micro`
(tests), `quick` (minutes on a laptop CPU) and `full`.

Progress goes to this module's logger at INFO (the CLI shows it on stdout).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import asdict

from ffnet_nas.budgets import BUDGETS, Budget, budget_dict, get_budget  # noqa: F401  (BUDGETS: the CLI's choices)
from ffnet_nas.closing import describe
from ffnet_nas.rivals import latency_limit, nearest_published  # noqa: F401  (nearest_published: tests, API)
from ffnet_nas.run_config import RunConfig
from ffnet_nas.run_summary import RunSummary
from ffnet_nas.workspace import Workspace
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.catalogue import name_of, variants
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_write_json, provenance

logger = logging.getLogger(__name__)

STEPS = ("teacher", "distill", "latency", "predictor", "search", "evaluate", "report")


def default_target(reference_ms: dict[str, float]) -> str:
    """The median predicted latency of the space's published variants (or, in a space without
    any, of a sample of its points): a budget that half of them meet on this device, so the
    search has something to beat on both sides."""
    if not reference_ms:
        raise InvalidInput("no point to derive a default target from: expected --target")
    values = sorted(reference_ms.values())
    median = values[len(values) // 2]
    return f"latency<={_round_ms(median)}ms"


def _round_ms(ms: float) -> float:
    digits = 2 - int(math.floor(math.log10(abs(ms)))) if ms > 0 else 2
    return round(ms, max(0, digits))


class _Step:
    """Announce step `index` and time it into `summary.seconds` (the kill tests wait for the announcement)."""

    def __init__(self, summary: RunSummary, name: str):
        self.summary, self.name = summary, name

    def __enter__(self):
        logger.info("[%d/%d] %s", STEPS.index(self.name) + 1, len(STEPS), self.name)
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.summary.seconds[self.name] = round(time.perf_counter() - self.t0, 1)
        return False


def run_pipeline(*, workspace: Workspace, config: RunConfig, progress: bool = True,
                 scheduler: str | None = None) -> RunSummary:
    """The whole run; `scheduler`: a Dask scheduler's address, whose workers then distil the blocks
    and fine-tune the candidates (docs/scale.md)."""
    from ffnet_nas import steps

    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)  # training and evaluation too, not only the latency table
    # every input checked: no work yet
    ctx = steps.open_run(workspace=workspace, config=config, progress=progress, scheduler=scheduler)
    summary = RunSummary(budget=config.budget.name, space=ctx.space.name, device=ctx.device_name, data=config.data,
                         train_hw=list(ctx.train_hw), input_hw=list(ctx.input_hw))
    steps.write_training_precision(ctx)
    logger.info("data %s; training at %dx%d in %s (%s), deployment input %dx%d (latency, target, MACs)", config.data,
                *ctx.train_hw, f"{ctx.config.amp} autocast" if ctx.config.amp else "float32", ctx.precision_source,
                *ctx.input_hw)

    with _Step(summary, "teacher"):
        ctx = _teacher(ctx, summary)
    with _Step(summary, "distill"):
        _distill(ctx, summary)
    with _Step(summary, "latency"):
        table = _latency(ctx, summary)
        published = {v.name: v.arch for v in variants() if v.arch in ctx.space}
        published_ms = _predicted_ms(published, table)
    with _Step(summary, "predictor"):
        _predictor(ctx, lut=table.path.stem)
    with _Step(summary, "search"):
        found, targets = _search(ctx, summary, lut=table.path.stem, published_ms=published_ms, table=table)
    with _Step(summary, "evaluate"):
        _evaluate(ctx, summary, found=found, targets=targets, table=table, published=published,
                  published_ms=published_ms)
        _time_side_by_side(summary, table, published=published)
        from ffnet_nas.evaluate.drift import table_drift_record

        summary.latency_drift = table_drift_record(ctx.workspace, table)  # the table's scale, checked at the end
    with _Step(summary, "report"):
        # the table this run measured, as for its other steps (not whichever else the folder holds)
        result = steps.report(workspace=workspace, progress=progress,
                              request=steps.ReportRequest(formats=config.formats, lut=table.path.stem,
                                                          run_summary={**asdict(summary), "closing": describe(summary)}))
        summary.files["report"] = str(result.index)

    # ctx.config: the training precision as resolved (what a check or a later evaluate must repeat)
    # fp32, not null: in a config null means "the budget's", which on another CPU may be bf16
    record = {**asdict(summary), "provenance": provenance(budget=budget_dict(config.budget),
                                                          config={**_config_record(ctx.config),
                                                                  "amp": ctx.config.amp or "fp32"})}
    # relative to the workdir: a copied or moved workdir names its own files
    record["files"] = {k: workspace.relative(v) for k, v in summary.files.items()}
    summary.files["summary"] = str(atomic_write_json(workspace.run_summary_path, record))
    return summary


def _config_record(config: RunConfig) -> dict:
    from ffnet_nas.run_config import config_dict

    return {k: v for k, v in config_dict(config).items() if k != "budget"}  # the budget has its own key


def _teacher(ctx, summary: RunSummary):
    from ffnet_nas import steps

    ws, b, c = ctx.workspace, ctx.budget.teacher, ctx.config
    given = _path(c.teacher)
    result = steps.train_teacher(workspace=ws, device=ctx.device, progress=ctx.progress, request=steps.TeacherRequest(
        arch=b.arch, steps=b.steps, data=c.data, batch_size=b.batch_size, input_hw=ctx.train_hw, lr=b.lr,
        optimizer=b.optimizer, checkpoint_every=b.checkpoint_every, seed=b.seed, eval_images=b.val_images,
        workers=c.workers, checkpoint=given, init=_path(c.init.removeprefix("imagenet:") if c.init else None),
        amp=c.amp, reuse=True))
    if result.run is None:
        logger.info("  teacher exists: %s (skipped)", ws.teacher_path)
    elif given is not None:
        logger.info("  teacher loaded from %s (not trained)", given)
    summary.files["teacher"] = str(ws.teacher_path)
    return ctx.with_teacher(result.meta)  # read once; every later step takes it from the context


def _distill(ctx, summary: RunSummary) -> None:
    from ffnet_nas import steps

    b = ctx.budget.distill
    block = dataclasses.replace(b.block, amp=ctx.config.amp) if ctx.config.amp else b.block
    result = steps.distill(workspace=ctx.workspace, progress=ctx.progress, request=steps.DistillRequest(
        space=ctx.space, config=block, train_images=b.train_images, val_images=b.val_images, data=ctx.config.data,
        input_hw=ctx.train_hw, scheduler=ctx.scheduler, threads=ctx.threads, device=ctx.device))
    s = result.summary
    logger.info("  block library: %d choices, %d trained now, %d already there -> %s", s.choices, s.trained, s.skipped,
                s.table_path)
    if s.failed:
        logger.info("  %d block(s) failed and are not used: %s ...", len(s.failed), s.failed[0])
    summary.files["library"] = str(s.table_path)


def _latency(ctx, summary: RunSummary):
    from ffnet_nas import steps
    from ffnet_nas.predictors.latency.build import make_spec

    b = ctx.budget.latency
    spec = make_spec(device=ctx.device, dtype=b.dtype, backend=b.backend, batch=b.batch, input_hw=ctx.input_hw,
                     threads=ctx.threads, num_classes=ctx.num_classes)
    built = steps.measure_latency(workspace=ctx.workspace, progress=ctx.progress, request=steps.LatencyRequest(
        space=ctx.space, spec=spec, protocol=b.protocol, calibrate=b.calibrate, validate=b.validate,
        validate_published=b.validate_published))
    logger.info("  latency table: %d keys (%d measured now) -> %s", built.n_keys, built.n_new, built.table.path)
    if built.validation is not None:  # None when the budget validates nothing
        (logger.warning if built.validation.calibration_hurts else logger.info)("  %s", built.validation.text())
    summary.files["lut"] = str(built.table.path)
    return built.table


def _predicted_ms(points: dict, table) -> dict[str, float]:
    from ffnet_nas.predictors.latency import predict_latency

    return {name: predict_latency(arch, table) for name, arch in points.items()}


def _finetune(ctx) -> dict:
    e, c = ctx.budget.evaluate, ctx.config
    finetune = dataclasses.replace(e.finetune, amp=c.amp, num_workers=c.workers) if c.amp or c.workers else e.finetune
    return {"finetune": finetune, "val_images": e.val_images, "score_at": e.score_at}


def _precision(ctx) -> str:
    """What the run's accuracy is scored in: INT8 under an INT8 latency table (the models it would
    ship are quantised, so their quantised mIoU is what the predictor learns and the verdict
    compares), else fp32."""
    return "int8" if ctx.budget.latency.dtype == "int8" else "fp32"


def _score_hw(ctx):
    """The size the run's scores were taken at, for the held-out check to take its own at."""
    from ffnet_nas.evaluate import scoring_size

    return scoring_size(ctx.budget.evaluate.score_at, data=ctx.config.data, train_hw=ctx.train_hw,
                        deploy_hw=ctx.input_hw)


def _path(value: str | None):
    from pathlib import Path

    return None if value is None else Path(value).expanduser().resolve()


def _predictor(ctx, *, lut: str) -> None:
    from ffnet_nas import steps

    b = ctx.budget.predictor
    # reuse: refitting here would fold in the points this run's evaluate step added, silently
    # changing the objective under a half-finished search: refit explicitly instead
    fitted = steps.fit_predictor(workspace=ctx.workspace, progress=ctx.progress, request=steps.PredictorRequest(
        space=ctx.space, points=b.points, seed=b.seed, reuse=True, lut=lut, device=ctx.device, scheduler=ctx.scheduler,
        precision=_precision(ctx), **_finetune(ctx)))
    if not fitted.fitted_now:
        logger.info("  accuracy predictor exists: %s (skipped; 'ffnet-nas fit-predictor --refit-only' refits)",
                    fitted.folder / _predictor_file())
    v = fitted.predictor.validation
    logger.info("  accuracy predictor on %d points: LOO Kendall tau %.2f, Spearman %.2f", v.n, v.kendall_tau, v.spearman)


def _predictor_file() -> str:
    from ffnet_nas.predictors.accuracy import PREDICTOR_FILE

    return PREDICTOR_FILE


def _search(ctx, summary: RunSummary, *, lut: str, published_ms: dict[str, float], table):
    from ffnet_nas import steps
    from ffnet_nas.search.targets import parse_targets

    # in a space without published variants, the default target comes from a sample of its points
    reference_ms = published_ms or _predicted_ms({a.code: a for a in ctx.space.sample_many(50, seed=0)}, table)
    summary.target = ctx.config.target or default_target(reference_ms)
    targets = parse_targets(summary.target)
    b = ctx.budget
    limit = latency_limit(targets)
    summary.reference = nearest_published(published_ms, limit) if limit is not None else None
    found = steps.search(workspace=ctx.workspace, progress=ctx.progress, request=steps.SearchRequest(
        space=ctx.space, targets=targets, trials=b.search.trials, num_classes=ctx.num_classes, seed=b.search.seed,
        study_per_predictors=True, lut=lut,  # the table this run measured, not any other
        out_dir=ctx.workspace.search_dir, evaluate_top=b.evaluate.top,
        # the points sent to full evaluation: the likeliest to beat the reference (budget's rerank_by)
        rerank=b.search.rerank, rerank_by=b.search.rerank_by,
        rerank_per_class=b.search.rerank_per_class, reference=summary.reference, device=ctx.device, sole_writer=True))
    logger.info("  %d trials; Pareto table -> %s", found.result.n_complete, found.paths["pareto"])
    summary.files["search"] = str(found.paths["pareto"])
    if "reranked" in found.paths:
        summary.files["reranked"] = str(found.paths["reranked"])
    return found, targets


def _evaluate(ctx, summary: RunSummary, *, found, targets, table, published: dict, published_ms: dict) -> None:
    from ffnet_nas import steps
    from ffnet_nas.evaluate import held_out_miou
    from ffnet_nas.settings import accuracy_column
    from ffnet_nas.refine import RefineRequest, best_candidate, challengers, evaluated_rows, refine, winners
    from ffnet_nas.rivals import compare as compare_rivals, strongest_rival, with_rivals

    ws, b, lut = ctx.workspace, ctx.budget.evaluate, table.path.stem
    ref_arch = published[summary.reference] if summary.reference else None
    published_codes = {n: a.code for n, a in published.items()}
    top = [c for c in found.to_evaluate if c not in published_codes.values()]  # a published point is not a find
    if ref_arch is not None:
        # also the front points predicted to dominate the reference by a margin the latency
        # predictor's error (a few %) cannot erase: the claim to test is "beats it", so test
        # the points that could, not only the most accurate ones under the target
        pool = found.reranked if found.reranked is not None else found.result.pareto
        top += challengers(pool, published_ms[summary.reference], k=b.top, exclude=top)
    points = [Arch.parse(c) for c in top] + ([ref_arch] if ref_arch is not None else [])
    # the published variant the predictor rates most accurate within the target (the evaluate step
    # skips it when measured): the verdict names the strongest published rival, not only the nearest
    limit = latency_limit(targets)
    points = with_rivals(points, predicted=found.result.published.to_dict("records"), published=published,
                         published_ms=published_ms, limit_ms=limit, k=b.rivals)
    # an INT8 latency table: the candidates' accuracy is scored in INT8 too (int8_miou beside measured_miou),
    # and the verdict compares that
    precision = _precision(ctx)
    summary.accuracy = accuracy = accuracy_column(precision)
    steps.evaluate(workspace=ws, progress=ctx.progress, request=steps.EvaluateRequest(
        points=tuple(points), lut=lut, device=ctx.device, scheduler=ctx.scheduler, precision=precision,
        **_finetune(ctx)))
    if ref_arch is not None and b.rounds:
        # the strongest published variant within the target measured so far: the rounds try to out-score it too
        rival = strongest_rival(evaluated_rows(ws), published_codes=published_codes, published_ms=published_ms,
                                limit_ms=limit, accuracy=accuracy, reference=summary.reference) if b.chase_rival else None
        rounds = refine(workspace=ws, progress=ctx.progress, request=RefineRequest(
            space=ctx.space, targets=targets, reference=ref_arch, reference_ms=published_ms[summary.reference],
            rival=published[rival] if rival else None, rival_margin=b.chase_margin,
            stop_stalled=b.stop_stalled_chase,
            candidates=tuple(top), rounds=b.rounds, points=b.round_points, trials=ctx.budget.search.trials,
            seed=ctx.budget.search.seed, num_classes=ctx.num_classes, lut=lut, device=ctx.device,
            rerank=ctx.budget.search.rerank, rerank_by=ctx.budget.search.rerank_by,
            rerank_per_class=ctx.budget.search.rerank_per_class,
            scheduler=ctx.scheduler, precision=precision, **_finetune(ctx)))
        summary.rounds = [asdict(r) for r in rounds]
        top += [c for r in rounds for c in r.points]
    rows = evaluated_rows(ws)
    best, summary.beats_reference = best_candidate(rows, top, ref_arch, accuracy=accuracy)
    if summary.beats_reference:
        best = _pick_side_by_side(summary, winners(rows, top, ref_arch, accuracy=accuracy), ref_arch, table)
    if ref_arch is not None:
        summary.reference_row = _plain(rows.get(ref_arch.code))
    else:
        summary.beats_reference = None
    summary.best = _plain(best)
    if limit is not None:
        summary.published_rivals = asdict(compare_rivals(summary.best, rows, published_ms=published_ms, limit_ms=limit,
                                                         published_codes=published_codes, accuracy=accuracy))
    if summary.best and summary.reference_row:
        # the verdict was picked on the scoring images; say whether it holds on the rest
        # and, beside the reference, the strongest published rival: the rounds stopped on the scoring images
        strongest = (summary.published_rivals or {}).get("strongest")
        held = held_out_miou([summary.best["code"], summary.reference_row["code"], *([strongest["code"]] if strongest else [])],
                             workspace=ws, val_images=b.val_images, device=ctx.device, score_hw=_score_hw(ctx),
                             precision=precision)
        for row in (summary.best, summary.reference_row):
            row["held_out_miou"] = held.get(row["code"])
        if strongest:
            summary.published_rivals.update(held_out_found=held.get(summary.best["code"]),
                                            held_out_rival=held.get(strongest["code"]))
        if summary.best["code"] in held and summary.reference_row["code"] in held:
            summary.held_out_confirms = held[summary.best["code"]] > held[summary.reference_row["code"]]
        if b.check_win:
            from ffnet_nas.win_check import check_win

            def check(other: dict):
                return check_win(workspace=ws, best=summary.best, reference=other, config=_finetune(ctx)["finetune"],
                                 val_images=b.val_images, seeds=b.check_seeds, device=ctx.device, score_at=b.score_at,
                                 progress=ctx.progress, lut=lut, precision=precision)

            win = check(summary.reference_row)
            summary.win_check = {**asdict(win), "text": win.text()}
            if strongest and strongest["code"] != summary.reference_row["code"]:
                # "better than every published variant within the target" rests on one seed of each
                # point until the strongest of them is measured under the same seeds (the best point's
                # other seeds are on file already: two more fine-tunes)
                rival = check({**rows[strongest["code"]], "held_out_miou": held.get(strongest["code"])})
                summary.rival_check = {**asdict(rival), "text": rival.text(against="the strongest published rival")}
            summary.files["second_seed"] = str(ws.second_seed_path)
    summary.files["evaluated"] = str(ws.evaluated_path)


# rounds of the verdict's side-by-side timing (each times both networks under the table's protocol)
PAIRED_ROUNDS = 5


def _time_side_by_side(summary: RunSummary, table, *, published: dict) -> None:
    """The best point and the reference timed again, side by side (`evaluate.paired_latency`), so
    "at lower measured latency" does not rest on two timings taken minutes apart; and the best point
    beside the strongest published rival within the target (the same pair when that is the reference)."""
    from ffnet_nas.evaluate import PairedTiming, paired_latency

    if not summary.best:
        return
    best, with_reference = Arch.parse(summary.best["code"]), None
    if summary.reference_row and summary.reference:
        # the evaluate step timed a winner beside the reference already (`first_faster_side_by_side`)
        with_reference = (PairedTiming.from_record(summary.latency_pair)
                          or paired_latency(best, published[summary.reference], table, rounds=PAIRED_ROUNDS))
        _keep_pair(summary, with_reference)
    strongest = (summary.published_rivals or {}).get("strongest")
    if strongest:
        pair = (with_reference if with_reference and strongest["name"] == summary.reference
                else paired_latency(best, published[strongest["name"]], table, rounds=PAIRED_ROUNDS))
        summary.published_rivals.update(paired_found_ms=pair.first_ms, paired_rival_ms=pair.second_ms,
                                        paired_ratios=list(pair.ratios))


def _pick_side_by_side(summary: RunSummary, winning: list[dict], reference: Arch, table) -> dict:
    """The verdict's point among the winners (most accurate first): "at lower latency" rests on
    timings the evaluate step took one network at a time, so the point must be faster beside the
    reference too, or the next most accurate winner is (`refine.first_faster_side_by_side`). Keeps
    its pair and the more accurate winners passed over in `summary`."""
    from ffnet_nas.refine import first_faster_side_by_side

    best, timed = first_faster_side_by_side(winning, reference, table, rounds=PAIRED_ROUNDS)
    chosen = next(i for i, (row, _) in enumerate(timed) if row is best)
    # passed over: the winners timed before the chosen one, each more accurate (none when none was faster)
    summary.side_by_side_tried = [{"code": row["code"], "best_ms": pair.first_ms, "reference_ms": pair.second_ms}
                                  for row, pair in timed[:chosen]]
    _keep_pair(summary, timed[chosen][1])
    if not summary.latency_confirms:
        logger.info("  none of the %d most accurate winner(s) is faster than the reference side by side; the verdict "
                    "keeps the most accurate", len(timed))
    return best


def _keep_pair(summary: RunSummary, pair) -> None:
    summary.latency_pair = pair.record()
    summary.latency_confirms = pair.first_ms < pair.second_ms


def _plain(row: dict | None) -> dict | None:
    if row is None:
        return None
    out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    out["name"] = out.get("name") or name_of(Arch.parse(out["code"]))
    return out
