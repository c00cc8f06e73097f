"""Is the run's win larger than the yardstick's noise? The best point and the reference, measured again.

    check = check_win(workspace=ws, best=summary.best, reference=summary.reference_row,
                      config=finetune_config(steps=100), val_images=64)
    print(check.text())

A verdict compares two numbers that each carry noise: the fine-tuning seed and the few images they
are scored on (on the embedded data about 1.0 and 1.3 mIoU of mean difference between two
measurements of one point: docs/results.md). So `check_win` fine-tunes both points again under
the next `seeds - 1` seeds, exactly as the run did otherwise, and scores them on the run's scoring
images and on the held-out images after them. That gives the win 2 x `seeds` times (seeds x image
sets) and each point's own spread (how far two of its seeds differ on one image set). The win
counts as larger than the noise when every win is positive and the smallest of them exceeds the
largest difference between two measurements of the same point. With three seeds that compares six
wins with twelve same-point differences, where two seeds compared four with four: two measurements of
two points can happen to agree closely (a CI run saw 0.22 mIoU where held-out points differ by 1.1
on average), three seeds of each are less likely to. Beside the rule, `text` gives the mean win on
the held-out images with a t-interval over the seeds (the images there picked nothing).

The run checks the best point against the strongest published rival within its target the same
way (`text(against=...)`); a point that loses on every measurement by more than the noise is told
apart from a tie (`loses_beyond_noise`).

The other seeds' scores are kept in `Workspace.second_seed_path` (one row per point and setting,
written atomically when a point is scored; the fine-tune checkpoints into the point's folder), so a
killed check resumes and a finished one costs nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ffnet_nas.evaluate import Resources
from ffnet_nas.settings import TrainConfig, accuracy_column, accuracy_label
from ffnet_nas.workspace import Workspace
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import atomic_write_csv, read_checked_csv

logger = logging.getLogger(__name__)

COLUMNS = ("code", "setting", "scoring_miou", "held_out_miou")


@dataclass(frozen=True)
class WinCheck:
    seeds: tuple[int, ...]
    wins: dict  # "seed S, scoring|held-out images" -> best minus reference, mIoU
    same_point: dict  # code -> largest |seed a - seed b| over pairs of seeds and the image sets
    smallest_win: float
    largest_same_point: float
    exceeds_noise: bool
    # the mean held-out win over the seeds and its 95% t-interval (NaN: no held-out images)
    held_out_win: float = math.nan
    held_out_low: float = math.nan
    held_out_high: float = math.nan
    precision: str = "fp32"  # the accuracy compared: the float model's, or "int8" (the quantised one's)

    @classmethod
    def from_dict(cls, record: dict) -> "WinCheck":
        """From `dataclasses.asdict` (run_summary.json's `win_check` / `rival_check`, whose extra
        keys such as "text" are left out)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in names}
        values["seeds"] = tuple(values["seeds"])
        return cls(**values)

    @property
    def loses_beyond_noise(self) -> bool:
        """Every win negative and the least negative beyond the largest same-point difference: the
        other point is the more accurate one, by more than the noise."""
        largest = max(self.wins.values())
        return largest < 0 and -largest > self.largest_same_point

    def text(self, *, against: str = "the reference") -> str:
        wins = ", ".join(f"{k} {v:+.2f}" for k, v in self.wins.items())
        ratio = self.smallest_win / self.largest_same_point if self.largest_same_point > 0 else math.inf
        if self.exceeds_noise:
            verdict = f"yes (smallest win {ratio:.1f}x the largest same-point difference)"
        elif self.loses_beyond_noise:
            verdict = f"NO: {against} is the more accurate, by more than the noise"
        else:
            verdict = "NO: the win is within the yardstick's noise"
        interval = (f"; mean held-out win {self.held_out_win:+.2f} mIoU, 95% interval over the {len(self.seeds)} seeds "
                    f"[{self.held_out_low:+.2f}, {self.held_out_high:+.2f}]" if math.isfinite(self.held_out_low) else "")
        what = f" in {accuracy_label(self.precision)}" if self.precision != "fp32" else ""
        return (f"win over {against}{what} measured under {len(self.seeds)} seeds ({wins}); the same point under two "
                f"seeds differed by up to {self.largest_same_point:.2f} mIoU{interval}; larger than the noise: {verdict}")


def _setting(config: TrainConfig, val_images: int | None, score_hw, precision: str = "fp32") -> str:
    """What a second-seed score depends on besides the point (its row is reused only for the same)."""
    plain = dataclasses.asdict(config)
    if not plain.get("freeze_bn"):  # rows written before the field existed keep matching
        plain.pop("freeze_bn", None)
    setting = {"finetune": plain, "val_images": val_images, "score_hw": score_hw}
    if precision != "fp32":  # fp32 rows keep the setting they were written under
        setting["precision"] = precision
    return json.dumps(setting, sort_keys=True, default=str)


