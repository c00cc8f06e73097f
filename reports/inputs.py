"""Reading the run folder's tables for the report: tolerant, explicit, never writing.

Each reader returns `(value, missing)`: the loaded table (or None) and, when something is not
there, a `Missing` that says which file and columns were expected and which command makes them.
Figures draw what exists and list what does not, instead of failing. Stored target texts are
read with the search's own grammar (`ffnet_nas.search.targets.parse_targets`), not a copy of it.

The formats read here are those the other layers write (columns named in each function):
    LUT           lut/<slug>.json (spec, provenance), lut/<slug>.validation.csv + .validation.json
    block library library/blocks.csv (position, choice, status, nsr_val, ...), library/library.json
    search        search/<study>/pareto.csv, published.csv, summary.json (+ the Optuna storage, by
                  default search/study.journal: `ffnet_nas.workspace.JOURNAL_NAME`)
    evaluated     evaluated.csv (code, init, measured_miou, measured_latency_ms, predicted_*, params, macs)
    predictor     predictor/loo.csv (code, measured_miou or int8_miou, loo_predicted_miou) + predictor/accuracy.json;
                  predictor/benchmark.csv (code, predicted_miou, measured_miou), a held-out benchmark, if any
    run verdict   run_summary.json (RunSummary: best, reference_row, reference, beats_reference, ...)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ffnet_nas.predictors.load import choose_lut, lut_candidates  # torch-free: the rule search and evaluate use
from ffnet_nas.reports.model import Missing
from ffnet_nas.search.targets import Target, parse_targets
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.io import read_checked_csv, read_json
from ffnet_nas.workspace import JOURNAL_NAME, LEGACY_JOURNAL_NAMES

CMD_LUT = "ffnet-nas measure-latency"
CMD_LIBRARY = "ffnet-nas distill"
CMD_SEARCH = "ffnet-nas search"
CMD_EVALUATE = "ffnet-nas evaluate"
CMD_PREDICTOR = "ffnet-nas fit-predictor"

VALIDATION_COLUMNS = ("code", "source", "predicted_ms", "measured_ms")
LIBRARY_COLUMNS = ("position", "choice", "status", "nsr_val")
PARETO_COLUMNS = ("code", "latency_ms", "miou")
EVALUATED_COLUMNS = ("code", "measured_miou")


@dataclass(frozen=True)
class ReportInputs:
    """Where the tables are; any of them may be absent. The CLI fills this from the workspace."""

    lut_dir: Path | None = None
    library_dir: Path | None = None
    search_dir: Path | None = None
    evaluated_path: Path | None = None
    predictor_dir: Path | None = None
    lut: str | None = None  # a table slug, when the LUT folder holds several
    # the size the workdir's points are evaluated at (the teacher's): with it the table is chosen as
    # evaluate chooses it (ffnet_nas.predictors.load.choose_lut); None: any size
    input_hw: tuple[int, int] | None = None
    study: str | None = None  # a study name, when the search folder holds several
    # what `ffnet-nas run` concluded (its RunSummary as a dict, plus 'closing': the lines it printed);
    # None: read run_summary_path, the copy the last run wrote (absent: no verdict to show)
    run_summary: dict | None = None
    run_summary_path: Path | None = None


@dataclass(frozen=True)
class Loaded:
    frame: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _read_csv(path: Path, columns: tuple[str, ...], *, what: str, command: str) -> tuple[pd.DataFrame | None, Missing | None]:
    """An input table: absent is a Missing box (its step has not run); present but damaged is an
    InvalidInput naming the file (a report drawn from damaged data would look like a result)."""
    if not path.is_file():
        return None, Missing(what, str(path), command, columns)
    redo = f"re-run '{command}' to write it again" if command else "delete it and re-run the step that writes it"
    return read_checked_csv(path, what=what or "report input", required=columns,
                            fix=f"expected a table this tool wrote: {redo}"), None


def _read_json(path: Path) -> dict[str, Any]:
    """An optional JSON input: {} when absent, InvalidInput naming it when damaged."""
    if not path.is_file():
        return {}
    data = read_json(path, what="report input")
    if not isinstance(data, dict):
        raise InvalidInput(f"report input {str(path)!r} holds {type(data).__name__}, not an object; "
                           "delete it and re-run the step that writes it")
    return data


# ---- latency table ---------------------------------------------------------------------------

def pick_lut(inputs: ReportInputs) -> tuple[str | None, Missing | None]:
    """The table to report on, by the one rule `search` and `evaluate` choose theirs with
    (`ffnet_nas.predictors.load.choose_lut`: the one named, else the one table at `inputs.input_hw`).
    Never raises: a table the rule cannot pick is a Missing box that says why."""
    where = str(inputs.lut_dir) if inputs.lut_dir else "lut/"
    if inputs.lut_dir is None:
        return None, Missing("latency table (LUT)", where, CMD_LUT)
    try:
        path = choose_lut(lut_dir=inputs.lut_dir, input_hw=inputs.input_hw, lut=inputs.lut)
    except InvalidInput as e:  # a name not there, several tables at this size, or none at it
        have = ", ".join(p.stem for p in lut_candidates(inputs.lut_dir)) or "none"
        what = f"latency table {inputs.lut!r}" if inputs.lut else f"one latency table for this workdir ({e})"
        return None, Missing(what, where, f"{CMD_LUT} (tables here: {have}), or report --lut NAME")
    if path is None:
        return None, Missing("latency table (LUT)", where, CMD_LUT)
    return path.stem, None


def lut_meta(inputs: ReportInputs, slug: str) -> dict[str, Any]:
    return _read_json(inputs.lut_dir / f"{slug}.json")


def lut_validation(inputs: ReportInputs, slug: str) -> tuple[Loaded | None, Missing | None]:
    path = inputs.lut_dir / f"{slug}.validation.csv"
    frame, missing = _read_csv(path, VALIDATION_COLUMNS, what="LUT validation table", command=f"{CMD_LUT} --validate N")
    if frame is None:
        return None, missing
    summary = _read_json(inputs.lut_dir / f"{slug}.validation.json")
    return Loaded(frame, {"summary": summary, "lut": lut_meta(inputs, slug)}, path), None


def describe_lut(meta: dict[str, Any]) -> dict[str, Any]:
    """The provenance lines the index shows for figures made from a LUT."""
    from ffnet_nas.predictors.latency.backends import table_export  # imports torch: only when asked

    spec = meta.get("spec", {})
    prov = meta.get("provenance", {})
    hw = spec.get("input_hw")
    export = table_export(meta)  # onnxruntime tables: which export made the timed graphs
    return {
        k: v
        for k, v in {
            "device": " ".join(x for x in (spec.get("device"), f"({spec['device_name']})" if spec.get("device_name") else None) if x),
            "dtype": spec.get("dtype"),
            "backend": spec.get("backend"),
            "input size": f"{hw[0]}x{hw[1]}" if hw else None,
            "batch": spec.get("batch"),
            "threads": spec.get("threads"),
            "ONNX export": str(export) if export else None,
            "measured": prov.get("created"),
            "torch": prov.get("torch"),
        }.items()
        if v not in (None, "")
    }


def device_label(meta: dict[str, Any]) -> str:
    spec = meta.get("spec", {})
    name = spec.get("device_name") or spec.get("device") or "this device"
    hw = spec.get("input_hw")
    parts = [name, spec.get("dtype"), spec.get("backend"), f"{hw[0]}×{hw[1]}" if hw else None]
    return ", ".join(p for p in parts if p)


# ---- block library ---------------------------------------------------------------------------

def library(inputs: ReportInputs) -> tuple[Loaded | None, Missing | None]:
    base = inputs.library_dir or Path("library")
    frame, missing = _read_csv(base / "blocks.csv", LIBRARY_COLUMNS, what="block library table", command=CMD_LIBRARY)
    if frame is None:
        return None, missing
    return Loaded(frame, _read_json(base / "library.json"), base / "blocks.csv"), None


# ---- search ----------------------------------------------------------------------------------

def study_dirs(search_dir: Path | None) -> list[Path]:
    """Folders holding a study's tables (search/<study>/pareto.csv, or search/ itself), newest first."""
    if search_dir is None or not search_dir.is_dir():
        return []
    found = [p.parent for p in [search_dir / "pareto.csv", *search_dir.glob("*/pareto.csv")] if p.is_file()]
    return sorted(found, key=lambda d: (d / "pareto.csv").stat().st_mtime, reverse=True)


