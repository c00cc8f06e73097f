"""Is the accuracy predictor worth trusting? Held-out points, the yardstick against itself, the trivial rules.

    check = check_predictor(workspace=ws, space=get_space("mobile"), k=16, config=finetune_config(steps=100),
                            val_images=64)
    print(check.table())

On a finished workdir, `check_predictor` draws `k` points of the space that were never evaluated
(so the predictor never saw them; seeded), keeps those whose blocks are all in the library, and
measures each:

* fine-tuned and scored exactly as the workdir's evaluation does (`config`, first `val_images`
  validation images), once per fine-tuning seed (`seeds`, two): their mean is the truth every
  ranker is judged against, and the two seeds against each other are the yardstick's own
  repeatability, the ceiling no predictor can beat;
* the seed-0 model scored again on the next `val_images` images: seed-to-seed noise minus this
  scoring noise is what the fine-tuning itself adds (issue 13: measure where the noise comes from);
* the baselines a reviewer tries first: output stride alone, params, MACs, measured latency, two
  published zero-cost proxies on the assembled model (`ffnet_nas.predictors.zero_cost`: grad-norm
  and ZiCo), the assembled distilled model scored with no fine-tuning (as distilled, and with its
  BatchNorm statistics recalibrated: `ffnet_nas.zero_shot`), and `short_steps` steps of
  fine-tuning; and the predictor's zero-shot stage (what `--rerank-by zero-shot` re-ranks by).

`summarize` (pure) ranks the points by each and reports Kendall's tau against the truth with a
bootstrap 95% interval, overall and within the largest output-stride group, beside the predictor's
out-of-sample record in the run itself: every evaluated row whose mIoU was predicted before it was
measured (the points evaluated after a search and in refine rounds), and its leave-one-out tau.

Files (`Workspace.predictor_check_dir`): `measurements.csv`, one row per point and quantity, each
written (atomically) as it is measured, so a killed check resumes where it stopped; fine-tuning
resume states `<hash>-seed<s>.pt` (deleted when the fine-tune is scored); `summary.json`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ffnet_nas.evaluate import Resources, point_latency, read_evaluated
from ffnet_nas.settings import TrainConfig, autocast_dtype
from ffnet_nas.stats import Interval, kendall_interval
from ffnet_nas.workspace import Workspace
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_write_csv, atomic_write_json, read_checked_csv

logger = logging.getLogger(__name__)

MEASUREMENTS_FILE = "measurements.csv"
SUMMARY_FILE = "summary.json"
PROXY_BATCHES, PROXY_BATCH_SIZE = 2, 8  # ZiCo compares gradients across batches: two, as in its paper


@dataclass(frozen=True)
class Ranker:
    name: str
    overall: Interval  # Kendall tau vs the mean of the seeds, over all points
    within: Interval  # the same within the largest output-stride group


@dataclass(frozen=True)
class PredictorCheck:
    """What `check_predictor` found (see the module docstring); `table()` renders it."""

    n_points: int
    seeds: tuple[int, int]
    steps: int
    val_images: int | None
    largest_group: str  # e.g. "stride 8 (10 points)"
    yardstick: Interval  # tau between the two seeds' scores
    yardstick_within: Interval
    seed_difference: float  # mean |seed a - seed b| in mIoU
    scoring: Interval  # tau between the seed-a model on two disjoint image sets (NaN: too few images)
    scoring_difference: float  # mean |images A - images B| in mIoU
    rankers: tuple[Ranker, ...]
    out_of_sample: Interval  # the run's own predicted-before-measured rows
    out_of_sample_mae: float
    loo_tau: float  # the predictor's leave-one-out tau on its design
    predictor: str  # the folder of the predictor checked
    points: tuple[dict, ...]  # per point: code, stride, every quantity
    zero_shot_loo_tau: float = math.nan  # the zero-shot stage's leave-one-out tau (NaN: no stage)
    # the run's re-ranked points (search/reranked.csv) that were then evaluated: the stage's own
    # predicted-before-measured record
    zero_shot_out_of_sample: Interval | None = None
    zero_shot_out_of_sample_mae: float = math.nan
    # the same seeds' models scored on the first `fewer_images` images only (None: not measured)
    fewer_images: int | None = None
    yardstick_fewer: Interval | None = None
    yardstick_fewer_within: Interval | None = None
    seed_difference_fewer: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def table(self) -> str:
        """The check as a Markdown table, the yardstick first (what every other line is read against)."""
        a, b = self.seeds
        lines = [f"Predictor check: {self.n_points} held-out points, fine-tuned {self.steps} steps under seeds {a} and "
                 f"{b}, scored on {self.val_images or 'all'} validation images; Kendall tau vs the mean of the two "
                 f"seeds, bootstrap 95% interval. Largest group: {self.largest_group}.", "",
                 "| ranking by | tau, all points | tau, largest stride group |", "|---|---:|---:|",
                 f"| the other seed (the yardstick against itself; mean abs difference {self.seed_difference:.2f} mIoU) "
                 f"| {self.yardstick.text()} | {self.yardstick_within.text()} |",
                 f"| seed {a} scored on the next images (scoring noise alone; mean abs difference "
                 f"{self.scoring_difference:.2f} mIoU) | {self.scoring.text()} | |"]
        if self.yardstick_fewer is not None:
            lines.append(f"| the other seed, both scored on the first {self.fewer_images} images only (the same weights; "
                         f"mean abs difference {self.seed_difference_fewer:.2f} mIoU) | {self.yardstick_fewer.text()} | "
                         f"{self.yardstick_fewer_within.text()} |")
        lines += [f"| {r.name} | {r.overall.text()} | {r.within.text()} |" for r in self.rankers]
        lines += ["", f"The run's own out-of-sample record ({self.predictor}): {self.out_of_sample.n} points predicted "
                      f"before they were measured, tau {self.out_of_sample.text()}, mean abs error "
                      f"{self.out_of_sample_mae:.2f} mIoU; leave-one-out tau on its design {self.loo_tau:.2f}"
                      + (f" (zero-shot stage {self.zero_shot_loo_tau:.2f})." if math.isfinite(self.zero_shot_loo_tau)
                         else ".")]
        if self.zero_shot_out_of_sample is not None:
            lines.append(f"The zero-shot stage's: {self.zero_shot_out_of_sample.n} re-ranked points evaluated after the "
                         f"search, tau {self.zero_shot_out_of_sample.text()}, mean abs error "
                         f"{self.zero_shot_out_of_sample_mae:.2f} mIoU.")
        return "\n".join(lines)


@dataclass(frozen=True)
class RunSettings:
    """How a finished run evaluated its points: what the check must repeat to be comparable."""

    space: str
    config: TrainConfig
    val_images: int | None
    score_at: str


def run_settings(workspace: Workspace) -> RunSettings | None:
    """The space, fine-tuning and scoring of the `ffnet-nas run` that made the workdir (from its
    run_summary.json); None for a workdir built step by step (no summary)."""
    from ffnet_nas.space.io import read_json

    if not workspace.run_summary_path.exists():
        return None
    data = read_json(workspace.run_summary_path, what="run summary")
    try:
        provenance = data["provenance"]
        evaluate = provenance["budget"]["evaluate"]
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in evaluate["finetune"].items() if k in names})
        # `run --amp` overrides the budget's fine-tune (pipeline._finetune): repeat it, or a check of a
        # bf16 run would fine-tune in float32
        amp = autocast_dtype(provenance["config"].get("amp"))  # "fp32" (or null, before it was recorded): float32
        if amp:
            config = dataclasses.replace(config, amp=amp)
        return RunSettings(space=str(provenance["config"]["space"]), config=config,
                           val_images=evaluate.get("val_images"), score_at=str(evaluate.get("score_at", "train")))
    except (KeyError, TypeError) as e:
        raise InvalidInput(f"run summary {str(workspace.run_summary_path)!r} lacks the run's budget ({e}); expected "
                           "one written by 'ffnet-nas run' of this version (or give the fine-tuning flags)") from None


def latest_predictor_dir(workspace: Workspace):
    """The predictor the run used last: its latest refine round's, else the first one."""
    k = 1
    while (workspace.round_predictor_dir(k) / "accuracy.json").exists():
        k += 1
    return workspace.round_predictor_dir(k - 1) if k > 1 else workspace.predictor_dir


