"""The steps that explore the space: fit the accuracy predictor, search, evaluate in full.

    fit_predictor(workspace=ws, request=PredictorRequest(...))   `ffnet-nas fit-predictor`, run step 4, refine rounds
    search(workspace=ws, request=SearchRequest(...))             `ffnet-nas search`, run step 5, refine rounds
    evaluate(workspace=ws, request=EvaluateRequest(...))         `ffnet-nas evaluate`, run step 6, refine rounds

Each takes the workspace and one frozen request and returns a frozen result; none prints. The
latency table and the accuracy predictor are loaded through `ffnet_nas.predictors.load` (one
rule for which table), so the commands, `run` and its refine rounds score points alike.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ffnet_nas.settings import TrainConfig
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.workspace import Workspace


def _check_val_images(n: int | None) -> None:
    # 0 images would score every point NaN and write that over a valid row (and NaN into the predictor)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InvalidInput(f"--val-images {n!r}: expected a positive number of validation images (or none: all)")


# ---- accuracy predictor -----------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class PredictorRequest:
    finetune: TrainConfig | None = None  # fine-tuning of the design points (not needed with refit_only)
    val_images: int | None = None  # their score uses the first N validation images
    space: object | None = None  # SearchSpace the design is drawn from (not needed with refit_only)
    points: int = 12
    seed: int = 0
    refit_only: bool = False  # fit on the evaluated rows; evaluate nothing
    # keep a predictor that exists: `run` must not change the objective under a half-finished
    # search (refit explicitly instead), and a refine round resumed after a kill keeps its own
    reuse: bool = False
    out_dir: Path | None = None  # None: the workdir's predictor folder
    lut: str | None = None  # the latency table the design's evaluations are timed with
    device: str = "cpu"
    scheduler: str | None = None  # a Dask scheduler: the design's fine-tunes run on its workers
    score_at: str = "train"  # the size the design's mIoU is scored at (evaluate.SCORE_AT)
    # the predictor's features (predictors.accuracy.FEATURE_SETS); None: the workdir predictor's, else the default
    features: str | None = None
    # the accuracy it learns (evaluate.ACCURACY_COLUMNS): "int8" fits the INT8 mIoU an INT8 run judges by,
    # and scores the design's points in INT8 too
    precision: str = "fp32"

    def __post_init__(self) -> None:
        from ffnet_nas.settings import accuracy_column

        _check_val_images(self.val_images)
        accuracy_column(self.precision)
        if self.features is not None:
            from ffnet_nas.fit_predictor import check_feature_set

            check_feature_set(self.features)


@dataclass(frozen=True)
class PredictorResult:
    predictor: object  # predictors.accuracy.AccuracyPredictor
    folder: Path
    fitted_now: bool


def fit_predictor(*, workspace: Workspace, request: PredictorRequest, progress: bool = True) -> PredictorResult:
    from ffnet_nas.fit_predictor import fit_from_table, fit_predictor as fit_design
    from ffnet_nas.predictors.load import load_accuracy_predictor

    folder = Path(request.out_dir or workspace.predictor_dir)
    if request.reuse:
        from ffnet_nas.settings import accuracy_column

        stored, needed = load_accuracy_predictor(folder), accuracy_column(request.precision)
        learned = stored.meta.get("accuracy", "measured_miou") if stored is not None else None
        if stored is not None and learned == needed:
            return PredictorResult(predictor=stored, folder=folder, fitted_now=False)
        if stored is not None:  # a workdir re-run under another precision: its predictor learned the other accuracy
            logging.getLogger(__name__).info("  the predictor in %s learned %s; this step needs %s: fitting it again",
                                             folder, learned, needed)
    if request.refit_only:
        predictor = fit_from_table(workspace, out_dir=folder, val_images=request.val_images, score_at=request.score_at,
                                   device=request.device, progress=progress, lut=request.lut,
                                   feature_set=request.features, precision=request.precision)
    else:
        if request.space is None or request.finetune is None:
            raise TypeError("PredictorRequest: space and finetune are needed to evaluate a design (or refit_only=True)")
        if folder != workspace.predictor_dir:
            raise InvalidInput("a design is fitted into the workdir's predictor folder; expected refit_only with out_dir")
        predictor = fit_design(workspace=workspace, space=request.space, n=request.points, config=request.finetune,
                               val_images=request.val_images, seed=request.seed, device=request.device,
                               progress=progress, lut=request.lut, scheduler=request.scheduler,
                               score_at=request.score_at, feature_set=request.features, precision=request.precision)
    return PredictorResult(predictor=predictor, folder=folder, fitted_now=True)


# ---- search -----------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SearchRequest:
    space: object  # SearchSpace
    targets: tuple  # parsed (search.targets.parse_targets)
    trials: int  # complete trials the study should hold
    num_classes: int  # the teacher's: params and MACs of a point depend on it
    seed: int | None = None
    sampler: str = "nsga2"
    storage: str | Path | None = None  # None: the workdir's journal (older names adopted)
    study: str | None = None  # None: SPACE.TARGETS, or with study_per_predictors SPACE.TARGETS.<predictors' hash>
    # one study per (space, targets, predictors): refitted predictors start a new study, the same resume theirs
    study_per_predictors: bool = False
    lut: str | None = None  # the latency table's name when several fit (predictors.load rule)
    predictor_dir: Path | None = None  # None: the workdir's predictor folder
    durable: bool = False
    out_dir: Path | None = None  # where the tables go (None: nowhere; a refine round keeps only its list)
    study_subdir: bool = False  # into out_dir/<study name> (`search`), not out_dir itself (`run`)
    latest_dir: Path | None = None  # also write the front (and list) here as the latest search's
    evaluate_top: int = 0  # list the best K feasible points (to_evaluate.csv)
    # re-rank up to this many of the best feasible points by their expected gain over `reference`,
    # with the mean and spread of `rerank_by` (budgets.RERANK_BY: the search's own predictor, or the
    # zero-shot stage when it was fitted, ffnet_nas.zero_shot): the list is then ordered by it
    rerank: int = 0
    rerank_by: str = "predictor"
    # ... of which each structure class among the feasible points (fit_predictor.structure_class:
    # stages, first stride, pre_down) holds at least its best this many (0: the best `rerank` alone)
    rerank_per_class: int = 0
    reference: str | None = None  # code or name of the published variant to beat (None: rank by mean)
    device: str = "cpu"  # where the zero-shot scores are computed
    # no other process writes the study (`run` holds the workdir lock exclusively and uses the
    # workdir's journal): a trial left RUNNING without a worker is abandoned at once
    sole_writer: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.rerank, bool) or not isinstance(self.rerank, int) or self.rerank < 0:
            raise InvalidInput(f"--rerank {self.rerank!r}: expected 0 (off) or a positive number of candidates")
        from ffnet_nas.budgets import RERANK_BY

        if self.rerank_by not in RERANK_BY:
            raise InvalidInput(f"--rerank-by {self.rerank_by!r}: expected one of {', '.join(RERANK_BY)}")
        if isinstance(self.rerank_per_class, bool) or not isinstance(self.rerank_per_class, int) \
                or self.rerank_per_class < 0:
            raise InvalidInput(f"--rerank-per-class {self.rerank_per_class!r}: expected an integer >= 0")


@dataclass(frozen=True)
class SearchOutput:
    result: object  # search.api.SearchResult
    predictors: object  # predictors.load.Predictors
    storage: object  # what the study is stored in (path or URL)
    paths: Mapping[str, Path] = field(default_factory=dict)  # table name -> file written
    to_evaluate: tuple[str, ...] = ()  # the best `evaluate_top` feasible points, best first
    reranked: object | None = None  # DataFrame (zero_shot.RERANKED_COLUMNS) when the list was re-ranked


def search(*, workspace: Workspace, request: SearchRequest, progress: bool = True) -> SearchOutput:
    from ffnet_nas.predictors import load as loading
    from ffnet_nas.search import tables
    from ffnet_nas.search.api import predictor_study_name, run_search, write_outputs

    if not isinstance(request.trials, int) or request.trials < 1:
        raise InvalidInput(f"--trials {request.trials}: expected a positive number of complete trials")
    if request.evaluate_top < 0:
        raise InvalidInput(f"--evaluate-top {request.evaluate_top}: expected 0 or a positive number of points")
    if request.study is not None and (not request.study.strip() or any(c in request.study for c in "/\\")
                                      or request.study.strip(".") == ""):
        # the study name becomes a folder under search/: `../../x` would write outside the workdir
        raise InvalidInput(f"--study {request.study!r}: expected a name without path separators, e.g. mobile-25ms")
    _check_library_covers(workspace, request.space)  # distill comes first: name it first
    preds = loading.load_predictors(lut_dir=workspace.lut_dir, predictor_dir=request.predictor_dir or workspace.predictor_dir,
                                    space=request.space, lut=request.lut)
    storage = request.storage or workspace.adopt_legacy_journal()
    study = request.study
    if study is None and request.study_per_predictors:
        study = predictor_study_name(request.space, request.targets, preds.objective_id)
    result = run_search(space=request.space, predict_latency_ms=preds.latency_ms, predict_miou=preds.miou,
                        targets=request.targets, n_trials=request.trials, sampler=request.sampler, storage=storage,
                        study_name=study, seed=request.seed, objective_id=preds.objective_id,
                        num_classes=request.num_classes, progress=progress, durable=request.durable,
                        sole_writer=request.sole_writer)
    reranked = _rerank(workspace, request, result, progress=progress) if request.rerank else None
    top = [] if not request.evaluate_top else (
        list(reranked["code"][:request.evaluate_top]) if reranked is not None
        else [r["code"] for r in tables.top_k(result.extra["rows"], result.pareto.to_dict("records"), request.evaluate_top)])
    paths = {}
    if request.out_dir is not None:
        out_dir = Path(request.out_dir) / result.study_name if request.study_subdir else Path(request.out_dir)
        # summary.json records the journal relative to the workdir: a copied workdir reads its own
        recorded = dataclasses.replace(result, storage=workspace.relative(result.storage)) \
            if result.storage != "memory" else result
        paths = write_outputs(recorded, out_dir, evaluate_top=request.evaluate_top, latest_dir=request.latest_dir,
                              to_evaluate=reranked, predictors=preds.description)
        if reranked is not None:
            from ffnet_nas.space.io import atomic_write_csv

            paths["reranked"] = atomic_write_csv(out_dir / "reranked.csv", reranked)
    return SearchOutput(result=result, predictors=preds, storage=storage, paths=paths, to_evaluate=tuple(top),
                        reranked=reranked)


def _check_library_covers(workspace: Workspace, space) -> None:
    """Refuse, before any trial, a space with blocks the workdir's library lacks (or failed to
    distil): the choices ridge would score such points, and the first one found would fail only
    when it is assembled for evaluation. A workdir without a library (objectives handed in) is not
    checked."""
    from ffnet_nas.distill.choices import space_choices
    from ffnet_nas.distill.library import BlockLibrary
    from ffnet_nas.fit_predictor import library_nsr

    library = BlockLibrary(workspace.library_dir)
    if not library.table_path.exists():
        return
    usable = library_nsr(workspace)
    needed = space_choices(space)
    missing = [f"{c.position}:{c.choice}" for c in needed if (c.position, c.choice) not in usable]
    if missing:
        raise InvalidInput(f"the block library {str(library.table_path)!r} lacks {len(missing)} of the {len(needed)} "
                           f"blocks space {space.name!r} needs (first: {missing[0]}), so a point found could not be "
                           f"assembled: run 'ffnet-nas distill --space {space.name}' (it distils only the missing ones)")


def rerank_pool(rows: list[dict], *, k: int, per_class: int = 0) -> list[dict]:
    """The `k` candidates to re-rank from `rows` (the search's order, best first): the best `per_class`
    of every structure class (`fit_predictor.structure_class`; the classes whose best comes first
    when they do not all fit), then the best of the rest, kept in the search's order.

    The search's predictor is fitted on a handful of design points and can leave a whole class out
    of the pool: on `synthetic:3` the 24 best by the ridge held no four-stage stride-4 point, and a
    refine round had to find them. With two of every class in the pool the quick budget's zero-shot
    stage still ranked them 5th and 8th, so no built-in budget sets it (docs/results.md, "A
    re-ranking pool that spans the structure classes"); it is there for a stage that ranks classes
    better, or a user's own."""
    if not per_class:
        return list(rows[:k])
    from collections import Counter

    from ffnet_nas.fit_predictor import structure_class

    held, reserved = Counter(), []
    for i, row in enumerate(rows):
        cls = structure_class(Arch.parse(row["code"]))
        if held[cls] < per_class:
            held[cls] += 1
            reserved.append(i)
    reserved = reserved[:k]
    taken = set(reserved)
    rest = [i for i in range(len(rows)) if i not in taken][:max(0, k - len(reserved))]
    return [rows[i] for i in sorted(reserved + rest)]


def _rerank(workspace: Workspace, request: SearchRequest, result, *, progress: bool):
    """The best `request.rerank` feasible points (front first, then by the search's predicted mIoU;
    published variants left out) re-ranked by their expected gain over the reference, with the mean
    and spread of `request.rerank_by`; None when that predictor (or stage) was not fitted."""
    from ffnet_nas.evaluate import Resources
    from ffnet_nas.fit_predictor import zero_shot_data_key
    from ffnet_nas.predictors.load import load_accuracy_predictor, load_zero_shot_predictor
    from ffnet_nas.search import tables
    from ffnet_nas.space.arch import resolve
    from ffnet_nas.space.catalogue import variants
    from ffnet_nas.zero_shot import STAGE_BN_BATCHES, rerank, rerank_by_predictor, zero_shot_scores

    log = logging.getLogger(__name__)
    folder = request.predictor_dir or workspace.predictor_dir
    # a published point is not a find; the reference is predicted beside the candidates
    reference = resolve(request.reference) if request.reference else None
    excluded = {v.arch.code for v in variants()} | ({reference.code} if reference else set())
    ranked = rerank_pool([r for r in tables.top_k(result.extra["rows"], result.pareto.to_dict("records"),
                                                  len(result.extra["rows"])) if r["code"] not in excluded],
                         k=request.rerank, per_class=request.rerank_per_class)
    stage = load_zero_shot_predictor(folder) if request.rerank_by == "zero-shot" else None
    # a stage fitted before it recalibrated: on held-out points its raw scores ranked below the ridge
    # (docs/results.md), so the ridge's mean and spread are the better of the two at hand
    stale = stage is not None and STAGE_BN_BATCHES > 0 and not int(stage.meta.get("bn_batches", 0))
    if stale:
        log.info("  the zero-shot stage in %s was fitted on scores without BatchNorm recalibration (an older fit): "
                 "re-ranked by the search's predictor instead; refit that folder's stage (the workdir's own: "
                 "'ffnet-nas fit-predictor --refit-only')", folder)
    if request.rerank_by == "predictor" or stale:
        predictor = load_accuracy_predictor(folder)
        if predictor is None:  # objectives handed in without a fitted file have no spread
            log.info("  no fitted accuracy predictor in %s: the list is ranked by the search's predicted mean", folder)
            return None
        frame = rerank_by_predictor(ranked, predictor=predictor, reference=reference)
        log.info("  re-ranked %d candidates by the search's predictor and its spread (LOO Kendall tau %.2f)",
                 len(frame), predictor.validation.kendall_tau)
        return frame
    if stage is None:
        log.info("  no zero-shot stage in %s: the list is ranked by the search's predicted mean", folder)
        return None
    r = Resources.load(workspace, predictor_dir=folder, score_at=stage.meta.get("score_at", "train"), lut=request.lut,
                       val_images=stage.meta.get("val_images"))
    scores = zero_shot_scores([resolve(c["code"]) for c in ranked] + ([reference] if reference else []),
                              workspace=workspace, val_ds=r.val_ds, val_images=stage.meta.get("val_images"),
                              data_key=zero_shot_data_key(r), train_ds=r.train_ds,
                              bn_batches=int(stage.meta.get("bn_batches", 0)), device=request.device, progress=progress)
    frame = rerank(ranked, stage=stage, scores=scores, reference=reference)
    log.info("  re-ranked %d candidates by the zero-shot stage (LOO Kendall tau %.2f)", len(frame),
             stage.validation.kendall_tau)
    return frame


# ---- full evaluation --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class EvaluateRequest:
    points: tuple[Arch, ...]
    finetune: TrainConfig
    val_images: int | None = None  # score on the first N validation images (None: all)
    init: str = "distilled"
    redo: bool = False
    lut: str | None = None  # the latency table's name when several fit (predictors.load rule)
    predictor_dir: Path | None = None  # the predictor whose mIoU the rows carry (None: the workdir's)
    device: str = "cpu"
    scheduler: str | None = None  # a Dask scheduler: the fine-tunes run on its workers (timing stays here)
    precision: str = "fp32"  # "int8": also score each point quantised (int8_miou)
    score_at: str = "train"  # the size the mIoU is scored at (evaluate.SCORE_AT)

    def __post_init__(self) -> None:
        _check_val_images(self.val_images)


@dataclass(frozen=True)
class EvaluateResult:
    rows: object  # DataFrame: one row per point asked (this init), as in evaluated.csv


def evaluate(*, workspace: Workspace, request: EvaluateRequest, progress: bool = True) -> EvaluateResult:
    from ffnet_nas.evaluate import evaluate_points

    rows = evaluate_points(request.points, workspace=workspace, config=request.finetune, val_images=request.val_images,
                           init=request.init, redo=request.redo, device=request.device, progress=progress,
                           predictor_dir=request.predictor_dir, lut=request.lut, scheduler=request.scheduler,
                           precision=request.precision, score_at=request.score_at)
    return EvaluateResult(rows=rows)


__all__ = ["EvaluateRequest", "EvaluateResult", "PredictorRequest", "PredictorResult", "SearchOutput", "SearchRequest",
           "evaluate", "fit_predictor", "rerank_pool", "search"]
