"""Which features should the accuracy predictor read? Every feature set, fitted on a run's own design,
ranked against the held-out truth of one or more predictor checks, pooled, with paired intervals.

    .venv/bin/python -m bench.bench_predictor_features CHECK_WORKDIR [CHECK_WORKDIR ...]

Each CHECK_WORKDIR is a finished `bench.bench_predictor --out` folder (or a workdir after
`ffnet-nas fit-predictor --check K`): its predictor/check/summary.json holds K held-out points with
two fine-tuning seeds each (their mean is the truth) and the rules a reviewer tries first. For each
folder, every `predictors.accuracy.FEATURE_SETS` ridge is fitted (in memory) on exactly the design
points and mIoU the run's own predictor was fitted on, and ranks that folder's held-out points.
Nothing is fine-tuned, so it takes seconds.

Prints, per folder and pooled over the folders (a tau is the mean of the per-folder taus; points are
resampled within their folder, and no pair across folders is ranked): Kendall tau with a bootstrap
95% interval, overall and within each folder's largest output-stride group, and each ranker's paired
difference from output stride alone (`ffnet_nas.stats.kendall_difference`): an interval above zero is
what "beats stride alone" means. Twice: as plain tau-b, which leaves the pairs stride ties out of its
denominator, and with every ranker's ties broken at random (in expectation), which is what ranking by
stride and then choosing among the points of one stride could do. Besides the `FEATURE_SETS` ridges
it fits one candidate, the choices plus choice x stride interactions, and, given two folders or
more of one design, two ridges fitted on the other folders' held-out points (their 10-step scores;
their truth) in place of the run's design: does the ridge want more, cheaper design points? Pooled,
the default feature set's ridge is paired against each other ridge and stage. The yardstick's row carries its own
paired lead over stride (one seed ranking the other, beside stride ranking it): the most any ranker
could be shown to lead stride by on those points. Per folder, the yardstick is split
into pairs of one stride and pairs across strides (`yardstick_pairs`). Read after the fact (docs/results.md,
"What orders the points of one stride under F"): the choices ridge without the two indicators of how a
point reaches its stride (`predictors.accuracy.ROUTE_FEATURES`; since 2026-12-06 the feature set
"route_free"), the rule "stride, then seg head C before B", and, pooled,
what each level of a choice adds inside a stride group (`within_group_effects`). Two folders whose workdirs
drew the *same* held-out points (the same --draw-seed on the same library) are one sample, not two;
give folders with different draws.
Issue 13, item 3 (docs/results.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ffnet_nas.space import Arch
from ffnet_nas.stats import pairs_by_group


def held_out(folder: Path) -> pd.DataFrame:
    """The check's points (summary.json) with the truth and every feature set's prediction."""
    from bench._workdir import check_points
    from ffnet_nas.evaluate import distilled_miou, read_evaluated
    from ffnet_nas.fit_predictor import library_nsr
    from ffnet_nas.predictor_check import latest_predictor_dir
    from ffnet_nas.predictors.accuracy import FEATURE_SETS, AccuracyPredictor, refit_on
    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.workspace import Workspace

    ws = Workspace(folder)
    points, _ = check_points(folder)
    run_predictor = AccuracyPredictor.load(latest_predictor_dir(ws) / "accuracy.json")
    evaluated = read_evaluated(ws.evaluated_path)
    measured = distilled_miou(evaluated)
    codes = list(run_predictor.codes)
    nsr = library_nsr(ws)
    for name in FEATURE_SETS:
        ridge = refit_on(codes, measured, feature_set=name, nsr=nsr)
        if ridge is None:
            raise InvalidInput(f"{str(ws.evaluated_path)!r} lacks design points the run's predictor was fitted on")
        points[f"ridge_{name}"] = [ridge.predict(c, nsr) for c in points["code"]]
    points["ridge_interactions"] = _interaction_ridge(codes, [measured[c] for c in codes], list(points["code"]))
    points["stride_then_seg"] = stride_first(points["stride"], [float(Arch.parse(c).seg_head == "C") for c in points["code"]])
    for column, values in zero_shot_candidates(latest_predictor_dir(ws), points).items():
        points[column] = values
    points["folder"] = str(folder)
    points["n_design"] = len(codes)
    # runs whose designs match (codes and measured mIoU) share one teacher, library and fine-tune:
    # only their points' mIoU are on one scale, so only they may label each other's ridges
    design = json.dumps(sorted((c, round(measured[c], 6)) for c in codes))
    points["design"] = hashlib.sha256(design.encode()).hexdigest()[:16]
    return points


def stride_first(strides, within) -> list[float]:
    """One score per point that ranks by output stride first (4 before 8 before 16) and by `within`
    (higher first) among the points of one stride: the rules "stride, then X". The stride term is
    scaled past the spread of `within`, so no value of it can overtake a smaller stride. (Pure.)"""
    within = np.asarray(within, float)
    spread = float(np.nanmax(within) - np.nanmin(within)) if np.isfinite(within).any() else 0.0
    return list(-(spread + 1.0) * np.log2(np.asarray(strides, float)) + within)


def _with_interactions(codes: list[str]) -> np.ndarray:
    """The choices features plus each indicator times log2 output stride: may a choice matter
    differently at another stride? (A candidate, not a `FEATURE_SETS` member: docs/results.md.)"""
    from ffnet_nas.predictors.accuracy import choice_features

    x = np.stack([choice_features(c) for c in codes])  # [log2 stride, indicators..., log10 params]
    return np.hstack([x, x[:, 1:-1] * x[:, :1]])


def _interaction_ridge(codes: list[str], measured: list[float], query: list[str]) -> list[float]:
    from ffnet_nas.predictors.accuracy import CHOICE_FEATURES, fit_accuracy_predictor

    names = tuple(CHOICE_FEATURES) + tuple(f"{n} x log2 stride" for n in CHOICE_FEATURES[1:-1])
    ridge = fit_accuracy_predictor(_with_interactions(codes), np.asarray(measured, float), codes=codes,
                                   feature_names=names)
    return list(ridge.predict_features(_with_interactions(query)))


# the categorical choices whose effect inside a stride group `within_group_effects` reads
EFFECT_CHOICES = ("seg_head", "up_head", "stem", "pre_down", "first_stride")


def within_group_effects(points: pd.DataFrame) -> pd.DataFrame:
    """What separates points of one stride: each point's truth minus the mean of its stride group
    (per folder, so two runs' scales never mix), averaged per level of each choice, with its standard
    error and count. Pure."""
    frame = points.copy()
    keys = [frame["folder"], frame["stride"]] if "folder" in frame else [frame["stride"]]
    frame["residual"] = frame["truth"] - frame.groupby(keys)["truth"].transform("mean")
    group = pd.factorize(pd.MultiIndex.from_arrays(keys))[0]
    rows = []
    arches = [Arch.parse(c) for c in frame["code"]]
    for choice in EFFECT_CHOICES:
        levels = pd.Series([str(getattr(a, choice)) for a in arches], index=frame.index)
        contrasts = _level_contrasts(frame["truth"].to_numpy(float), group, levels.to_numpy())
        for level, part in frame.groupby(levels):
            r = part["residual"].to_numpy(float)
            rows.append({"choice": choice, "level": level, "points": len(r), "mean": float(r.mean()),
                         "sem": float(r.std(ddof=1) / math.sqrt(len(r))) if len(r) > 1 else float("nan"),
                         **contrasts.get(level, {"vs_first": float("nan"), "vs_first_se": float("nan")})})
    return pd.DataFrame(rows)


def _level_contrasts(truth: np.ndarray, group: np.ndarray, levels: np.ndarray) -> dict[str, dict[str, float]]:
    """Each level's effect against the first level (sorted) inside the groups, with its standard error:
    least squares of the truth on one intercept per group and one indicator per other level (the
    residuals of a group sum to zero, so their plain standard errors would not do). The first level
    gets 0 +- 0; no estimate (NaN) when the fit has no residual degree of freedom."""
    names = sorted(set(levels))
    x = np.hstack([np.eye(group.max() + 1)[group], np.stack([levels == n for n in names[1:]], axis=1).astype(float)
                   if len(names) > 1 else np.zeros((len(levels), 0))])
    coef, _, rank, _ = np.linalg.lstsq(x, truth, rcond=None)
    dof = len(truth) - rank
    out = {names[0]: {"vs_first": 0.0, "vs_first_se": 0.0}}
    if dof <= 0 or rank < x.shape[1]:
        return {n: {"vs_first": float("nan"), "vs_first_se": float("nan")} for n in names} | out
    sigma2 = float(np.sum((truth - x @ coef) ** 2) / dof)
    cov = sigma2 * np.linalg.inv(x.T @ x)
    first = group.max() + 1
    for i, name in enumerate(names[1:]):
        out[name] = {"vs_first": float(coef[first + i]), "vs_first_se": float(math.sqrt(cov[first + i, first + i]))}
    return out


def zero_shot_candidates(predictor_dir: Path, points: pd.DataFrame) -> dict[str, list[float]]:
    """Three rankers that read the distilled model's score (issue 13, item 3; declared in
    docs/results.md before their first reading), fitted on the design the run's zero-shot stage was
    fitted on (its loo.csv: each design point's measured and zero-shot mIoU), ranking `points` by
    their own zero-shot scores (the column the stage reads):

    - `zs_stride`: the zero-shot stage with its stride term always on (a ridge on the score and
      log2 output stride), where the run's stage keeps whichever of score-alone and score+stride
      ranks its design better leave-one-out;
    - `choices_zs`: the choices ridge with the score as one more feature;
    - `stride_then_zs`: output stride first, the score among points of one stride (a fixed rule).

    Empty when the run fitted no zero-shot stage. (Reads files; fits in memory.)"""
    from ffnet_nas.predictors.accuracy import (CHOICE_FEATURES, LOO_FILE, ZERO_SHOT_FEATURES, choice_features,
                                               fit_accuracy_predictor, zero_shot_features)
    from ffnet_nas.predictors.load import load_zero_shot_predictor

    stage = load_zero_shot_predictor(predictor_dir)
    loo_path = Path(predictor_dir) / LOO_FILE
    if stage is None or not loo_path.exists():
        return {}
    design = pd.read_csv(loo_path)
    label = next(c for c in design.columns if c in ("measured_miou", "int8_miou"))
    design = design[np.isfinite(design["zero_shot_miou"].to_numpy(float))]
    codes, y = list(design["code"]), design[label].to_numpy(float)
    zs_design = design["zero_shot_miou"].to_numpy(float)
    zs = points["zero_shot_bn" if stage.meta.get("bn_batches") else "zero_shot"].to_numpy(float)
    query = list(points["code"])

    def stage_x(cs, scores):
        return np.stack([zero_shot_features(c, v, ZERO_SHOT_FEATURES) for c, v in zip(cs, scores)])

    with_stride = fit_accuracy_predictor(stage_x(codes, zs_design), y, codes=codes, feature_names=ZERO_SHOT_FEATURES)

    def choices_x(cs, scores):
        return np.hstack([np.stack([choice_features(c) for c in cs]), np.asarray(scores, float)[:, None]])

    combined = fit_accuracy_predictor(choices_x(codes, zs_design), y, codes=codes,
                                      feature_names=tuple(CHOICE_FEATURES) + ("zero_shot_miou",))
    return {"zs_stride": list(with_stride.predict_features(stage_x(query, zs))),
            "choices_zs": list(combined.predict_features(choices_x(query, zs))),
            "stride_then_zs": stride_first(points["stride"], zs)}


def other_checks_ridges(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Each folder's points with two more rankers: choices ridges fitted on *the other folders'*
    held-out points instead of the run's design, one on their 10-step scores (many cheap labels: 10
    steps cost a tenth of a design point's fine-tune), one on their truth (as many full-cost labels),
    with `n_<column>` the points each was fitted on. Does the ridge want more design points, or other
    features? (Issue 13, item 3: "more and cheaper design points".) Only folders of the same design
    (same run setup: one mIoU scale) label each other, a point never labels itself (draws of one
    library may share a point), and points without a finite label are left out. A folder with no
    such neighbours gets no column. (Pure: new frames.)"""
    from ffnet_nas.predictors.accuracy import fit_feature_set

    out = []
    for i, frame in enumerate(frames):
        frame = frame.copy()
        others = [f for j, f in enumerate(frames) if j != i and (f["design"] == frame["design"].iloc[0]).all()]
        others = pd.concat(others, ignore_index=True) if others else pd.DataFrame(columns=["code"])
        others = others[~others["code"].isin(set(frame["code"]))]
        for label, column in (("short10", "ridge_others_short10"), ("truth", "ridge_others_truth")):
            if label not in others:
                continue  # checks run without the short fine-tune
            usable = others[np.isfinite(others[label].to_numpy(float))]
            if len(usable) < 4:
                continue
            ridge = fit_feature_set(list(usable["code"]), usable[label].to_numpy(float), feature_set="choices", nsr={})
            frame[column] = [ridge.predict(c, {}) for c in frame["code"]]
            frame[f"n_{column}"] = len(usable)
        out.append(frame)
    return out


@dataclass(frozen=True)
class YardstickPairs:
    """The yardstick (seed a against seed b) split by pair; taus are (concordant - discordant) / pairs."""

    within_share: float  # of all pairs, those whose two points share an output stride
    within: float  # the seeds' tau on those pairs (NaN: none)
    across: float  # on the pairs across strides (NaN: none)
    overall: float
    within_needed: float  # the within tau that would lift the overall tau to the target, across as it is
    seed_sd: float  # one seed's noise: the standard deviation of seed a - seed b, over sqrt(2)
    truth_sd: float  # the two-seed mean's standard deviation inside a stride group (pooled over groups)


def yardstick_pairs(points: pd.DataFrame, *, target: float = 0.85) -> YardstickPairs:
    """Which pairs hold the yardstick below `target`? Issue 13, item 2. Points without both seeds'
    scores are left out; fewer than 3 points is undefined (NaN). (Pure.)"""
    a, b = points["seed_a"].to_numpy(float), points["seed_b"].to_numpy(float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b, stride = a[ok], b[ok], points["stride"].to_numpy()[ok]
    if len(a) < 3:
        return YardstickPairs(*[float("nan")] * 7)
    pairs = pairs_by_group(a, b, stride)
    agree, same = pairs.agree, pairs.same
    share = float(same.mean())
    within = float(agree[same].mean()) if same.any() else float("nan")
    across = float(agree[~same].mean()) if (~same).any() else float("nan")
    needed = float("nan") if not same.any() else target if share == 1 else (target - (1 - share) * across) / share
    mean = (a + b) / 2
    deviations = np.concatenate([mean[stride == k] - mean[stride == k].mean() for k in np.unique(stride)])
    dof = len(a) - len(np.unique(stride))
    truth_sd = float(np.sqrt((deviations ** 2).sum() / dof)) if dof > 0 else float("nan")
    return YardstickPairs(share, within, across, float(agree.mean()), needed,
                          float(np.std(a - b, ddof=1) / np.sqrt(2)), truth_sd)


YARDSTICK_TARGET = 0.85  # issue 13, item 2: seed-to-seed tau overall

RANKERS = {  # column -> label; higher ranks first (stride: smaller first)
    "ridge_route_free": "route-free choices ridge (no first stride, no pre_down)",
    "ridge_within_stride": "within-stride ridge, with stage depths (a candidate)",
    "ridge_choices": "choices ridge",
    "ridge_others_short10": "choices ridge on the other checks' points, 10-step labels",
    "ridge_others_truth": "choices ridge on the other checks' points, full labels",
    "ridge_interactions": "choices ridge + choice x stride (a candidate)",
    "stride_then_seg": "stride, then seg head C before B (read after the fact)",
    "zs_stride": "zero-shot stage, stride term always on (candidate)",
    "choices_zs": "choices ridge + zero-shot score (candidate)",
    "stride_then_zs": "stride, then zero-shot within a stride (candidate rule)",
    "ridge_nsr": "NSR ridge",
    "predicted_zero_shot": "zero-shot stage",
    "neg_stride": "output stride alone",
    "macs": "MACs",
    "params": "params",
    "latency_ms": "measured latency",
    "grad_norm": "grad-norm (zero-cost)",
    "zico": "ZiCo (zero-cost)",
    "short10": "10 fine-tuning steps",
    "zero_shot": "distilled model, no fine-tuning",
    "zero_shot_bn": "distilled model, BatchNorm recalibrated",
}


def largest_groups(strides: np.ndarray, folders: np.ndarray) -> np.ndarray:
    """A mask of the points in their folder's largest output-stride group. (Pure.)"""
    from ffnet_nas.predictor_check import largest_group

    inside = np.zeros(len(strides), dtype=bool)
    for k in np.unique(folders):
        _, mask = largest_group(strides[folders == k])
        inside[np.flatnonzero(folders == k)[mask]] = True
    return inside


def tau_cells(a: np.ndarray, b: np.ndarray | None, truth: np.ndarray, *, groups: np.ndarray, inside: np.ndarray) -> str:
    """Two Markdown cells, "all | largest stride group": `ffnet_nas.stats.kendall_difference` of `a`
    (minus `b`, paired, when given) against `truth` over all the points and over those `inside`."""
    from ffnet_nas.stats import kendall_difference

    pick = (lambda v: None if v is None else v[inside])  # noqa: E731
    return (f"{kendall_difference(a, b, truth, groups=groups).text()} "
            f"| {kendall_difference(a[inside], pick(b), truth[inside], groups=groups[inside]).text()}")


def table(points: pd.DataFrame, *, groups: np.ndarray | None) -> list[str]:
    """Markdown rows: each ranker's tau overall and within the largest stride group(s), and its paired
    differences (overall) from stride alone, first as plain tau-b (which leaves stride's tied pairs
    out), then with every ranker's ties broken at random (`ffnet_nas.stats._tau_b`): what a search
    that must choose among points of one stride could get from stride alone."""
    from ffnet_nas.stats import kendall_difference

    truth = points["truth"].to_numpy(float)
    g = np.zeros(len(points), dtype=int) if groups is None else groups
    inside = largest_groups(points["stride"].to_numpy(), g)
    stride = points["neg_stride"].to_numpy(float)
    a, b = points["seed_a"].to_numpy(float), points["seed_b"].to_numpy(float)
    # the yardstick's own lead over stride (seed a ranking seed b, beside stride ranking seed b): how far
    # above stride any ranker could be shown to be on these points (docs/results.md, "Can anything be
    # shown to beat stride alone?")
    rows = [f"| the other seed (the yardstick) | {kendall_difference(a, None, b, groups=g).text()} "
            f"| {kendall_difference(a[inside], None, b[inside], groups=g[inside]).text()} "
            f"| {kendall_difference(a, stride, b, groups=g).text()} "
            f"| {kendall_difference(a, stride, b, groups=g, ties_at_random=True).text()} |"]
    for column, label in RANKERS.items():
        if column not in points or not np.isfinite(points[column].to_numpy(float)).any():
            continue
        score = points[column].to_numpy(float)
        overall = kendall_difference(score, None, truth, groups=g)
        within = kendall_difference(score[inside], None, truth[inside], groups=g[inside])
        if column == "neg_stride":
            rows.append(f"| {label} | {overall.text()} | {within.text()} | | |")
            fair = kendall_difference(score, None, truth, groups=g, ties_at_random=True)
            rows.append(f"| {label}, ties broken at random | {fair.text()} | 0.00 (all tied) | | |")
            continue
        versus = kendall_difference(score, stride, truth, groups=g)
        fair = kendall_difference(score, stride, truth, groups=g, ties_at_random=True)
        rows.append(f"| {label} | {overall.text()} | {within.text()} | {versus.text()} | {fair.text()} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("check_workdirs", nargs="+", help="finished bench.bench_predictor --out folders")
    args = parser.parse_args(argv)

    frames = [held_out(Path(f)) for f in args.check_workdirs]
    for frame in frames:
        frame["neg_stride"] = -frame["stride"].astype(float)
    if len(frames) > 1:
        frames = other_checks_ridges(frames)
    header = ["| ranking by | tau, all points | tau, largest stride group | minus stride alone (paired) "
              "| minus stride, ties at random (paired) |", "|---|---:|---:|---:|---:|"]
    for frame in frames:
        print(f"\n{frame['folder'][0]}: {len(frame)} held-out points, ridges fitted on the run's "
              f"{frame['n_design'][0]} design points; truth = mean of the two seeds")
        print("\n".join(header + table(frame, groups=None)))
        pairs = yardstick_pairs(frame, target=YARDSTICK_TARGET)
        needed = "unreachable" if pairs.within_needed > 1 else f"{pairs.within_needed:.2f}"
        print(f"yardstick by pair: {pairs.within_share:.0%} of pairs share a stride, seed-to-seed tau "
              f"{pairs.within:.2f} on them and {pairs.across:.2f} across strides; {YARDSTICK_TARGET} overall "
              f"would need {needed} within. Inside a stride group the truth spreads {pairs.truth_sd:.2f} mIoU "
              f"(standard deviation); one seed's noise is {pairs.seed_sd:.2f}")
    effects = within_group_effects(pd.concat(frames, ignore_index=True))
    first = effects.groupby("choice")["level"].min()  # the level each contrast is against (sorted first)
    print("\ninside a stride group (truth minus its group's mean, per folder), per level of a choice:")
    print("\n".join(f"- {r.choice} {r.level}: {r.mean:+.2f} mIoU (standard error {r.sem:.2f}, {r.points} points)"
                     + (f"; against {r.choice} {first[r.choice]}: {r.vs_first:+.2f} (standard error {r.vs_first_se:.2f})"
                        if r.level != first[r.choice] and np.isfinite(r.vs_first) else "")
                     for r in effects.itertuples()))
    if len(frames) > 1:
        pooled = pd.concat(frames, ignore_index=True)
        drawn = [frozenset(f["code"]) for f in frames]
        if len(set(drawn)) < len(drawn):
            print("\nwarning: two folders hold the same held-out points (the same draw): the pooled figures count "
                  "them twice")
        print(f"\npooled over {len(frames)} checks ({len(pooled)} points; a tau is the mean of the per-check taus):")
        print("\n".join(header + table(pooled, groups=pooled["folder"].to_numpy())))
        from ffnet_nas.predictors.accuracy import DEFAULT_FEATURE_SET, FEATURE_SETS
        from ffnet_nas.stats import kendall_difference

        pivot = f"ridge_{DEFAULT_FEATURE_SET}"
        default, truth = pooled[pivot].to_numpy(float), pooled["truth"].to_numpy(float)
        folder = pooled["folder"].to_numpy()
        print(f"\nthe default ridge ({DEFAULT_FEATURE_SET}; each run's design) minus another ranker, paired:")
        others = [f"ridge_{key}" for key in FEATURE_SETS if key != DEFAULT_FEATURE_SET]
        for column in (*others, "predicted_zero_shot", "zs_stride", "choices_zs", "stride_then_zs", "short10",
                       "ridge_others_short10", "ridge_others_truth"):
            if column not in pooled or not np.isfinite(pooled[column].to_numpy(float)).any():
                continue
            fitted = (f" (fitted on {pooled[f'n_{column}'].min():.0f}-{pooled[f'n_{column}'].max():.0f} points)"
                      if f"n_{column}" in pooled else "")
            other = pooled[column].to_numpy(float)
            has = np.isfinite(other)  # folders without this ranker (e.g. no neighbour of their design) sit out
            versus = kendall_difference(default[has], other[has], truth[has], groups=folder[has])
            print(f"- minus {RANKERS[column]}{fitted}: {versus.text()} over {has.sum()} points")

if __name__ == "__main__":
    main()
