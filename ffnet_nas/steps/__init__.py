"""One function per pipeline step, called alike by its command and by `ffnet-nas run`.

    step                        command                     module
    train_teacher(...)          ffnet-nas train-teacher     steps.prepare
    distill(...)                ffnet-nas distill           steps.prepare
    measure_latency(...)        ffnet-nas measure-latency   steps.prepare
    fit_predictor(...)          ffnet-nas fit-predictor     steps.explore  (also each refine round: refit)
    search(...)                 ffnet-nas search            steps.explore  (also each refine round)
    evaluate(...)               ffnet-nas evaluate          steps.explore  (also each refine round)
    report(...)                 ffnet-nas report            steps.publish

Every step is `step(*, workspace, request, progress=True) -> result`: the request and the result
are frozen dataclasses, the workspace (`ffnet_nas.workspace.Workspace`) is the only thing that
knows file names. `run` builds the requests from its budget and a `RunContext` (the workspace,
space, device, data, teacher metadata and config, made once), see `ffnet_nas.pipeline`; a single
command, which has no context, takes the class count from `workdir_num_classes`.
"""

from ffnet_nas.steps.context import (RunContext, open_run, read_training_precision, run_precision, workdir_num_classes,
                                     write_training_precision)
from ffnet_nas.steps.explore import (EvaluateRequest, EvaluateResult, PredictorRequest, PredictorResult, SearchOutput,
                                     SearchRequest, evaluate, fit_predictor, search)
from ffnet_nas.steps.prepare import (DistillRequest, DistillResult, LatencyRequest, TeacherRequest, TeacherResult,
                                     distill, measure_latency, train_teacher)
from ffnet_nas.steps.publish import ReportRequest, report

__all__ = ["DistillRequest", "DistillResult", "EvaluateRequest", "EvaluateResult", "LatencyRequest", "PredictorRequest",
           "PredictorResult", "ReportRequest", "RunContext", "SearchOutput", "SearchRequest", "TeacherRequest",
           "TeacherResult", "distill", "evaluate", "fit_predictor", "measure_latency", "open_run", "report", "search",
           "read_training_precision", "run_precision", "train_teacher", "workdir_num_classes", "write_training_precision"]