def draw_points(space, k: int, *, seed: int, exclude: set[str], nsr) -> list[Arch]:
    """`k` distinct random points of `space` not in `exclude`, all of whose blocks `nsr` holds."""
    from ffnet_nas.predictors.accuracy import missing_blocks

    chosen: dict[str, Arch] = {}
    for a in space.sample_many(max(40 * k, 400), seed=seed):
        if a.code not in exclude and a.code not in chosen and not missing_blocks(a, nsr):
            chosen[a.code] = a
            if len(chosen) == k:
                break
    if len(chosen) < k:
        raise InvalidInput(f"only {len(chosen)} never-evaluated points of space {space.name!r} have all their blocks "
                           f"in the library; expected {k} (ask for fewer with --check, or distill the space)")
    return list(chosen.values())


def check_predictor(*, workspace: Workspace, space, k: int, config: TrainConfig, val_images: int | None,
                    seeds: Sequence[int] = (0, 1), short_steps: int = 10, draw_seed: int = 0, device: str = "cpu",
                    lut: str | None = None, score_at: str = "train", val_split: int | None = None,
                    fewer_images: int | None = None, progress: bool = True) -> PredictorCheck:
    """Measure `k` held-out points (module docstring), write the files, and summarise. `val_split`:
    generate that many embedded validation images instead of the split's default (to measure a
    yardstick scored on more images; the embedded data only). `fewer_images`: also score both seeds'
    models and the distilled model on the first that many images, so the yardstick is measured at
    two image counts on the very same fine-tuned weights (where its noise comes from)."""
    from tqdm.auto import tqdm

    from ffnet_nas.predictors.accuracy import feature_set_of, nsr_table, zero_shot_features
    from ffnet_nas.predictors.load import load_accuracy_predictor, load_zero_shot_predictor
    from ffnet_nas.distill.library import BlockLibrary

    if k < 4:
        raise InvalidInput(f"--check {k}: expected at least 4 points (a rank correlation of fewer says nothing)")
    seeds = tuple(int(s) for s in seeds)
    if len(seeds) != 2 or seeds[0] == seeds[1]:
        raise InvalidInput(f"seeds {seeds}: expected two different fine-tuning seeds")
    if fewer_images is not None and not (0 < fewer_images < (val_images or math.inf)):
        raise InvalidInput(f"fewer_images {fewer_images}: expected a positive count below the {val_images} images scored")
    if not 1 <= short_steps < config.steps:
        raise InvalidInput(f"short_steps {short_steps}: expected 1 to {config.steps - 1} (fewer than the budget's steps)")
    predictor_dir = latest_predictor_dir(workspace)
    predictor = load_accuracy_predictor(predictor_dir)
    if predictor is None:
        raise InvalidInput(f"no accuracy predictor in {str(workspace.predictor_dir)!r}: run 'ffnet-nas fit-predictor' "
                           "(or 'ffnet-nas run') first")
    evaluated = read_evaluated(workspace.evaluated_path)
    nsr = nsr_table(BlockLibrary(workspace.library_dir).table().to_dict("records"))
    points = draw_points(space, k, seed=draw_seed, exclude=set(evaluated["code"]) if len(evaluated) else set(), nsr=nsr)
    r = Resources.load(workspace, predictor_dir=predictor_dir, lut=lut, score_at=score_at, val_images=val_images,
                       val_split=val_split)
    folder = workspace.predictor_check_dir
    folder.mkdir(parents=True, exist_ok=True)
    store = _Store(folder / MEASUREMENTS_FILE)
    for arch in tqdm(points, desc="predictor check", unit="point", disable=not progress, dynamic_ncols=True):
        _measure(arch, store=store, r=r, workspace=workspace, config=config, val_images=val_images, seeds=seeds,
                 short_steps=short_steps, device=device, fewer_images=fewer_images)
    stage = load_zero_shot_predictor(predictor_dir)
    feature_set = feature_set_of(predictor.feature_names)
    others = other_ridges(predictor, evaluated, nsr)
    rows = []
    for arch in points:
        cx = r.complexity(arch)
        rows.append({"code": arch.code, "stride": arch.output_stride, "params": cx.params, "macs": cx.macs,
                     "predicted": predictor.predict(arch), **store.values(arch.code)})
        for key, other in others.items():
            rows[-1][f"predicted_{key}"] = other.predict(arch, nsr)
        if stage is not None:  # the search's second stage, from the zero-shot score it was fitted on
            zs = rows[-1]["zero_shot_bn" if stage.meta.get("bn_batches") else "zero_shot"]
            rows[-1]["predicted_zero_shot"] = float(
                stage.predict_with_std(zero_shot_features(arch, zs, stage.feature_names))[0][0])
    check = summarize(pd.DataFrame(rows), seeds=seeds, short_steps=short_steps, evaluated=evaluated,
                      loo_tau=predictor.validation.kendall_tau, predictor=workspace.relative(predictor_dir),
                      steps=config.steps, val_images=val_images, fewer_images=fewer_images, feature_set=feature_set)
    if stage is not None:
        check = dataclasses.replace(check, zero_shot_loo_tau=float(stage.validation.kendall_tau),
                                    **_staged_record(workspace.search_dir / "reranked.csv", evaluated))
    atomic_write_json(folder / SUMMARY_FILE, check.to_dict())
    logger.info("predictor check: wrote %s and %s", folder / MEASUREMENTS_FILE, folder / SUMMARY_FILE)
    return check


