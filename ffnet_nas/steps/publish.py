"""The last step: the report over whatever the workdir holds.

    report(workspace=ws, request=ReportRequest(formats=("html",)))   `ffnet-nas report`, run step 7
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ffnet_nas.workspace import Workspace


@dataclass(frozen=True, kw_only=True)
class ReportRequest:
    formats: tuple[str, ...] = ("html",)
    paper: bool = True  # the paper's figures re-drawn from its tables
    pareto: bool = True  # this device's Pareto figure and the evidence behind it
    out_dir: Path | None = None  # None: the workdir's report folder
    lut: str | None = None  # a table slug when several fit (None: predictors.load rule, at the teacher's size)
    study: str | None = None  # a study name when the search folder holds several
    # the run's verdict for the report's first section (RunSummary as a dict + 'closing', the lines the
    # CLI prints); None: the workdir's run_summary.json, if a run wrote one
    run_summary: dict | None = None


def report(*, workspace: Workspace, request: ReportRequest, progress: bool = True):
    """Build the report; returns `reports.build.ReportResult` (figures, notes, files written, index)."""
    from ffnet_nas.reports.build import build_report
    from ffnet_nas.reports.inputs import ReportInputs

    inputs = ReportInputs(lut_dir=workspace.lut_dir, library_dir=workspace.library_dir, search_dir=workspace.search_dir,
                          evaluated_path=workspace.evaluated_path, predictor_dir=workspace.predictor_dir,
                          lut=request.lut, study=request.study, input_hw=_evaluated_hw(workspace),
                          run_summary=request.run_summary, run_summary_path=workspace.run_summary_path)
    return build_report(inputs=inputs, out_dir=Path(request.out_dir or workspace.report_dir), paper=request.paper,
                        pareto=request.pareto, formats=tuple(request.formats), progress=progress)


def _evaluated_hw(workspace: Workspace) -> tuple[int, int] | None:
    """The input size `evaluate` chooses its latency table at (the teacher's), so that the report
    shows the same table; None without a readable teacher (the report draws what it can)."""
    if not workspace.teacher_path.exists():
        return None
    from ffnet_nas.distill.teacher import read_teacher_info
    from ffnet_nas.evaluate import data_of
    from ffnet_nas.space.errors import InvalidInput

    try:
        return data_of(read_teacher_info(workspace.teacher_path))[1]
    except InvalidInput:  # a damaged teacher is another command's error; the report stays tolerant
        return None


__all__ = ["ReportRequest", "report"]