def _read(path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(columns=list(COLUMNS))
    return read_checked_csv(path, what="second-seed scores", required=COLUMNS, key=("code", "setting"),
                            finite=("scoring_miou",), fix="delete the file: the two points are measured again")


def second_seed_scores(archs: list[Arch], *, workspace: Workspace, config: TrainConfig, val_images: int | None,
                       device: str = "cpu", score_at: str = "train", progress: bool = True,
                       lut: str | None = None, precision: str = "fp32") -> dict[str, tuple[float, float]]:
    """code -> (mIoU on the first `val_images` images, on the images after them: NaN when there are
    none) of each point fine-tuned from its distilled blocks under `config` (cached: module docstring).
    `precision` "int8": the fine-tuned model's INT8 mIoU (`evaluate.int8.Int8Scorer`), as an INT8 run judges."""
    from ffnet_nas.distill.assemble import assemble
    from ffnet_nas.evaluate.int8 import Int8Scorer
    from ffnet_nas.training import evaluate, train

    accuracy_column(precision)  # a bad precision is one line
    r = Resources.load(workspace, score_at=score_at, lut=lut, val_images=val_images)  # lut: the run's table, when the workdir holds several
    setting = _setting(config, val_images, r.score_hw, precision)
    int8 = None  # the INT8 scorer, made when a point needs scoring (a finished check costs nothing)
    path = workspace.second_seed_path
    table = _read(path)
    rows = {(c, s): (float(a), float(b)) for c, s, a, b in zip(table["code"], table["setting"], table["scoring_miou"],
                                                              table["held_out_miou"])}
    held = val_images is not None and len(r.val_ds) > val_images
    for arch in archs:
        if (arch.code, setting) in rows:
            continue
        model = assemble(arch, workspace.library_dir)
        state = workspace.point_dir(arch.stable_hash, "distilled") / f"seed{config.seed}_state.pt"
        train(model, r.train_ds, config=config, checkpoint_path=state, teacher=r.teacher, device=device,
              progress=progress, desc=f"{arch.stable_hash} seed {config.seed}",
              fingerprint={"init": "distilled", "data": r.data})
        model.eval()
        if precision == "int8":
            int8 = int8 or Int8Scorer(workspace, scored=val_images)
            scoring = int8.miou(model, stop=val_images)
            held_out = int8.miou(model, start=val_images) if held else math.nan
        else:
            scoring = 100 * evaluate(model, r.val_ds, device=device, limit=val_images, progress=False).miou
            held_out = 100 * evaluate(model, r.val_ds, device=device, start=val_images, progress=False).miou if held else math.nan
        rows[(arch.code, setting)] = (scoring, held_out)
        atomic_write_csv(path, pd.DataFrame([{"code": c, "setting": s, "scoring_miou": a, "held_out_miou": b}
                                             for (c, s), (a, b) in rows.items()], columns=list(COLUMNS)))
        state.unlink(missing_ok=True)
        logger.info("  %s fine-tuned again under seed %d: mIoU %.2f -> %s", arch.code, config.seed, scoring, path)
    return {a.code: rows[(a.code, setting)] for a in archs}


def judge(scores: Sequence[dict[str, tuple[float, float]]], *, best: str, reference: str,
          seeds: Sequence[int], precision: str = "fp32") -> WinCheck:
    """The wins and the same-point spreads from each seed's {code: (scoring, held-out)} scores (pure)."""
    if len(scores) != len(seeds) or len(seeds) < 2:
        raise ValueError(f"expected one score table per seed and at least two seeds, got {len(scores)} for {seeds}")
    wins, spreads, held = {}, {}, []
    for seed, table in zip(seeds, scores):
        for i, images in enumerate(("scoring", "held-out")):
            win = table[best][i] - table[reference][i]
            if math.isfinite(win):
                wins[f"seed {seed}, {images} images"] = win
                if i == 1:
                    held.append(win)
    for code in (best, reference):
        gaps = [abs(a[code][i] - b[code][i]) for a, b in itertools.combinations(scores, 2) for i in range(2)]
        spreads[code] = max(g for g in gaps if math.isfinite(g))
    smallest, largest = min(wins.values()), max(spreads.values())
    mean = low = high = math.nan
    if len(held) == len(seeds):
        from scipy import stats

        mean, sd = float(np.mean(held)), float(np.std(held, ddof=1))
        half = float(stats.t.ppf(0.975, len(held) - 1)) * sd / math.sqrt(len(held))
        low, high = mean - half, mean + half
    return WinCheck(seeds=tuple(seeds), wins=wins, same_point=spreads, smallest_win=smallest,
                    largest_same_point=largest, exceeds_noise=smallest > 0 and smallest > largest,
                    held_out_win=mean, held_out_low=low, held_out_high=high, precision=precision)


def check_win(*, workspace: Workspace, best: dict, reference: dict, config: TrainConfig, val_images: int | None,
              seeds: int = 2, device: str = "cpu", score_at: str = "train", progress: bool = True,
              lut: str | None = None, precision: str = "fp32") -> WinCheck:
    """`best` and `reference`: evaluated rows with the accuracy of `precision` (measured_miou, or
    int8_miou) and held_out_miou in it (the run's summary rows, fine-tuned under `config.seed`);
    both are fine-tuned again under the next `seeds - 1` seeds and scored in the same precision."""
    if not isinstance(seeds, int) or seeds < 2:
        raise InvalidInput(f"seeds={seeds!r}: expected at least 2 (the run's own and one more)")
    nan, column = math.nan, accuracy_column(precision)
    missing = [row["code"] for row in (best, reference) if pd.isna(row.get(column))]
    if missing:
        raise InvalidInput(f"{missing[0]} has no {column}: expected both points scored in {precision} "
                           f"('ffnet-nas evaluate --precision {precision} {missing[0]}')")
    first = {row["code"]: (float(row[column]), float(row.get("held_out_miou") or nan)) for row in (best, reference)}
    archs = [Arch.parse(best["code"]), Arch.parse(reference["code"])]
    tables, used = [first], [config.seed]
    for k in range(1, seeds):
        other = dataclasses.replace(config, seed=config.seed + k)
        tables.append(second_seed_scores(archs, workspace=workspace, config=other, val_images=val_images, device=device,
                                         score_at=score_at, progress=progress, lut=lut, precision=precision))
        used.append(other.seed)
    return judge(tables, best=best["code"], reference=reference["code"], seeds=used, precision=precision)


__all__ = ["WinCheck", "check_win", "judge", "second_seed_scores"]