def search(inputs: ReportInputs) -> tuple[Loaded | None, Missing | None]:
    """The Pareto table of the study asked for, else of the newest study.

    meta = summary.json, plus 'published' (DataFrame or None) and 'dir' (the study's folder).
    """
    base = inputs.search_dir or Path("search")
    dirs = study_dirs(inputs.search_dir)
    if inputs.study:
        named = [d for d in dirs if d.name == inputs.study or _read_json(d / "summary.json").get("study") == inputs.study]
        if not named:
            have = ", ".join(d.name for d in dirs) or "none"
            return None, Missing(f"search study {inputs.study!r}", str(base), f"{CMD_SEARCH} (studies here: {have})")
        dirs = named
    if not dirs:
        return None, Missing("search Pareto table", str(base / "<study>" / "pareto.csv"), CMD_SEARCH, PARETO_COLUMNS)
    study_dir = dirs[0]
    frame, missing = _read_csv(study_dir / "pareto.csv", PARETO_COLUMNS, what="search Pareto table", command=CMD_SEARCH)
    if frame is None:
        return None, missing
    published_csv = study_dir / "published.csv"
    # an older search wrote a blank file when no published variant is a point of the space
    blank = published_csv.is_file() and not published_csv.read_text(errors="replace").strip()
    published, _ = (None, None) if blank else _read_csv(published_csv, ("name", "code", "latency_ms", "miou"),
                                                        what="", command="")
    meta = {"summary": _read_json(study_dir / "summary.json"), "published": published, "dir": study_dir,
            "others": [d.name for d in dirs[1:]]}
    return Loaded(frame, meta, study_dir / "pareto.csv"), None


