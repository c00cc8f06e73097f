"""Accuracy predictor: measured mIoU from a point's choices, or from its blocks' held-out NSR (DONNA's recipe).

The NSR features of a point: log10 of the held-out NSR of the block it uses at each position (s4, s8,
s16, s32, head: the quality of each distilled piece), plus log10 of its parameter count (a cheap
capacity term) and log2 of its output stride. The stride term is needed because a block's NSR is
measured at the student's own stride (the teacher's target is pooled down to it), so the NSR
cannot see the resolution a stride-8 or pre_down point gives up; on the embedded data that loss
is the largest single effect on mIoU (stride 4: 43-47, 8: 35-41, 16: 26-28 in one quick run). Model: ridge regression on standardised features, the ridge strength chosen by
leave-one-out error, and validated by leave-one-out Kendall tau and Spearman rho — the figures
that say whether the predictor can rank points, which is all the search needs.

The zero-shot stage (`ZERO_SHOT_FEATURES`, saved as `ZERO_SHOT_FILE` beside the first): the same
ridge on what one forward pass sees and the block NSR cannot, the mIoU of the assembled distilled
model with its BatchNorm statistics recalibrated and no fine-tuning (`ffnet_nas.zero_shot`), plus
the output stride. Under a rule declared before two fresh draws of held-out points were read it
ranked them at Kendall tau 0.90 against the yardstick's 0.96, above output stride alone (0.82) and
the route-free ridge (0.86) (docs/results.md), so the quick budget re-ranks the search's best
candidates with it (`ffnet_nas.steps.search`, `rerank_by="zero-shot"`).

Every prediction carries a standard deviation (`predict_with_std`): the leave-one-out RMSE
widened by the point's leverage, sqrt(1 + 1/n + z (Z'Z + alpha I)^-1 z'), so a point far from the design
is less sure than one inside it; the search turns it into a probability of beating the reference.

The route-free ridge (`ROUTE_FREE_FEATURES`, feature set "route_free", the default since
2026-12-06): the choices ridge below without the two indicators that only say how a point reaches
its output stride (`ROUTE_FEATURES`), adopted by a rule declared before the draws that decided it
(inside a stride group 0.27 vs 0.21 on 32 fresh held-out points; docs/results.md, "Two more draws
on the fresh run").

The within-stride ridge (`WITHIN_STRIDE_FEATURES`, feature set "within_stride", a candidate of
2026-12-06): the route-free choices with the output stride as steps that the ridge leaves all but
unshrunk, so each stride group's level comes from its own points and the shrinkage (and its strength)
is spent on what orders the points of one stride, plus each stage's depth, which log params cannot
see (the first, high-resolution stage holds few parameters). Not adopted: a rule declared before
two fresh draws found it below the route-free ridge inside a stride group (0.28 vs 0.45) and overall
(0.78 vs 0.80); the depth effect it was built on did not replicate (docs/results.md, "Inside a
stride group: stage depths, levels unshrunk"). Kept for `fit-predictor --check`, which ranks it beside.

The choices ridge (`CHOICE_FEATURES`, feature set "choices", the default from 2026-12-04): the
same ridge on what the point *is* rather than how well its blocks imitate the teacher: the output
stride, one indicator per categorical choice (stem, block type, first-stage stride, up-head,
seg-head, upsampling, pre_down, three stages) and log10 params. On three independent draws of 16
held-out points (each ridge fitted on its run's 10 design points) it ranked the averaged
fine-tunes with Kendall tau 0.76, the NSR ridge 0.60 (paired difference +0.16 [-0.02, +0.31]) and
output stride alone 0.79 as plain tau-b, 0.62 with stride's ties broken at random. It orders the
stride groups as stride does; choosing among the points of one stride, it beats stride alone, barely
(paired +0.13 [+0.01, +0.24]) (docs/results.md). A block's NSR is a noisy one-number summary of its
choice, and five of them may overfit ten design points: the NSR ridge fitted its design best
(leave-one-out) and ranked held-out points worst on two of three draws. `FEATURE_SETS` names all
four; a stored predictor's `feature_names` say which one it is, so older predictors load unchanged.

Compute and storage are split: `fit_accuracy_predictor` returns a frozen `AccuracyPredictor`
(plain numbers), `save`/`load` write and read it as JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ffnet_nas.space.arch import BLOCK_TYPES, POSITIONS, SEG_HEADS, STEMS, UP_HEADS, UPSAMPLE_MODES, Arch, resolve
from ffnet_nas.space.complexity_cache import shared_cache
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_write_json, provenance, read_json

ALPHAS = (1e-3, 1e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
FEATURES = tuple(f"log_nsr_{p}" for p in POSITIONS) + ("log_params", "log2_output_stride")
# One indicator per categorical choice, every level but the first of its domain (a level the fitted
# design never used is a constant column: no coefficient, but a large leverage, so a point using it
# is predicted with a wide spread). Depth and width reach the ridge through log10 params.
CHOICE_LEVELS = (("stem", STEMS), ("block", BLOCK_TYPES), ("first_stride", (1, 2)), ("up_head", UP_HEADS),
                 ("seg_head", SEG_HEADS), ("upsample", UPSAMPLE_MODES), ("pre_down", (False, True)),
                 ("num_stages", (4, 3)))
CHOICE_FEATURES = ("log2_output_stride",) + tuple(f"{name}={level}" for name, levels in CHOICE_LEVELS
                                                  for level in levels[1:]) + ("log_params",)
# How a point reaches its output stride (a first stride of 2, or the input halved first). Both are
# parts of the stride, which the ridge reads already; fitted on ~19 design points the choices ridge
# gave them its largest weights after stride, and so ordered the points of one stride by their route,
# which made no difference to their truth (docs/results.md, "What orders the points of one stride").
ROUTE_FEATURES = ("first_stride=2", "pre_down=True")
ROUTE_FREE_FEATURES = tuple(name for name in CHOICE_FEATURES if name not in ROUTE_FEATURES)
# The within-stride set: the output stride as steps (a point of stride 16 has both ">=8" and ">=16"),
# fitted all but unshrunk (`UNSHRUNK`), so the ridge takes each stride group's level from its points
# and spends its shrinkage, and its choice of strength, on what orders the points of one stride; plus
# the depth of each stage (log2(1 + blocks); 0 for a 3-stage point's missing fourth), which log params
# cannot see: the first, high-resolution stage holds few parameters. A stride level the design lacks
# is a column it cannot tell from its neighbour's (a middle level: predicted midway between the two
# around it) or a constant one (past the last: that level), with a wide spread either way. Why, and
# why it was not adopted: docs/results.md, "Inside a stride group: stage depths, levels unshrunk".
STRIDE_STEPS = (8, 16, 32)
STRIDE_STEP_FEATURES = tuple(f"output_stride>={s}" for s in STRIDE_STEPS)
DEPTH_FEATURES = tuple(f"log2_depth_stage{k}" for k in range(1, 5))
WITHIN_STRIDE_FEATURES = STRIDE_STEP_FEATURES + ROUTE_FREE_FEATURES[1:] + DEPTH_FEATURES
UNSHRUNK = 1e-4  # a feature's share of the ridge penalty (others: 1); not 0, so collinear steps stay solvable
PENALTY_WEIGHTS = dict.fromkeys(STRIDE_STEP_FEATURES, UNSHRUNK)
FEATURE_SETS = {"route_free": ROUTE_FREE_FEATURES, "within_stride": WITHIN_STRIDE_FEATURES,
                "choices": CHOICE_FEATURES, "nsr": FEATURES}
DEFAULT_FEATURE_SET = "route_free"
FEATURE_SET_LABELS = {"route_free": "choices ridge without the route to a stride",
                      "within_stride": "ridge within stride groups, with stage depths", "choices": "choices ridge",
                      "nsr": "NSR ridge"}
# every feature a choices-based set may read (`design_features`), and the columns each set reads
_DESIGN_FEATURES = CHOICE_FEATURES + STRIDE_STEP_FEATURES + DEPTH_FEATURES
_CHOICE_COLUMNS = {key: np.array([_DESIGN_FEATURES.index(n) for n in names])
                   for key, names in FEATURE_SETS.items() if set(names) <= set(_DESIGN_FEATURES)}
ZERO_SHOT_FEATURES = ("zero_shot_miou", "log2_output_stride")
# the feature sets the zero-shot stage's fit chooses from, by leave-one-out rank (what the search
# needs): with ~10 design points the stride term can swamp the zero-shot score, which already
# carries the stride's effect (measured: LOO tau 0.82 alone, 0.29 with stride on one quick run)
ZERO_SHOT_FEATURE_SETS = (("zero_shot_miou",), ZERO_SHOT_FEATURES)
NSR_FLOOR = 1e-6  # a perfect block (NSR 0) would give -inf
PARAMS_HW = (64, 128)  # any size: only the parameter count of the part cache is read
# The capacity feature counts parameters with a 19-class head whatever the data's class count: it
# is part of the feature's definition (every stored predictor was fitted so, and the head's last
# layer is <0.1% of the parameters), not the data's class count, which the predictor never needs.
PARAMS_NUM_CLASSES = 19


def nsr_table(library_rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """(position, choice) -> held-out NSR, from the library table (usable rows only)."""
    table = {}
    for r in library_rows:
        nsr = r.get("nsr_val")
        if r.get("status") == "ok" and nsr is not None and math.isfinite(float(nsr)):
            table[(r["position"], r["choice"])] = float(nsr)
    return table


def missing_blocks(arch: Arch, nsr: Mapping[tuple[str, str], float]) -> list[str]:
    return [f"{b.position}:{b.choice}" for b in arch.blocks() if (b.position, b.choice) not in nsr]


def features(arch: "Arch | str", nsr: Mapping[tuple[str, str], float]) -> np.ndarray:
    arch = resolve(arch)
    missing = missing_blocks(arch, nsr)
    if missing:
        raise InvalidInput(
            f"{arch.code}: the block library has no usable block for {', '.join(missing)}; "
            "expected every block distilled (run 'ffnet-nas distill' on a space that contains this point)"
        )
    logs = [math.log10(max(nsr[(b.position, b.choice)], NSR_FLOOR)) for b in arch.blocks()]
    return np.array(logs + [_log_params(arch), math.log2(arch.output_stride)])


def _log_params(arch: Arch) -> float:
    # params do not depend on the input size; the part cache makes a known point cost microseconds
    params, _ = shared_cache(PARAMS_HW, PARAMS_NUM_CLASSES).get(arch)
    return math.log10(params)


def choice_features(arch: "Arch | str") -> np.ndarray:
    """`CHOICE_FEATURES` of a point: needs no block library, so any point of any space has them."""
    arch = resolve(arch)
    indicators = [float(getattr(arch, name) == level) for name, levels in CHOICE_LEVELS for level in levels[1:]]
    return np.array([math.log2(arch.output_stride)] + indicators + [_log_params(arch)])


def design_features(arch: "Arch | str") -> np.ndarray:
    """`choice_features`, then the stride steps and stage depths: every column a choices-based
    `FEATURE_SETS` member reads (`_DESIGN_FEATURES`); no block library needed."""
    arch = resolve(arch)
    steps = [float(arch.output_stride >= s) for s in STRIDE_STEPS]
    depths = [math.log2(1 + d) for d in (tuple(arch.depths) + (0,) * 4)[:4]]
    return np.concatenate([choice_features(arch), steps, depths])


def feature_set_of(names: Sequence[str]) -> str:
    """The `FEATURE_SETS` key whose features are `names` (a stored predictor's `feature_names`)."""
    for key, known in FEATURE_SETS.items():
        if tuple(names) == known:
            return key
    raise InvalidInput(f"accuracy predictor features {list(names)}: expected one of the feature sets "
                       f"{sorted(FEATURE_SETS)} (re-run 'ffnet-nas fit-predictor --refit-only')")


def point_features(arch: "Arch | str", names: Sequence[str], nsr: Mapping[tuple[str, str], float]) -> np.ndarray:
    """The features `names` of a point (a `FEATURE_SETS` member); `nsr` is read only by the NSR set."""
    key = feature_set_of(names)
    if key == "nsr":
        return features(arch, nsr)
    return design_features(arch)[_CHOICE_COLUMNS[key]]


def zero_shot_features(arch: "Arch | str", zero_shot_miou: float,
                       names: Sequence[str] = ZERO_SHOT_FEATURES) -> np.ndarray:
    """The zero-shot stage's features `names` (a stage's own `feature_names`) of a point whose
    assembled distilled model scored `zero_shot_miou` (%) with no fine-tuning."""
    values = {"zero_shot_miou": lambda: float(zero_shot_miou),
              "log2_output_stride": lambda: math.log2(resolve(arch).output_stride)}
    unknown = [n for n in names if n not in values]
    if unknown:
        raise InvalidInput(f"zero-shot stage features {unknown}: expected some of {ZERO_SHOT_FEATURES} "
                           "(re-run 'ffnet-nas fit-predictor --refit-only')")
    return np.array([values[n]() for n in names])


@dataclass(frozen=True)
class Validation:
    n: int
    kendall_tau: float
    spearman: float
    mae: float  # mean absolute leave-one-out error, mIoU points
    loo_predictions: tuple[float, ...]
    rmse: float = math.nan  # root mean squared leave-one-out error: a prediction's spread (NaN: not recorded)


@dataclass(frozen=True)
class AccuracyPredictor:
    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    alpha: float
    validation: Validation
    codes: tuple[str, ...]  # the evaluated points it was fitted on
    # the library's held-out NSR per (position, choice) at fit time: predictions stay consistent
    # with the fit even if the library grows afterwards (refit to use new blocks)
    block_nsr: tuple[tuple[str, str, float], ...] = ()
    # (Z'Z + alpha I)^-1 of the standardised design: a point's leverage, for its predictive std
    # (empty in predictors saved before it was recorded: their std is the LOO RMSE alone)
    inverse_gram: tuple[tuple[float, ...], ...] = ()
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def nsr(self) -> dict[tuple[str, str], float]:
        return {(p, c): v for p, c, v in self.block_nsr}

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(x) - np.array(self.mean)) / np.array(self.scale)
        return z @ np.array(self.coef) + self.intercept

    def predict_with_std(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation per row of `x` (module docstring)."""
        x = np.atleast_2d(np.asarray(x, float))
        z = (x - np.array(self.mean)) / np.array(self.scale)
        mean = z @ np.array(self.coef) + self.intercept
        leverage = np.einsum("ij,jk,ik->i", z, np.array(self.inverse_gram), z) if self.inverse_gram else np.zeros(len(z))
        rmse = self.validation.rmse
        if not math.isfinite(rmse):  # saved before the RMSE was recorded: sqrt(pi/2) x MAE, its normal-error value
            rmse = math.sqrt(math.pi / 2) * self.validation.mae
        # 1: the point's own scatter; 1/n: the intercept's; leverage: the coefficients'
        return mean, rmse * np.sqrt(1 + 1 / max(self.validation.n, 1) + np.maximum(leverage, 0))

    def predict(self, arch: "Arch | str", nsr: Mapping[tuple[str, str], float] | None = None) -> float:
        """Predicted mIoU of `arch`; an NSR predictor reads `nsr` (default: the table stored at fit time)."""
        x = point_features(arch, self.feature_names, self.nsr if nsr is None else nsr)
        return float(self.predict_features(x)[0])

    def save(self, path: str | Path) -> Path:
        d = asdict(self)
        d["validation"]["loo_predictions"] = list(self.validation.loo_predictions)
        # an undefined rank correlation (see ffnet_nas.stats) is NaN: JSON has no NaN, so null
        for key in ("kendall_tau", "spearman", "rmse"):
            d["validation"][key] = _json_number(d["validation"][key])
        d["block_nsr"] = [list(t) for t in self.block_nsr]
        d["inverse_gram"] = [list(r) for r in self.inverse_gram]
        return atomic_write_json(path, d)

    @classmethod
    def load(cls, path: str | Path) -> "AccuracyPredictor":
        d = read_json(path, what="accuracy predictor")
        try:
            v = d["validation"]
            n = len(d["feature_names"])
            if not len(d["mean"]) == len(d["scale"]) == len(d["coef"]) == n:
                raise ValueError(f"{n} feature names but {len(d['mean'])}/{len(d['scale'])}/{len(d['coef'])} "
                                 "means/scales/coefficients")
            return cls(
                feature_names=tuple(d["feature_names"]), mean=tuple(d["mean"]), scale=tuple(d["scale"]),
                coef=tuple(d["coef"]), intercept=float(d["intercept"]), alpha=float(d["alpha"]),
                validation=Validation(int(v["n"]), _number(v["kendall_tau"]), _number(v["spearman"]), float(v["mae"]),
                                      tuple(v["loo_predictions"]), _number(v.get("rmse"))),
                codes=tuple(d["codes"]), block_nsr=tuple((p, c, float(v)) for p, c, v in d.get("block_nsr", ())),
                inverse_gram=tuple(tuple(float(v) for v in r) for r in d.get("inverse_gram", ())),
                meta=d.get("meta", {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"accuracy predictor {str(path)!r} is malformed ({'missing ' if isinstance(e, KeyError) else ''}{e}); "
                               "re-run 'ffnet-nas fit-predictor'") from None


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0  # a constant feature (e.g. one head choice for all) carries no signal
    return (x - mean) / scale, mean, scale


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float,
           penalty: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    z, mean, scale = _standardise(x)
    y0 = y.mean()
    coef = np.linalg.solve(z.T @ z + alpha * np.diag(penalty), z.T @ (y - y0))
    return mean, scale, coef, y0


def _loo(x: np.ndarray, y: np.ndarray, alpha: float, penalty: np.ndarray) -> np.ndarray:
    preds = np.empty_like(y)
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        mean, scale, coef, y0 = _ridge(x[keep], y[keep], alpha, penalty)
        preds[i] = ((x[i] - mean) / scale) @ coef + y0
    return preds


def fit_accuracy_predictor(
    x: np.ndarray, y: np.ndarray, *, codes: Sequence[str], alphas: Sequence[float] = ALPHAS, meta: dict | None = None,
    nsr: Mapping[tuple[str, str], float] | None = None, feature_names: Sequence[str] = FEATURES,
) -> AccuracyPredictor:
    """Ridge fit with the strength picked by leave-one-out squared error; LOO ranks reported
    (`ffnet_nas.stats.rank_correlations`: NaN when undefined, e.g. constant predictions).
    `feature_names` name the columns of `x` (`FEATURES`, or `ZERO_SHOT_FEATURES` for that stage)."""
    from ffnet_nas.stats import rank_correlations

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(y) < 4:
        raise InvalidInput(f"need at least 4 evaluated points to fit and validate the accuracy predictor; got {len(y)} "
                           "(run 'ffnet-nas evaluate' on more points or 'ffnet-nas fit-predictor --n N')")
    if x.ndim != 2 or x.shape[1] != len(feature_names):
        raise ValueError(f"x has shape {x.shape}; expected (points, {len(feature_names)} features: {list(feature_names)})")
    penalty = np.array([PENALTY_WEIGHTS.get(name, 1.0) for name in feature_names])
    best = min(alphas, key=lambda a: float(np.mean((_loo(x, y, a, penalty) - y) ** 2)))
    loo = _loo(x, y, best, penalty)
    mean, scale, coef, y0 = _ridge(x, y, best, penalty)
    ranks = rank_correlations(loo, y)
    validation = Validation(len(y), ranks.kendall, ranks.spearman,
                            float(np.mean(np.abs(loo - y))), tuple(float(p) for p in loo),
                            float(np.sqrt(np.mean((loo - y) ** 2))))
    block_nsr = tuple(sorted((p, c, float(v)) for (p, c), v in (nsr or {}).items()))
    z, _, _ = _standardise(x)
    # the spread's leverage treats every feature as penalised in full: a direction the design cannot
    # identify (a stride level it lacks) is then as unsure as any level it never used (~1/alpha), not
    # 1e4 times more, which would put such a point first wherever the spread is rewarded
    inverse = np.linalg.inv(z.T @ z + best * np.eye(z.shape[1]))
    return AccuracyPredictor(tuple(feature_names), tuple(mean), tuple(scale), tuple(coef), float(y0), float(best),
                             validation, tuple(codes), block_nsr=block_nsr,
                             inverse_gram=tuple(tuple(float(v) for v in r) for r in inverse),
                             meta=provenance(**(meta or {})))


def fit_feature_set(codes: Sequence[str], measured: Sequence[float], *, feature_set: str,
                    nsr: Mapping[tuple[str, str], float], meta: dict | None = None) -> AccuracyPredictor:
    """A ridge on `feature_set` (a `FEATURE_SETS` key) fitted on the points `codes` and their
    `measured` mIoU; the NSR snapshot goes with the NSR set only (the choices ridge never reads it)."""
    names = FEATURE_SETS[feature_set]
    x = np.stack([point_features(c, names, nsr) for c in codes]) if len(codes) else np.zeros((0, len(names)))
    return fit_accuracy_predictor(x, np.asarray(measured, float), codes=list(codes), feature_names=names,
                                  nsr=nsr if feature_set == "nsr" else None, meta=meta)


def refit_on(codes: Sequence[str], measured: Mapping[str, float], *, feature_set: str,
             nsr: Mapping[tuple[str, str], float]) -> AccuracyPredictor | None:
    """A ridge on `feature_set` fitted on the points `codes` with their `measured` mIoU (e.g. another
    feature set on a stored predictor's very design); None when a point has no measurement."""
    if any(c not in measured for c in codes) or len(codes) < 4:
        return None
    return fit_feature_set(codes, [measured[c] for c in codes], feature_set=feature_set, nsr=nsr)


# The predictor's folder (the caller picks it: the workdir's predictor/, a refine round's): the
# fitted model, and its leave-one-out predictions per point (what the report draws).
PREDICTOR_FILE = "accuracy.json"
LOO_FILE = "loo.csv"
ZERO_SHOT_FILE = "zero_shot.json"  # the zero-shot stage (module docstring), when it was fitted


def load_predictor(predictor_dir: str | Path):
    """`arch -> predicted mIoU` from `predictor_dir/accuracy.json` (what the search calls).

    With the NSR features, a point using a block the fit never saw raises InvalidInput naming the
    missing blocks; the choices ridges (`route_free`, `choices`) predict any point.
    """
    predictor = AccuracyPredictor.load(Path(predictor_dir) / PREDICTOR_FILE)
    nsr = predictor.nsr
    if not nsr and feature_set_of(predictor.feature_names) == "nsr":
        raise InvalidInput(f"accuracy predictor in {str(predictor_dir)!r} holds no block NSR table; "
                           "re-run 'ffnet-nas fit-predictor --refit-only'")

    def predict(arch: "Arch | str") -> float:
        return predictor.predict(arch, nsr)

    return predict
