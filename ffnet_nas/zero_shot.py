"""The assembled distilled model's mIoU with no fine-tuning: a forward pass that ranks points.

    scores = zero_shot_scores(archs, workspace=ws, val_ds=val_ds, val_images=64, data_key="synthetic@64x128")

Each point is assembled from the block library (`ffnet_nas.distill.assemble`, exact), optionally has
its BatchNorm statistics recomputed on `bn_batches` fixed training batches (each block's statistics
were gathered on the teacher's features, not on what the blocks before it produce in this chain;
Single Path One-Shot NAS recalibrates before ranking subnets, and so does the zero-shot stage:
`STAGE_BN_BATCHES`), and is scored on the first `val_images` images of `val_ds`, the images its
fine-tuned score is taken on. The recalibrated score is the zero-shot stage's feature
(`ffnet_nas.predictors.accuracy.ZERO_SHOT_FEATURES`).

Scores are kept in `Workspace.zero_shot_path` (one row per point and signature, written atomically
after each point, so a killed pass resumes). The signature hashes what the score depends on: the
point's five library rows (their held-out NSR changes whenever a block is distilled again), the
images and their size; a row with another signature is measured again, never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Sequence

import pandas as pd

from ffnet_nas.averaging import recalibrate_bn
from ffnet_nas.workspace import Workspace
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.io import atomic_write_csv, read_checked_csv

logger = logging.getLogger(__name__)

COLUMNS = ("code", "signature", "zero_shot_miou")
BN_BATCHES, BN_BATCH_SIZE = 8, 8  # 64 training images: the recalibration's cost is one short forward pass
# The zero-shot stage recalibrates. Against the quick budget's averaged, BatchNorm-held fine-tunes,
# under a rule declared before two fresh draws were read, the recalibrated score ranked 32 held-out
# points at Kendall tau 0.90 against the yardstick's 0.96, above stride alone (0.82), 10 fine-tuning
# steps (0.88) and the route-free ridge (0.86), and at 0.69 [0.25, 1.00] inside a stride group; over
# 160 points of two quick runs, 0.83 against the raw score's 0.73 and stride's 0.80 (docs/results.md,
# "The zero-shot stage on BatchNorm-recalibrated scores"). Against the fine-tunes of earlier budgets,
# which ended at their last step, the raw score had ranked better.
STAGE_BN_BATCHES = BN_BATCHES


def _need_train_ds(bn_batches: int, train_ds) -> None:
    # a recalibration asked for without the images to do it must not quietly score as distilled:
    # the score would then carry the recalibrated signature's meaning without its value
    if bn_batches and train_ds is None:
        raise ValueError(f"bn_batches={bn_batches}: recalibrating BatchNorm needs train_ds (got None)")


def score_point(arch: Arch, *, library, val_ds, val_images: int | None, train_ds=None, bn_batches: int = 0,
                device: str = "cpu") -> float:
    """One point's zero-shot mIoU (%): assembled, BatchNorm recalibrated on `bn_batches` batches of
    `train_ds` (0: as distilled), scored on the first `val_images` images of `val_ds`."""
    from ffnet_nas.distill.assemble import assemble
    from ffnet_nas.data import fixed_batches
    from ffnet_nas.training import evaluate

    _need_train_ds(bn_batches, train_ds)
    model = assemble(arch, library)
    if bn_batches:
        recalibrate_bn(model, fixed_batches(train_ds, batch_size=BN_BATCH_SIZE, n_batches=bn_batches, seed=0))
    return 100 * evaluate(model, val_ds, device=device, limit=val_images, progress=False).miou


def signature(arch: Arch, library_rows: dict, *, val_images: int | None, data_key: str, bn_batches: int = 0) -> str:
    """What a point's zero-shot score depends on, hashed (module docstring)."""
    from ffnet_nas.distill.choices import arch_choices

    blocks = []
    for spec in arch_choices(arch):
        row = library_rows.get((spec.position, spec.choice), {})
        blocks.append([spec.position, spec.choice, str(row.get("nsr_val")), str(row.get("nsr_train"))])
    record = {"blocks": blocks, "val_images": val_images, "data": data_key}
    if bn_batches:  # (a score without recalibration keeps the signature it had before recalibration existed)
        record["bn"] = [bn_batches, BN_BATCH_SIZE]
    text = json.dumps(record, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _read(path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(columns=list(COLUMNS))
    return read_checked_csv(path, what="zero-shot scores", required=COLUMNS, key=("code", "signature"),
                            finite=("zero_shot_miou",), fix="delete the file: the scores are measured again")


def zero_shot_scores(archs: Sequence[Arch], *, workspace: Workspace, val_ds, val_images: int | None, data_key: str,
                     train_ds=None, bn_batches: int = 0, device: str = "cpu",
                     progress: bool = True) -> dict[str, float]:
    """code -> `score_point` of each point (cached; module docstring). `data_key` names the data and
    the size `val_ds` is scored at; `bn_batches` > 0 recalibrates on that many batches of `train_ds`."""
    from tqdm.auto import tqdm

    from ffnet_nas.distill.library import BlockLibrary

    library = BlockLibrary(workspace.library_dir)
    rows = library.rows()
    path = workspace.zero_shot_path
    table = _read(path)
    known = {(c, s): float(v) for c, s, v in zip(table["code"], table["signature"], table["zero_shot_miou"])}
    _need_train_ds(bn_batches, train_ds)
    wanted = {a.code: (a, signature(a, rows, val_images=val_images, data_key=data_key, bn_batches=bn_batches))
              for a in archs}
    todo = [(a, sig) for a, sig in wanted.values() if (a.code, sig) not in known]
    for arch, sig in tqdm(todo, desc="zero-shot mIoU", unit="point", disable=not progress or not todo,
                          dynamic_ncols=True):
        known[(arch.code, sig)] = score_point(arch, library=library, val_ds=val_ds, val_images=val_images,
                                              train_ds=train_ds, bn_batches=bn_batches, device=device)
        atomic_write_csv(path, pd.DataFrame([{"code": c, "signature": s, "zero_shot_miou": v}
                                             for (c, s), v in known.items()], columns=list(COLUMNS)))
    if todo:
        logger.info("zero-shot mIoU of %d point(s) -> %s", len(todo), path)
    return {code: known[(code, sig)] for code, (_, sig) in wanted.items()}




# search_miou: the search's own prediction of the candidate (its scorer, `predictors.accuracy`)
RERANKED_COLUMNS = ("rank", "code", "latency_ms", "search_miou", "zero_shot_miou", "miou", "miou_std",
                    "p_beats_reference", "expected_gain")


def rerank(candidates: Sequence[dict], *, stage, scores: dict[str, float], reference: Arch | None = None):
    """The candidates (rows with code, latency_ms, miou: the search's prediction) re-predicted by
    the zero-shot stage `stage` from their `scores`, the largest expected gain over `reference` first (pure).

    miou / miou_std: the stage's mean and standard deviation. Against the reference (predicted by
    the same stage; independent normal errors): p_beats_reference, P(the point's fine-tuned mIoU >
    the reference's), and expected_gain, E[max(point - reference, 0)] (`ffnet_nas.stats`), which
    orders the list. P alone would saturate at 1 when the reference is far behind and then prefer
    the point nearest the fitted design, not the best; the expected gain is P weighted by the
    margin, so near the reference an unsure point can outrank a slightly better sure one (only it
    may win by much), and far ahead the mean decides. Without a reference both columns are empty
    and the mean orders the list."""
    import numpy as np

    from ffnet_nas.predictors.accuracy import zero_shot_features

    if not candidates:
        return pd.DataFrame(columns=list(RERANKED_COLUMNS))
    names = stage.feature_names
    x = np.stack([zero_shot_features(r["code"], scores[r["code"]], names) for r in candidates])
    ref = stage.predict_with_std(zero_shot_features(reference, scores[reference.code], names)[None]) \
        if reference is not None else None
    return _ordered(candidates, *stage.predict_with_std(x), ref, zero_shot=[float(scores[r["code"]]) for r in candidates])


def rerank_by_predictor(candidates: Sequence[dict], *, predictor, reference: Arch | None = None):
    """`rerank` with the search's own predictor (`predictors.accuracy.AccuracyPredictor`): the same
    mean the search ranked by, now with its spread, so the list is ordered by the expected gain over
    `reference` without a forward pass (pure; zero_shot_miou is left empty)."""
    import numpy as np

    from ffnet_nas.predictors.accuracy import point_features

    if not candidates:
        return pd.DataFrame(columns=list(RERANKED_COLUMNS))
    nsr, names = predictor.nsr, predictor.feature_names
    x = np.stack([point_features(r["code"], names, nsr) for r in candidates])
    ref = predictor.predict_with_std(point_features(reference, names, nsr)[None]) if reference is not None else None
    return _ordered(candidates, *predictor.predict_with_std(x), ref, zero_shot=[float("nan")] * len(candidates))


def _ordered(candidates: Sequence[dict], mean, std, reference, *, zero_shot: Sequence[float]):
    """The re-ranked table (`RERANKED_COLUMNS`): candidates with a mean and std, ordered by the
    expected gain over `reference` ((mean, std) arrays of one row, or None: by the mean)."""
    import numpy as np

    from ffnet_nas.stats import expected_gain, probability_greater

    if reference is not None:
        (ref_mean,), (ref_std,) = reference
        p = probability_greater(mean, std, ref_mean, ref_std)
        gain = expected_gain(mean, std, ref_mean, ref_std)
    else:
        p = gain = np.full(len(mean), np.nan)
    frame = pd.DataFrame({"code": [r["code"] for r in candidates], "latency_ms": [r["latency_ms"] for r in candidates],
                          "search_miou": [r["miou"] for r in candidates], "zero_shot_miou": list(zero_shot),
                          "miou": mean, "miou_std": std, "p_beats_reference": p, "expected_gain": gain})
    keys = ["expected_gain", "miou"] if reference is not None else ["miou"]
    frame = frame.sort_values(keys, ascending=False, kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


__all__ = ["BN_BATCHES", "STAGE_BN_BATCHES", "RERANKED_COLUMNS", "rerank", "rerank_by_predictor",
           "score_point", "signature", "zero_shot_scores"]