def search_trials(inputs: ReportInputs, summary: dict[str, Any]) -> tuple[pd.DataFrame | None, Missing | None]:
    """All COMPLETE trials of the study: trial, miou, latency_ms, feasible (from the Optuna storage)."""
    storage, study = summary.get("storage"), summary.get("study")
    base = inputs.search_dir or Path("search")
    if not storage or not study or storage == "memory":
        return None, Missing("Optuna study storage (the search ran in memory)", str(base), CMD_SEARCH)
    if "://" in storage and "***" in storage:
        return None, Missing("Optuna study storage (its URL was saved without the password)", storage, f"{CMD_SEARCH}")
    try:
        import optuna
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if "://" in storage:
            store = storage
        else:
            path = Path(storage)
            if not path.is_file():  # a relative path saved from another working directory, or a journal
                # an older version named journal.log / studies.journal, since renamed to the one name
                renamed = (base / JOURNAL_NAME,) if path.name in LEGACY_JOURNAL_NAMES else ()
                path = next((p for p in (base / path.name, base.parent / path.name, *renamed) if p.is_file()), path)
            if not path.is_file():
                return None, Missing("Optuna journal", str(path), CMD_SEARCH)
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            store = JournalStorage(JournalFileBackend(str(path)))
        trials = optuna.load_study(study_name=study, storage=store).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    except Exception as e:  # a locked, foreign or corrupt storage: report it, draw the rest
        return None, Missing(f"readable Optuna study {study!r} ({type(e).__name__}: {str(e)[:80]})", storage, CMD_SEARCH)
    rows = []
    for t in trials:
        if t.values is None or len(t.values) < 2:
            continue
        rows.append({"trial": t.number, "miou": float(t.values[0]), "latency_ms": float(t.values[1]),
                     "feasible": all(x <= 0 for x in _violations(t)), "code": t.user_attrs.get("code", "")})
    return pd.DataFrame(rows, columns=["trial", "miou", "latency_ms", "feasible", "code"]).sort_values("trial"), None


