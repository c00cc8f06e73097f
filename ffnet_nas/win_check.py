"""Is the run's win larger than the yardstick's noise? The best point and the reference, measured again.

    check = check_win(workspace=ws, best=summary.best, reference=summary.reference_row,
                      config=finetune_config(steps=100), val_images=64)
    print(check.text())

A verdict compares two numbers that each carry noise: the fine-tuning seed and the few images they
are scored on (on the embedded data about 1.0 and 1.3 mIoU of mean difference between two
measurements of one point: docs/results.md). So `check_win` fine-tunes both points once more
under the next seed, exactly as the run did otherwise, and scores them on the run's scoring images
and on the held-out images after them. That gives the win four times (2 seeds x 2 image sets) and
each point's own spread (how far its two seeds differ on each image set). The win counts as larger
than the noise when all four wins are positive and the smallest of them exceeds the largest
difference between two measurements of the same point.

The second seed's scores are kept in `Workspace.second_seed_path` (one row per point and setting,
written atomically when a point is scored; the fine-tune checkpoints into the point's folder), so a
killed check resumes and a finished one costs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass

import pandas as pd

from ffnet_nas.evaluate import Resources
from ffnet_nas.settings import TrainConfig
from ffnet_nas.workspace import Workspace
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.io import atomic_write_csv, read_checked_csv

logger = logging.getLogger(__name__)

COLUMNS = ("code", "setting", "scoring_miou", "held_out_miou")


@dataclass(frozen=True)
class WinCheck:
    seeds: tuple[int, int]
    wins: dict  # "seed S, scoring|held-out images" -> best minus reference, mIoU
    same_point: dict  # code -> largest |seed a - seed b| over the image sets
    smallest_win: float
    largest_same_point: float
    exceeds_noise: bool

    def text(self) -> str:
        wins = ", ".join(f"{k} {v:+.2f}" for k, v in self.wins.items())
        ratio = self.smallest_win / self.largest_same_point if self.largest_same_point > 0 else math.inf
        verdict = (f"yes (smallest win {ratio:.1f}x the largest same-point difference)" if self.exceeds_noise
                   else "NO: the win is within the yardstick's noise")
        return (f"win over the reference measured again ({wins}); the same point measured twice differed by up to "
                f"{self.largest_same_point:.2f} mIoU; larger than the noise: {verdict}")


def _setting(config: TrainConfig, val_images: int | None, score_hw) -> str:
    """What a second-seed score depends on besides the point (its row is reused only for the same)."""
    plain = dataclasses.asdict(config)
    return json.dumps({"finetune": plain, "val_images": val_images, "score_hw": score_hw}, sort_keys=True, default=str)


def _read(path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(columns=list(COLUMNS))
    return read_checked_csv(path, what="second-seed scores", required=COLUMNS, key=("code", "setting"),
                            finite=("scoring_miou",), fix="delete the file: the two points are measured again")


def second_seed_scores(archs: list[Arch], *, workspace: Workspace, config: TrainConfig, val_images: int | None,
                       device: str = "cpu", score_at: str = "train", progress: bool = True,
                       lut: str | None = None) -> dict[str, tuple[float, float]]:
    """code -> (mIoU on the first `val_images` images, on the images after them: NaN when there are
    none) of each point fine-tuned from its distilled blocks under `config` (cached: module docstring)."""
    from ffnet_nas.distill.assemble import assemble
    from ffnet_nas.training import evaluate, train

    r = Resources.load(workspace, score_at=score_at, lut=lut)  # lut: the run's table, when the workdir holds several
    setting = _setting(config, val_images, r.score_hw)
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
        scoring = 100 * evaluate(model, r.val_ds, device=device, limit=val_images, progress=False).miou
        held_out = 100 * evaluate(model, r.val_ds, device=device, start=val_images, progress=False).miou if held else math.nan
        rows[(arch.code, setting)] = (scoring, held_out)
        atomic_write_csv(path, pd.DataFrame([{"code": c, "setting": s, "scoring_miou": a, "held_out_miou": b}
                                             for (c, s), (a, b) in rows.items()], columns=list(COLUMNS)))
        state.unlink(missing_ok=True)
        logger.info("  %s fine-tuned again under seed %d: mIoU %.2f -> %s", arch.code, config.seed, scoring, path)
    return {a.code: rows[(a.code, setting)] for a in archs}


def judge(first: dict[str, tuple[float, float]], second: dict[str, tuple[float, float]], *, best: str, reference: str,
          seeds: tuple[int, int]) -> WinCheck:
    """The four wins and the same-point spreads from two seeds' (scoring, held-out) scores (pure)."""
    wins, spreads = {}, {}
    for seed, scores in zip(seeds, (first, second)):
        for i, images in enumerate(("scoring", "held-out")):
            win = scores[best][i] - scores[reference][i]
            if math.isfinite(win):
                wins[f"seed {seed}, {images} images"] = win
    for code in (best, reference):
        gaps = [abs(first[code][i] - second[code][i]) for i in range(2)]
        spreads[code] = max(g for g in gaps if math.isfinite(g))
    smallest, largest = min(wins.values()), max(spreads.values())
    return WinCheck(seeds=seeds, wins=wins, same_point=spreads, smallest_win=smallest, largest_same_point=largest,
                    exceeds_noise=smallest > 0 and smallest > largest)


def check_win(*, workspace: Workspace, best: dict, reference: dict, config: TrainConfig, val_images: int | None,
              device: str = "cpu", score_at: str = "train", progress: bool = True, lut: str | None = None) -> WinCheck:
    """`best` and `reference`: evaluated rows with measured_miou and held_out_miou (the run's summary
    rows, fine-tuned under `config.seed`); both are fine-tuned again under `config.seed + 1`."""
    nan = math.nan
    first = {row["code"]: (float(row["measured_miou"]), float(row.get("held_out_miou") or nan)) for row in (best, reference)}
    other = dataclasses.replace(config, seed=config.seed + 1)
    second = second_seed_scores([Arch.parse(best["code"]), Arch.parse(reference["code"])], workspace=workspace,
                                config=other, val_images=val_images, device=device, score_at=score_at, progress=progress,
                                lut=lut)
    return judge(first, second, best=best["code"], reference=reference["code"], seeds=(config.seed, other.seed))


__all__ = ["WinCheck", "check_win", "judge", "second_seed_scores"]
