"""Fit the accuracy predictor from evaluated points (evaluating the missing ones first).

    predictor = fit_predictor(workspace=ws, space=get_space("mobile"), n=20, config=finetune_config(steps=300),
                              val_images=64)

Training data: every row of `evaluated.csv` with distilled initialisation whose blocks are all
in the library (so the predictor refits on everything evaluated so far, not only the N picked
now). Writes the predictor (`PREDICTOR_FILE`) and its leave-one-out table (`LOO_FILE`: measured
vs leave-one-out predicted mIoU per point, for the report) into the folder it is given, and the
zero-shot stage (`ZERO_SHOT_FILE`: the same points' recalibrated mIoU with no fine-tuning, `ffnet_nas.zero_shot`,
scored on the images their fine-tuned mIoU was, plus the output stride) beside it.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ffnet_nas.evaluate import evaluate_points, read_evaluated
from ffnet_nas.evaluate.int8 import fill_int8_miou
from ffnet_nas.settings import ACCURACY_COLUMNS, accuracy_column
from ffnet_nas.settings import TrainConfig
from ffnet_nas.workspace import Workspace
from ffnet_nas.predictors.accuracy import (DEFAULT_FEATURE_SET, FEATURE_SETS, LOO_FILE, PREDICTOR_FILE,
                                           ZERO_SHOT_FEATURE_SETS, ZERO_SHOT_FILE, AccuracyPredictor,
                                           feature_set_of, fit_accuracy_predictor, fit_feature_set, missing_blocks,
                                           nsr_table, zero_shot_features)
from ffnet_nas.space.arch import SEG_HEADS, STEMS, UP_HEADS, Arch
from ffnet_nas.space.catalogue import variants
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_write_csv

logger = logging.getLogger(__name__)


def library_nsr(workspace: Workspace) -> dict[tuple[str, str], float]:
    from ffnet_nas.distill.library import BlockLibrary

    library = BlockLibrary(workspace.library_dir)
    if not library.table_path.exists():
        raise InvalidInput(f"no block library table at {str(library.table_path)!r}: run 'ffnet-nas distill' first")
    return nsr_table(library.table().to_dict("records"))


def stored_feature_set(workspace: Workspace) -> str:
    """The feature set of the workdir's fitted predictor (a refit and a refine round keep it), else
    `DEFAULT_FEATURE_SET`; also the default, with a warning, when that file cannot be read (the fit
    about to run replaces it, so a damaged file must not block the fit that repairs it)."""
    path = workspace.predictor_dir / PREDICTOR_FILE
    if not path.exists():
        return DEFAULT_FEATURE_SET
    try:
        return feature_set_of(AccuracyPredictor.load(path).feature_names)
    except InvalidInput as e:
        logger.warning("%s; refitting on the %s features (--features chooses)", e, DEFAULT_FEATURE_SET)
        return DEFAULT_FEATURE_SET


def check_feature_set(name: str) -> str:
    if name not in FEATURE_SETS:
        raise InvalidInput(f"--features {name!r}: expected one of {', '.join(FEATURE_SETS)} "
                           "(route_free: what the point is made of, less how it reaches its stride; within_stride: "
                           "the same with stride levels unshrunk and stage depths; choices: all of it; nsr: its "
                           "distilled blocks' held-out NSR)")
    return name


def workdir_precision(workspace: Workspace) -> str:
    """The precision a workdir's accuracy is in (`settings.PRECISIONS`): what its predictor learned
    (`meta.accuracy`), else what its run judged by (run_summary.json's `accuracy`), else fp32. A
    refit without --precision keeps it, so it cannot turn an INT8 run's predictor into a float one."""
    from ffnet_nas.predictors.load import load_accuracy_predictor
    from ffnet_nas.run_summary import read_summary

    stored = load_accuracy_predictor(workspace.predictor_dir)
    column = stored.meta.get("accuracy") if stored is not None else None
    if column is None and workspace.run_summary_path.exists():
        column = read_summary(workspace.run_summary_path).accuracy
    return {v: k for k, v in ACCURACY_COLUMNS.items()}.get(column, "fp32")


def fit_from_table(workspace: Workspace, *, out_dir: str | Path | None = None, val_images: int | None = None,
                   score_at: str = "train", device: str = "cpu", progress: bool = True,
                   lut: str | None = None, feature_set: str | None = None, precision: str = "fp32") -> AccuracyPredictor:
    """Refit on every usable evaluated row; saves the predictor (on `feature_set`, a `FEATURE_SETS`
    key; None: `stored_feature_set`), the zero-shot stage (its scores on the first `val_images`
    validation images at `score_at`, as the rows were scored) and the LOO table in `out_dir`
    (default: the workdir's predictor folder). `precision` "int8": fitted on int8_miou (rows without
    it are left out), the accuracy an INT8 run ranks by; the predictor records which (`meta.accuracy`)."""
    column = accuracy_column(precision)
    feature_set = check_feature_set(feature_set or stored_feature_set(workspace))
    nsr = library_nsr(workspace)
    frame = read_evaluated(workspace.evaluated_path)
    frame = frame[frame["init"] == "distilled"] if len(frame) else frame
    if precision == "int8" and len(frame):  # rows evaluated in fp32 only are scored in INT8 first (once)
        fittable = [a for a in map(Arch.parse, frame["code"]) if not missing_blocks(a, nsr)]
        fill_int8_miou(fittable, workspace=workspace, val_images=val_images)
        frame = read_evaluated(workspace.evaluated_path)
        frame = frame[frame["init"] == "distilled"]
    values = frame[column] if column in frame.columns else pd.Series(np.nan, index=frame.index)
    usable = [(Arch.parse(c), float(m)) for c, m in zip(frame["code"], values)
              if pd.notna(m) and not missing_blocks(Arch.parse(c), nsr)]
    if not usable:
        how = "'ffnet-nas evaluate --precision int8 CODE...' (it scores the evaluated points in INT8)" if precision == "int8" \
            else "'ffnet-nas fit-predictor --n N' (it evaluates points) or 'ffnet-nas evaluate CODE...'"
        raise InvalidInput(f"no evaluated point in {str(workspace.evaluated_path)!r} has {column} and all its blocks in "
                           f"the library: run {how}")
    y = np.array([m for _, m in usable], dtype=float)
    predictor = fit_feature_set([a.code for a, _ in usable], y, feature_set=feature_set, nsr=nsr,
                                meta={"library": workspace.relative(workspace.library_dir), "n_evaluated": len(usable),
                                      "accuracy": column})
    out_dir = Path(out_dir) if out_dir is not None else workspace.predictor_dir
    archs = [a for a, _ in usable]
    # the stage scores on the fine-tunes' own images (quick: 256): on 80 held-out points the first 64 ranked
    # lower (-0.03 [-0.09, +0.01] overall, -0.13 [-0.28, -0.02] inside a stride group) while running 1.9x faster
    # (docs/results.md, "Z on fewer images")
    stage = fit_zero_shot_stage(workspace, archs, y, val_images=val_images, score_at=score_at, device=device,
                                progress=progress, lut=lut)
    # the column is the accuracy fitted (measured_miou, or int8_miou), so the table says what it holds
    loo = {"code": [a.code for a in archs], column: y, "loo_predicted_miou": predictor.validation.loo_predictions}
    if stage is not None:
        stage, scores = stage
        loo.update(zero_shot_miou=scores, zero_shot_loo_predicted_miou=stage.validation.loo_predictions)
        _save_if_changed(stage, out_dir / ZERO_SHOT_FILE)
    kept = _save_if_changed(predictor, out_dir / PREDICTOR_FILE)
    atomic_write_csv(out_dir / LOO_FILE, pd.DataFrame(loo))
    return kept


def _save_if_changed(predictor: AccuracyPredictor, path: Path) -> AccuracyPredictor:
    stored = AccuracyPredictor.load(path) if path.exists() else None
    if stored == predictor:
        # same data, same fit: keep the file (and its digest, which identifies the search study)
        return stored
    predictor.save(path)
    return predictor


def fit_zero_shot_stage(workspace: Workspace, archs: Sequence[Arch], y: np.ndarray, *, val_images: int | None,
                        score_at: str = "train", device: str = "cpu", progress: bool = True, lut: str | None = None):
    """(the zero-shot stage, the points' zero-shot mIoU) fitted on `archs` measured `y`, or None
    when the workdir has no teacher (the scores need its data and head) or there are too few points."""
    from ffnet_nas.evaluate import Resources
    from ffnet_nas.zero_shot import STAGE_BN_BATCHES, zero_shot_scores

    if len(archs) < 4 or not workspace.teacher_path.exists():
        return None
    # lut: the table the rows were timed with (a workdir may hold several; with score_at "input" it sets the size)
    r = Resources.load(workspace, score_at=score_at, lut=lut, val_images=val_images)
    scores = zero_shot_scores(archs, workspace=workspace, val_ds=r.val_ds, val_images=val_images,
                              data_key=zero_shot_data_key(r), train_ds=r.train_ds, bn_batches=STAGE_BN_BATCHES,
                              device=device, progress=progress)
    values = [scores[a.code] for a in archs]
    fits = []
    for names in ZERO_SHOT_FEATURE_SETS:
        x = np.stack([zero_shot_features(a, v, names) for a, v in zip(archs, values)])
        fits.append(fit_accuracy_predictor(x, y, codes=[a.code for a in archs], feature_names=names,
                                           meta={"val_images": val_images, "score_at": score_at,
                                                 "bn_batches": STAGE_BN_BATCHES, "n_evaluated": len(archs)}))
    return choose_by_loo_rank(fits), values


def choose_by_loo_rank(fits: Sequence[AccuracyPredictor]) -> AccuracyPredictor:
    """The fit whose leave-one-out predictions rank the points best (Kendall tau; an undefined tau
    counts as worst), the smaller LOO RMSE on a tie, the first listed after that (pure)."""
    def key(fit: AccuracyPredictor):
        tau = fit.validation.kendall_tau
        return (tau if np.isfinite(tau) else -np.inf, -fit.validation.rmse)

    best = max(range(len(fits)), key=lambda i: (key(fits[i]), -i))
    return fits[best]


def zero_shot_data_key(resources) -> str:
    """The data and scoring size of an `evaluate.Resources`: part of a zero-shot score's signature."""
    hw = resources.score_hw
    return f"{resources.data}@{'native' if hw is None else f'{hw[0]}x{hw[1]}'}"


def fit_predictor(*, workspace: Workspace, space, n: int, config: TrainConfig, val_images: int | None = None,
                  seed: int = 0, device: str = "cpu", progress: bool = True, lut: str | None = None,
                  scheduler: str | None = None, score_at: str = "train",
                  feature_set: str | None = None, precision: str = "fp32") -> AccuracyPredictor:
    """Evaluate a space-filling design of `n` points (fine-tuned with `config`, scored on the first
    `val_images` validation images, timed with the table `lut`; fine-tuned on the Dask cluster
    at `scheduler` when given), then `fit_from_table`."""
    if n < 4:
        raise InvalidInput(f"--n {n}: expected at least 4 points (the predictor is validated leave-one-out)")
    if feature_set is not None:
        check_feature_set(feature_set)  # before minutes of fine-tuning, not after
    published = [v.arch for v in variants()]
    points = select_points(space, n, seed=seed, published=published)
    nsr = library_nsr(workspace)
    lacking = {a.code: missing_blocks(a, nsr) for a in points if missing_blocks(a, nsr)}
    if lacking:
        code, blocks = next(iter(lacking.items()))
        raise InvalidInput(f"{len(lacking)} selected point(s) need blocks the library lacks, e.g. {code}: "
                           f"{', '.join(blocks)}; run 'ffnet-nas distill --space {space.name}' first")
    evaluate_points(points, workspace=workspace, config=config, val_images=val_images, device=device, progress=progress,
                    lut=lut, scheduler=scheduler, score_at=score_at, precision=precision)
    return fit_from_table(workspace, val_images=val_images, score_at=score_at, device=device, progress=progress,
                          lut=lut, feature_set=feature_set, precision=precision)


def structure_class(arch: Arch) -> tuple[int, int, bool]:
    """(stages, first-stage stride, pre_down): the choices that set the output stride, the largest
    single effect on mIoU (see predictors/accuracy.py); a design must see every class."""
    return arch.num_stages, arch.first_stride if arch.num_stages == 4 else 2, arch.pre_down


# The choices a "contrast" design varies one at a time: those that do not move the output stride
# and, inside a stride group, the ones measured to matter (the seg head first: docs/results.md)
CONTRAST_FIELDS = ("seg_head", "up_head", "stem")
DESIGNS = ("spread", "contrast")


def contrast_neighbours(arch: Arch, space, field: str) -> list[Arch]:
    """The points of `space` that differ from `arch` in `field` alone and keep its output stride."""
    levels = {"seg_head": SEG_HEADS, "up_head": UP_HEADS, "stem": STEMS}[field]
    out = []
    for level in levels:
        if level == getattr(arch, field):
            continue
        try:
            other = arch.replace(**{field: level})
        except (InvalidInput, ValueError):
            continue
        if other in space and other.output_stride == arch.output_stride:
            out.append(other)
    return out


def select_points(space, n: int, *, seed: int = 0, published: Sequence[Arch] = (), design: str = "spread",
                  already: Sequence[Arch] = ()) -> list[Arch]:
    """N points that spread over the space: up to half of them published variants, the rest from
    a random pool. Each pick comes from the structure class (`structure_class`) with the fewest
    points so far, and within it maximises the smallest Hamming distance (over the fields the
    point uses) to the points already picked — a stratified space-filling design, so the
    predictor's output-stride term is fitted on every class, not on whichever the pool favoured.

    `design="contrast"`: after the published half, one point of the random pool for each structure
    class not yet seen (by the rule above), then each pick is a point already picked with one choice
    changed (`CONTRAST_FIELDS` in turn; among the candidates, the class with the fewest points first,
    then the order the points were picked in: every candidate is at distance 1 from its source), so the
    design holds pairs of one stride that differ in one choice: what the predictor needs to learn a
    choice's effect inside a stride group. The random pool fills in where no such neighbour is left.
    `already`: points evaluated before (e.g. a finished run's), which count as picked but are not
    returned."""
    if design not in DESIGNS:
        raise InvalidInput(f"design {design!r}: expected one of {', '.join(DESIGNS)}")
    already = list(dict.fromkeys(already))
    published = [a for a in dict.fromkeys(published) if a in space]
    encoded: dict[Arch, tuple] = {}

    def code(a: Arch) -> tuple:
        if a not in encoded:
            # the other stage count's slots hold placeholders: leave them out of the distance
            encoded[a] = tuple((k, v) for k, v in space.encode(a).items()
                               if not k[0].isdigit() or k.startswith(f"{a.num_stages}stage"))
        return encoded[a]

    def distance(a: Arch, b: Arch) -> int:
        x, y = dict(code(a)), dict(code(b))
        return sum(x.get(k) != y.get(k) for k in x.keys() | y.keys())

    chosen: list[Arch] = list(already)
    n += len(already)

    def pick(candidates: list[Arch], k: int) -> None:
        candidates = [a for a in candidates if a not in chosen]
        for _ in range(min(k, len(candidates))):
            counts = Counter(structure_class(a) for a in chosen)
            fewest = min(counts[structure_class(a)] for a in candidates)
            least_seen = [a for a in candidates if counts[structure_class(a)] == fewest]
            best = max(least_seen, key=lambda a: min((distance(a, c) for c in chosen), default=0))
            candidates.remove(best)
            chosen.append(best)

    pool = space.sample_many(max(50 * n, 500), seed=seed)
    pick(published, min(len(published), (n - len(already) + 1) // 2))
    if design == "contrast":  # every structure class first (one point each), then the contrasts
        seen = {structure_class(a) for a in chosen}
        unseen = [a for a in pool if structure_class(a) not in seen]
        pick(unseen, min(len({structure_class(a) for a in unseen}), n - len(chosen)))
        for i in range(n - len(chosen)):
            for field in CONTRAST_FIELDS[i % len(CONTRAST_FIELDS):] + CONTRAST_FIELDS[:i % len(CONTRAST_FIELDS)]:
                candidates = list(dict.fromkeys(b for a in chosen for b in contrast_neighbours(a, space, field)))
                if any(b not in chosen for b in candidates):
                    pick(candidates, 1)
                    break
    pick(pool, n - len(chosen))
    return chosen[len(already):]