def _violations(trial) -> list[float]:
    """Constraint values (<= 0: met): Optuna >= 5 `trial.constraints`, else older attributes."""
    constraints = getattr(trial, "constraints", None)
    if constraints:
        return [float(x) for x in constraints.values()]
    return [float(x) for x in trial.user_attrs.get("violations", trial.system_attrs.get("constraints", [])) or []]


DRAWABLE_METRICS = ("latency", "miou")  # the axes of the Pareto figure; params/MACs targets have none


def _parse_each(texts) -> list[tuple[str, tuple[Target, ...]]]:
    """Each stored target text with what the search's own grammar makes of it (`parse_targets`).

    A text the grammar rejects (written by hand, or by an older version) parses to nothing: the
    report skips it instead of failing, and lists it as not drawable.
    """
    if isinstance(texts, str):  # one comma-separated text instead of a list of them
        texts = [texts]
    out = []
    for text in texts or []:
        try:
            out.append((str(text), parse_targets(str(text))))
        except InvalidInput:
            out.append((str(text), ()))
    return out


def drawable_targets(texts) -> list[tuple[str, str, float]]:
    """(metric, op, bound in ms or %) for the targets a latency/mIoU plot can draw."""
    return [(t.metric, t.op, t.bound) for _, targets in _parse_each(texts) for t in targets
            if t.metric in DRAWABLE_METRICS]


def undrawable_targets(texts) -> list[str]:
    """The texts with no target a latency/mIoU plot can draw (params/MACs bounds, or not parseable)."""
    return [text for text, targets in _parse_each(texts) if not any(t.metric in DRAWABLE_METRICS for t in targets)]


# ---- full evaluation and the accuracy predictor ------------------------------------------------

def evaluated(inputs: ReportInputs) -> tuple[pd.DataFrame | None, Missing | None]:
    """Points fine-tuned and evaluated in full, with the mIoU in column `miou` (`accuracy`: the
    float model's, or the INT8 one's after an INT8 run).

    Rows fine-tuned from random initialisation (`init` = random, a comparison run) are left
    out: the figures show what the distilled pipeline delivers.
    """
    path = inputs.evaluated_path or Path("evaluated.csv")
    frame, missing = _read_csv(path, ("code",), what="table of fully evaluated points", command=CMD_EVALUATE)
    if frame is None:
        return None, missing
    wanted = accuracy(inputs)
    column = next((c for c in ((wanted,) if wanted != "measured_miou" else ("measured_miou", "miou")) if c in frame.columns), None)
    if column is None:
        command = CMD_EVALUATE + " --precision int8" if wanted == "int8_miou" else CMD_EVALUATE
        return None, Missing(f"table of fully evaluated points without column {wanted}", str(path), command, EVALUATED_COLUMNS)
    if "init" in frame.columns:
        frame = frame[frame["init"].fillna("distilled") == "distilled"]
    frame = frame.assign(miou=frame[column]).dropna(subset=["miou"])
    return frame.reset_index(drop=True), None