def other_ridges(predictor, evaluated: pd.DataFrame, nsr) -> dict:
    """The ridges on the feature sets the run's predictor does not use, each fitted in memory on the
    very points and mIoU it was fitted on (`predictors.accuracy.refit_on`), by feature set: which
    features rank this run's held-out points better is then a line apart in the table. Empty when
    those rows are gone."""
    from ffnet_nas.evaluate import distilled_miou
    from ffnet_nas.predictors.accuracy import FEATURE_SETS, feature_set_of, refit_on

    own, measured = feature_set_of(predictor.feature_names), distilled_miou(evaluated)
    fitted = {key: refit_on(predictor.codes, measured, feature_set=key, nsr=nsr) for key in FEATURE_SETS if key != own}
    return {key: ridge for key, ridge in fitted.items() if ridge is not None}


def _staged_record(reranked_path, evaluated: pd.DataFrame) -> dict:
    """The zero-shot stage's predictions in the run's re-ranked list against what those points then
    measured (distilled rows of `evaluated`); empty without the list, or when the list was re-ranked
    by the predictor itself (no zero-shot scores: its record is the predictor's out-of-sample one)."""
    if not reranked_path.exists() or not len(evaluated):
        return {}
    listed = pd.read_csv(reranked_path)
    if not {"code", "miou"} <= set(listed.columns) or not listed.get("zero_shot_miou", pd.Series(dtype=float)).notna().any():
        return {}
    from ffnet_nas.evaluate import distilled_miou

    measured = distilled_miou(evaluated)
    both = listed[listed["code"].isin(measured)]
    p, m = both["miou"].to_numpy(float), np.array([measured[c] for c in both["code"]], float)
    return {"zero_shot_out_of_sample": kendall_interval(p, m),
            "zero_shot_out_of_sample_mae": float(np.mean(np.abs(p - m))) if len(p) else math.nan}


