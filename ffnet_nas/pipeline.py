"""The whole pipeline on one workdir: data, teacher, distillation, latency table, accuracy
predictor, search, full evaluation, report.

    summary = run_pipeline(workspace=Workspace("runs/default"), space="mobile", budget="quick")

Every step is resumable on its own (its outputs are written atomically as they finish), and a
step whose outputs exist is skipped, so a killed run re-run with the same arguments continues
where it stopped without redoing finished work. The budget sets sizes and step counts only;
the code path is the same for `micro` (tests), `quick` (minutes on a laptop CPU) and `full`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ffnet_nas.workspace import Workspace
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.catalogue import name_of, variants
from ffnet_nas.space.errors import InvalidInput, closest
from ffnet_nas.space.io import atomic_write_json, provenance


@dataclass(frozen=True)
class Budget:
    name: str
    input_hw: tuple[int, int]  # data, teacher, distillation, fine-tuning and latency all use it
    teacher_arch: str
    teacher_steps: int
    distill_steps: int
    distill_train_images: int
    distill_val_images: int
    calibrate_n: int
    predictor_n: int
    finetune_steps: int
    val_images: int | None
    trials: int
    evaluate_top: int
    rounds: int = 0  # refine rounds (refit, search, evaluate) while the reference is not beaten
    round_points: int = 3  # new points evaluated per round
    batch_size: int = 8
    latency_repeats: tuple[int, int] = (10, 60)  # min, max timed runs per key
    latency_seconds: float = 2.0  # per key, after warm-up


BUDGETS = {
    # Seconds, for the end-to-end test: a tiny space and tiny images.
    "micro": Budget("micro", (32, 64), "stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest", 10, 3, 8, 8, 2, 4, 2, 8,
                    30, 1, rounds=1, round_points=1, batch_size=4, latency_repeats=(3, 5), latency_seconds=0.2),
    # ~6 min measured with 300/40/8/60; spending more of the 15 minutes on quality:
    "quick": Budget("quick", (64, 128), "segmentation_ffnet46NS_CCC_mobile", 500, 80, 128, 32, 4, 10, 100, 64,
                    300, 2, rounds=2, round_points=3),
    "full": Budget("full", (128, 256), "segmentation_ffnet46NS_CCC_mobile", 1500, 300, 256, 64, 8, 20, 300, None,
                   2000, 3, rounds=3, round_points=3),
}
STEPS = ("teacher", "distill", "latency", "predictor", "search", "evaluate", "report")


@dataclass
class RunSummary:
    budget: str
    space: str
    device: str
    target: str = ""
    reference: str | None = None  # the published variant nearest the target (what the user would pick)
    best: dict | None = None  # the best evaluated search point
    reference_row: dict | None = None
    beats_reference: bool | None = None
    # the best point is also more accurate than the reference on validation images no choice was made on
    held_out_confirms: bool | None = None
    rounds: list = field(default_factory=list)  # refine rounds run after the first evaluation
    seconds: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise InvalidInput(f"unknown budget {name!r}: expected one of {', '.join(BUDGETS)}{closest(name, BUDGETS)}")
    return BUDGETS[name]


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


def nearest_published(published_ms: dict[str, float], limit_ms: float) -> str | None:
    """The slowest published variant predicted within the latency limit (what a user picks today)."""
    under = {name: ms for name, ms in published_ms.items() if ms <= limit_ms}
    pool = under or published_ms
    if not pool:
        return None
    return max(pool, key=pool.get) if under else min(pool, key=pool.get)


def _step(summary: RunSummary, name: str, index: int, log: Callable[[str], None]):
    class _Timer:
        def __enter__(self):
            log(f"[{index}/{len(STEPS)}] {name}")
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            summary.seconds[name] = round(time.perf_counter() - self.t0, 1)
            return False

    return _Timer()


def run_pipeline(*, workspace: Workspace, space: "str | object" = "mobile", budget: "str | Budget" = "quick",
                 target: str | None = None, device: str = "cpu", threads: int | None = None,
                 report_formats: tuple[str, ...] = ("html",), progress: bool = True,
                 log: Callable[[str], None] = print) -> RunSummary:
    from ffnet_nas.distill.run import distill_space
    from ffnet_nas.distill.train import TrainConfig as BlockConfig
    from ffnet_nas.data import make_dataset
    from ffnet_nas.evaluate import FinetuneSettings, evaluate_points, held_out_miou
    from ffnet_nas.fit_predictor import fit_predictor
    from ffnet_nas.search.api import predictor_study_name, run_search, write_outputs
    from ffnet_nas.search.predictors import load as load_predictors
    from ffnet_nas.search.targets import parse_targets
    from ffnet_nas.teacher import train_teacher
    from ffnet_nas.predictors.latency import predict_latency
    from ffnet_nas.predictors.latency.build import build, make_spec
    from ffnet_nas.predictors.latency.protocol import Protocol
    from ffnet_nas.space.searchspace import get_space

    budget = get_budget(budget) if isinstance(budget, str) else budget
    if threads is not None:
        import torch

        torch.set_num_threads(threads)  # training and evaluation too, not only the latency table
    # The whole run works at the budget's size (the paper's 512x1024 would take hours on a CPU):
    # the latency table, the search's MACs and every model see the same input.
    space = dataclasses.replace(get_space(space), input_hw=budget.input_hw)
    targets = parse_targets(target) if target else None  # a malformed target fails before any work
    # the latency table and every model share the budget's size; check the device first
    spec = make_spec(device=device, input_hw=budget.input_hw, threads=threads, num_classes=8)
    summary = RunSummary(budget=budget.name, space=space.name, device=spec.device_name)
    ws = workspace
    settings = FinetuneSettings(steps=budget.finetune_steps, batch_size=budget.batch_size, val_images=budget.val_images)

    with _step(summary, "teacher", 1, log):
        if ws.teacher_path.exists():
            log(f"  teacher exists: {ws.teacher_path} (skipped)")
        else:
            train_teacher(arch=budget.teacher_arch, data="synthetic", out_path=ws.teacher_path,
                          state_path=ws.teacher_dir / "train_state.pt", steps=budget.teacher_steps,
                          batch_size=budget.batch_size, input_hw=budget.input_hw, cache_dir=ws.data_dir, device=device,
                          eval_images=budget.val_images, progress=progress, log=lambda m: log(f"  {m}"))
        summary.files["teacher"] = str(ws.teacher_path)

    with _step(summary, "distill", 2, log):
        from ffnet_nas.distill.teacher import read_teacher_file

        num_classes = int(read_teacher_file(ws.teacher_path)["num_classes"])
        train = make_dataset("synthetic", "train", size_hw=budget.input_hw, cache_dir=ws.data_dir)
        val = make_dataset("synthetic", "val", size_hw=budget.input_hw, cache_dir=ws.data_dir)
        result = distill_space(space, teacher_path=ws.teacher_path, train_data=train, val_data=val,
                               library_dir=ws.library_dir, data_spec="synthetic",
                               config=BlockConfig(steps=budget.distill_steps, batch_size=budget.batch_size),
                               train_images=budget.distill_train_images, val_images=budget.distill_val_images,
                               progress=progress)
        log(f"  block library: {result.choices} choices, {result.trained} trained now, {result.skipped} already there"
            f" -> {result.table_path}")
        if result.failed:
            log(f"  {len(result.failed)} block(s) failed and are not used: {result.failed[0]} ...")
        summary.files["library"] = str(result.table_path)

    with _step(summary, "latency", 3, log):
        spec = make_spec(device=device, input_hw=budget.input_hw, threads=threads, num_classes=num_classes)
        lo, hi = budget.latency_repeats
        protocol = Protocol(min_repeats=lo, max_repeats=hi, max_seconds=budget.latency_seconds)
        built = build(lut_dir=ws.lut_dir, space=space, spec=spec, protocol=protocol, calibrate_n=budget.calibrate_n,
                      progress=progress)
        log(f"  latency table: {built.n_keys} keys ({built.n_new} measured now) -> {built.table.path}")
        summary.files["lut"] = str(built.table.path)
        published = {v.name: v.arch for v in variants() if v.arch in space}
        published_ms = {name: predict_latency(a, built.table) for name, a in published.items()}

    with _step(summary, "predictor", 4, log):
        from ffnet_nas.predictors.accuracy import PREDICTOR_FILE, AccuracyPredictor

        path = ws.predictor_dir / PREDICTOR_FILE
        if path.exists():
            # Refitting here would fold in the points this run's evaluate step added, silently
            # changing the objective under a half-finished search: refit explicitly instead.
            predictor = AccuracyPredictor.load(path)
            log(f"  accuracy predictor exists: {path} (skipped; 'ffnet-nas fit-predictor --refit-only' refits)")
        else:
            predictor = fit_predictor(workspace=ws, space=space, n=budget.predictor_n, settings=settings,
                                      device=device, progress=progress)
        v = predictor.validation
        log(f"  accuracy predictor on {v.n} points: LOO Kendall tau {v.kendall_tau:.2f}, Spearman {v.spearman:.2f}")

    with _step(summary, "search", 5, log):
        reference_ms = published_ms or {a.code: predict_latency(a, built.table) for a in space.sample_many(50, seed=0)}
        summary.target = target or default_target(reference_ms)
        targets = parse_targets(summary.target)
        preds = load_predictors(lut_dir=ws.lut_dir, predictor_dir=ws.predictor_dir, space=space,
                                lut=built.table.path.stem)  # the table this run measured, not any other
        study = predictor_study_name(space, targets, preds.objective_id)
        found = run_search(space=space, predict_latency_ms=preds.latency_ms, predict_miou=preds.miou, targets=targets,
                           n_trials=budget.trials, storage=ws.adopt_legacy_journal(), seed=0, study_name=study,
                           objective_id=preds.objective_id, num_classes=num_classes, progress=progress)
        paths = write_outputs(found, ws.search_dir, evaluate_top=budget.evaluate_top)
        log(f"  {found.n_complete} trials; Pareto table -> {paths['pareto']}")
        summary.files["search"] = str(paths["pareto"])
        limit = next((t.bound for t in targets if t.metric == "latency" and t.upper), None)
        summary.reference = nearest_published(published_ms, limit) if limit is not None else None

    with _step(summary, "evaluate", 6, log):
        import pandas as pd

        from ffnet_nas.refine import best_candidate, challengers, evaluated_rows, refine

        ref_arch = published[summary.reference] if summary.reference else None
        listed = pd.read_csv(paths["to_evaluate"]) if "to_evaluate" in paths else pd.DataFrame(columns=["code"])
        published_codes = {a.code for a in published.values()}
        top = [c for c in listed["code"] if c not in published_codes]  # a published point is not a find
        if ref_arch is not None:
            # also the front points predicted to dominate the reference by a margin the latency
            # predictor's error (a few %) cannot erase: the claim to test is "beats it", so test
            # the points that could, not only the most accurate ones under the target
            top += challengers(pd.read_csv(paths["pareto"]), published_ms[summary.reference],
                               k=budget.evaluate_top, exclude=top)
        points = [Arch.parse(c) for c in top] + ([ref_arch] if ref_arch is not None else [])
        evaluate_points(points, workspace=ws, settings=settings, device=device, progress=progress)
        if ref_arch is not None and budget.rounds:
            rounds = refine(workspace=ws, space=space, targets=targets, reference=ref_arch,
                            reference_ms=published_ms[summary.reference], candidates=top, settings=settings,
                            rounds=budget.rounds, points=budget.round_points, trials=budget.trials, num_classes=num_classes,
                            lut=built.table.path.stem, device=device, progress=progress, log=log)
            summary.rounds = [asdict(r) for r in rounds]
            top += [c for r in rounds for c in r.points]
        rows = evaluated_rows(ws)
        best, summary.beats_reference = best_candidate(rows, top, ref_arch)
        if ref_arch is not None:
            summary.reference_row = _plain(rows.get(ref_arch.code))
        else:
            summary.beats_reference = None
        summary.best = _plain(best)
        if summary.best and summary.reference_row:
            # the verdict was picked on the scoring images; say whether it holds on the rest
            held = held_out_miou([summary.best["code"], summary.reference_row["code"]], workspace=ws,
                                 settings=settings, device=device)
            for row in (summary.best, summary.reference_row):
                row["held_out_miou"] = held.get(row["code"])
            if len(held) == 2:
                summary.held_out_confirms = held[summary.best["code"]] > held[summary.reference_row["code"]]
        summary.files["evaluated"] = str(ws.evaluated_path)

    with _step(summary, "report", 7, log):
        from ffnet_nas.reports.build import build_report
        from ffnet_nas.reports.inputs import ReportInputs

        inputs = ReportInputs(lut_dir=ws.lut_dir, library_dir=ws.library_dir, search_dir=ws.search_dir,
                              evaluated_path=ws.evaluated_path, predictor_dir=ws.predictor_dir)
        report = build_report(inputs=inputs, out_dir=ws.report_dir, formats=report_formats, progress=progress)
        summary.files["report"] = str(report.index)

    path = atomic_write_json(ws.root / "run_summary.json", {**asdict(summary), "provenance": provenance(budget=asdict(budget))})
    summary.files["summary"] = str(path)
    return summary


def _plain(row: dict | None) -> dict | None:
    if row is None:
        return None
    out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    out["name"] = out.get("name") or name_of(Arch.parse(out["code"]))
    return out


def describe(summary: RunSummary) -> list[str]:
    """The closing lines the CLI prints."""
    lines = [f"space {summary.space}, budget {summary.budget}, device {summary.device}, target {summary.target}"]
    if summary.best:
        b = summary.best
        lines.append(f"best found: {b['code']}  mIoU {b['measured_miou']:.2f}  "
                     f"{_ms(b.get('measured_latency_ms'))} (predicted {_ms(b.get('predicted_latency_ms'))})")
    if summary.reference_row:
        r = summary.reference_row
        lines.append(f"published nearest the target: {summary.reference}  mIoU {r['measured_miou']:.2f}  "
                     f"{_ms(r.get('measured_latency_ms'))}")
        verdict = "yes" if summary.beats_reference else "no"
        lines.append(f"beats it (higher measured mIoU at lower measured latency, same device and data): {verdict}")
        if summary.held_out_confirms is not None and summary.best:
            held = "more" if summary.held_out_confirms else "NOT more"
            lines.append(f"on the held-out validation images (not used to pick it): mIoU "
                         f"{summary.best['held_out_miou']:.2f} vs {r['held_out_miou']:.2f}, {held} accurate there too")
    if summary.rounds:
        n = sum(len(r["points"]) for r in summary.rounds)
        last = summary.rounds[-1]
        lines.append(f"refine rounds: {len(summary.rounds)}, {n} more point(s) evaluated; last predictor fitted on "
                     f"{last['fitted_on']} points (LOO Kendall tau {last['kendall_tau']:.2f})")
    lines.append("time per step (s): " + ", ".join(f"{k} {v}" for k, v in summary.seconds.items()))
    lines += [f"wrote {k}: {v}" for k, v in summary.files.items()]
    return lines


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"