def predictor(inputs: ReportInputs) -> tuple[Loaded | None, Missing | None]:
    """The accuracy predictor's leave-one-out predictions next to the measured mIoU.

    frame: code, predicted (LOO), measured. From predictor/loo.csv when it is there; else from the
    predictor JSON's `validation.loo_predictions` joined with evaluated.csv by code.
    """
    base = inputs.predictor_dir or Path("predictor")
    meta = _read_json(base / "accuracy.json")
    loo, _ = _read_csv(base / "loo.csv", ("code", "loo_predicted_miou"), what="", command="")
    # the measured column is the accuracy the predictor was fitted on: int8_miou in an INT8 run
    measured = next((c for c in ("int8_miou", "measured_miou") if loo is not None and c in loo.columns), None)
    if loo is not None and measured is None:
        raise InvalidInput(f"report input {str(base / 'loo.csv')!r} has neither measured_miou nor int8_miou; "
                           "expected a table this tool wrote: delete it and re-run the step that writes it")
    if loo is not None:
        frame = pd.DataFrame({"code": loo["code"], "predicted": loo["loo_predicted_miou"], "measured": loo[measured]})
        return Loaded(frame.dropna(), meta, base / "loo.csv"), None
    files = sorted(base.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) if base.is_dir() else []
    found = [(p, d) for p in files for d in [_read_json(p)] if "validation" in d and "codes" in d]
    if not found:
        return None, Missing("accuracy predictor (loo.csv or accuracy.json)", str(base), CMD_PREDICTOR)
    path, d = found[0]
    codes = list(d["codes"])
    ev, missing = evaluated(inputs)
    if ev is None:
        return None, missing
    by_code = dict(zip(ev["code"], ev["miou"]))
    frame = pd.DataFrame({"code": codes, "predicted": list(d["validation"].get("loo_predictions", [])),
                          "measured": [by_code.get(c, math.nan) for c in codes]})
    return Loaded(frame.dropna(), d, path), None


def out_of_sample(inputs: ReportInputs) -> pd.DataFrame:
    """Evaluated points whose mIoU was predicted before they were measured (evaluate records the
    prediction of the predictor in use then): code, predicted, measured. Empty when none."""
    ev, _ = evaluated(inputs)
    if ev is None or "predicted_miou" not in ev.columns:
        return pd.DataFrame(columns=["code", "predicted", "measured"])
    frame = pd.DataFrame({"code": ev["code"], "predicted": pd.to_numeric(ev["predicted_miou"], errors="coerce"),
                          "measured": ev["miou"]})
    return frame.dropna().reset_index(drop=True)


BENCHMARK_COLUMNS = ("code", "predicted_miou", "measured_miou")


def predictor_benchmark(inputs: ReportInputs) -> Loaded | None:
    """The predictor's held-out benchmark (predictor/benchmark.csv), when one was made: points kept
    out of every fit, predicted and then measured. None when the workdir has none (not an error)."""
    base = inputs.predictor_dir or Path("predictor")
    frame, _ = _read_csv(base / "benchmark.csv", BENCHMARK_COLUMNS, what="", command="")
    if frame is None:
        return None
    frame = pd.DataFrame({"code": frame["code"], "predicted": pd.to_numeric(frame["predicted_miou"], errors="coerce"),
                          "measured": pd.to_numeric(frame["measured_miou"], errors="coerce")}).dropna()
    return Loaded(frame.reset_index(drop=True), {}, base / "benchmark.csv") if len(frame) else None


def accuracy(inputs: ReportInputs) -> str:
    """The evaluated table's column the report's mIoU is: the one the run judged by (its summary's
    `accuracy`, int8_miou under an INT8 latency table), else measured_miou."""
    return (run_summary(inputs) or {}).get("accuracy") or "measured_miou"


def run_summary(inputs: ReportInputs) -> dict | None:
    """The run's verdict: the one `run` hands over, else run_summary.json; None when neither is there."""
    if inputs.run_summary is not None:
        return dict(inputs.run_summary)
    if inputs.run_summary_path is None or not inputs.run_summary_path.is_file():
        return None
    data = _read_json(inputs.run_summary_path)
    return data if isinstance(data, dict) and "budget" in data else None