class _Store:
    """measurements.csv: (code, quantity, value) rows, rewritten atomically after each measurement."""

    def __init__(self, path):
        self.path = path
        frame = (read_checked_csv(path, what="predictor check measurements", required=("code", "quantity", "value"),
                                  key=("code", "quantity"), finite=("value",),
                                  fix="delete the file to measure those points again")
                 if path.exists() else pd.DataFrame(columns=["code", "quantity", "value"]))
        self.done = {(str(c), str(q)): float(v) for c, q, v in zip(frame["code"], frame["quantity"], frame["value"])}

    def has(self, code: str, quantity: str) -> bool:
        return (code, quantity) in self.done

    def put(self, code: str, quantity: str, value: float) -> None:
        self.done[(code, quantity)] = float(value)
        atomic_write_csv(self.path, pd.DataFrame([{"code": c, "quantity": q, "value": v} for (c, q), v in self.done.items()]))

    def values(self, code: str) -> dict[str, float]:
        return {q: v for (c, q), v in self.done.items() if c == code}


def _measure(arch: Arch, *, store: _Store, r: Resources, workspace: Workspace, config: TrainConfig,
             val_images: int | None, seeds: tuple[int, int], short_steps: int, device: str,
             fewer_images: int | None = None) -> None:
    """Every quantity of one point that `store` lacks."""
    from ffnet_nas.distill.assemble import assemble
    from ffnet_nas.data import fixed_batches
    from ffnet_nas.predictors.zero_cost import grad_norm, zico
    from ffnet_nas.training import evaluate, train
    from ffnet_nas.zero_shot import BN_BATCHES, score_point

    code, folder = arch.code, workspace.predictor_check_dir
    # the next val_images images, disjoint from the scored ones, when the split has them
    second = val_images if val_images is not None and 2 * val_images <= len(r.val_ds) else None

    def score(model, start: int = 0, limit: int | None = val_images) -> float:
        return 100 * evaluate(model.eval(), r.val_ds, device=device, start=start, limit=limit, progress=False).miou

    few = f"@{fewer_images}" if fewer_images else None
    if not store.has(code, "zero_shot") or (few and not store.has(code, "zero_shot" + few)):
        model = assemble(arch, workspace.library_dir)
        store.put(code, "zero_shot", score(model))
        if few:
            store.put(code, "zero_shot" + few, score(model, limit=fewer_images))
    if not store.has(code, "zero_shot_bn"):
        store.put(code, "zero_shot_bn", score_point(arch, library=workspace.library_dir, val_ds=r.val_ds,
                                                    val_images=val_images, train_ds=r.train_ds, bn_batches=BN_BATCHES,
                                                    device=device))
    if not (store.has(code, "grad_norm") and store.has(code, "zico")):
        batches = fixed_batches(r.train_ds, batch_size=PROXY_BATCH_SIZE, n_batches=PROXY_BATCHES, seed=0)
        model = assemble(arch, workspace.library_dir)
        store.put(code, "grad_norm", grad_norm(model, batches))
        store.put(code, "zico", zico(model, batches))
    if not store.has(code, f"short{short_steps}"):
        store.put(code, f"short{short_steps}", short_finetune(arch, r=r, workspace=workspace, config=config,
                                                              steps=short_steps, seed=seeds[0], val_images=val_images,
                                                              device=device))
    for s in seeds:
        # a seed fine-tuned again (a quantity missing) has every score put again, so all of a seed's
        # scores come from the same weights even where the fine-tuning is not bit-for-bit repeatable
        if (store.has(code, f"seed{s}") and (s != seeds[0] or second is None or store.has(code, "images_b"))
                and (not few or store.has(code, f"seed{s}{few}"))):
            continue
        model = assemble(arch, workspace.library_dir)
        state = folder / f"{arch.stable_hash}-seed{s}.pt"
        train(model, r.train_ds, config=dataclasses.replace(config, seed=s), checkpoint_path=state, teacher=r.teacher,
              device=device, progress=False, desc=f"check {arch.stable_hash} seed {s}",
              fingerprint={"init": "distilled", "data": r.data})
        store.put(code, f"seed{s}", score(model))
        if few:
            store.put(code, f"seed{s}{few}", score(model, limit=fewer_images))
        if s == seeds[0] and second is not None:
            store.put(code, "images_b", score(model, start=second))
        state.unlink(missing_ok=True)
    if r.table is not None and not store.has(code, "latency_ms"):
        store.put(code, "latency_ms", point_latency(arch, r.table)[1])


def short_finetune(arch: Arch, *, r: Resources, workspace: Workspace, config: TrainConfig, steps: int, seed: int,
                   val_images: int | None, device: str = "cpu") -> float:
    """mIoU of the assembled distilled model after `steps` steps of `config`'s fine-tune under `seed`:
    the check's short-fine-tune baseline (and bench_short_finetunes' other seeds and lengths)."""
    from ffnet_nas.distill.assemble import assemble
    from ffnet_nas.training import evaluate, train

    model = assemble(arch, workspace.library_dir)
    train(model, r.train_ds, config=dataclasses.replace(config, steps=steps, seed=seed), teacher=r.teacher,
          device=device, progress=False, fingerprint={"init": "distilled", "data": r.data})
    return 100 * evaluate(model.eval(), r.val_ds, device=device, limit=val_images, progress=False).miou


def largest_group(strides: np.ndarray) -> tuple[int, np.ndarray]:
    """The most common output stride (the smaller one on a tie: np.unique sorts) and the mask of
    the points that have it: the group within which a ranking must resolve architectures."""
    values, counts = np.unique(strides, return_counts=True)
    group = values[np.argmax(counts)]
    return group, strides == group


def summarize(points: pd.DataFrame, *, seeds: tuple[int, int], short_steps: int, evaluated: pd.DataFrame,
              loo_tau: float, predictor: str, steps: int, val_images: int | None,
              feature_set: str, fewer_images: int | None = None) -> PredictorCheck:
    """The check's figures from its per-point table (pure; see the module docstring)."""
    a, b = (points[f"seed{s}"].to_numpy(float) for s in seeds)
    truth = (a + b) / 2
    strides = points["stride"].to_numpy()
    group, inside = largest_group(strides)

    def both(score: np.ndarray, target: np.ndarray = truth, *, ties_at_random: bool = False) -> tuple[Interval, Interval]:
        return (kendall_interval(score, target, ties_at_random=ties_at_random),
                kendall_interval(score[inside], target[inside], ties_at_random=ties_at_random))

    def column(name: str) -> np.ndarray:
        return points[name].to_numpy(float) if name in points else np.full(len(points), np.nan)

    from ffnet_nas.predictors.accuracy import FEATURE_SET_LABELS, FEATURE_SETS

    others = [(key, column(f"predicted_{key}")) for key in FEATURE_SETS if key != feature_set]
    stride_first = -strides.astype(float)
    # (name, score, ties broken at random). Plain tau-b leaves a ranker's tied pairs out, which
    # flatters stride alone (it ties every pair inside a group); its second row breaks those ties at
    # random, which is what a search choosing among one stride's points by stride gets (stats._tau_b)
    candidates = [(f"accuracy predictor ({FEATURE_SET_LABELS[feature_set]}, every point of the search)",
                   column("predicted"), False),
                  # left out where it could not be fitted (or in an older check's table)
                  *[(f"the {FEATURE_SET_LABELS[key]} on the same design points (not used by this run)", score, False)
                    for key, score in others if np.isfinite(score).any()],
                  ("accuracy predictor, zero-shot stage (the re-ranking of --rerank-by zero-shot)",
                   column("predicted_zero_shot"), False),
                  ("output stride alone (smaller first)", stride_first, False),
                  ("output stride alone, ties broken at random (what choosing by it gets)", stride_first, True),
                  ("params", column("params"), False), ("MACs", column("macs"), False),
                  ("measured latency", column("latency_ms"), False),
                  ("grad-norm (zero-cost)", column("grad_norm"), False), ("ZiCo (zero-cost)", column("zico"), False),
                  ("distilled model, no fine-tuning", column("zero_shot"), False),
                  ("distilled model, BatchNorm recalibrated, no fine-tuning", column("zero_shot_bn"), False),
                  (f"{short_steps} fine-tuning steps", column(f"short{short_steps}"), False)]
    if fewer_images:
        candidates.append((f"distilled model, no fine-tuning, first {fewer_images} images",
                           column(f"zero_shot@{fewer_images}"), False))
    rankers = tuple(Ranker(name, *both(score, ties_at_random=by_chance)) for name, score, by_chance in candidates)
    yardstick, yardstick_within = both(a, b)
    fewer = {}
    if fewer_images:
        fa, fb = (column(f"seed{s}@{fewer_images}") for s in seeds)
        fewer = dict(zip(("yardstick_fewer", "yardstick_fewer_within"), both(fa, fb)),
                     fewer_images=fewer_images, seed_difference_fewer=float(np.mean(np.abs(fa - fb))))
    images_b = column("images_b")
    done = evaluated[(evaluated["init"] == "distilled") & evaluated["predicted_miou"].notna()] if len(evaluated) else evaluated
    oos_p = done["predicted_miou"].to_numpy(float) if len(done) else np.zeros(0)
    oos_m = done["measured_miou"].to_numpy(float) if len(done) else np.zeros(0)
    return PredictorCheck(
        n_points=len(points), seeds=seeds, steps=steps, val_images=val_images,
        largest_group=f"stride {int(group)} ({int(inside.sum())} points)",
        yardstick=yardstick, yardstick_within=yardstick_within, seed_difference=float(np.mean(np.abs(a - b))),
        scoring=kendall_interval(a, images_b), scoring_difference=float(np.nanmean(np.abs(a - images_b)))
        if np.isfinite(images_b).any() else math.nan,
        rankers=rankers, out_of_sample=kendall_interval(oos_p, oos_m),
        out_of_sample_mae=float(np.mean(np.abs(oos_p - oos_m))) if len(oos_p) else math.nan,
        loo_tau=float(loo_tau), predictor=predictor, points=tuple(points.to_dict("records")), **fewer)


__all__ = ["PredictorCheck", "Ranker", "RunSettings", "run_settings", "check_predictor", "draw_points", "largest_group",
           "latest_predictor_dir", "other_ridges", "summarize"]
