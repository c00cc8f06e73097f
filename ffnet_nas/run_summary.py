"""What one `ffnet-nas run` concluded, as a value: its run_summary.json.

    summary = read_summary(workspace.run_summary_path)   # from this version or an older one

`ffnet_nas.pipeline` fills it in and writes it; `ffnet_nas.found` (export --from-run) and the
report read it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ffnet_nas.space.errors import InvalidInput


@dataclass
class RunSummary:
    budget: str
    space: str
    device: str
    data: str = "synthetic"
    train_hw: list | None = None  # the crop every training step used
    input_hw: list | None = None  # the deployment input: latency table, target, timings, MACs
    target: str = ""
    reference: str | None = None  # the published variant nearest the target (what the user would pick)
    best: dict | None = None  # the best evaluated search point
    reference_row: dict | None = None
    beats_reference: bool | None = None
    # the best point is also more accurate than the reference on validation images no choice was made on
    held_out_confirms: bool | None = None
    # the best point and the reference fine-tuned again (ffnet_nas.win_check): the four wins, each
    # point's own spread, and whether the win is larger than that noise
    win_check: dict | None = None
    # the best point and the reference timed side by side after the verdict (evaluate.paired_latency):
    # best_ms, reference_ms, rounds; and whether the best point is faster there too
    latency_pair: dict | None = None
    latency_confirms: bool | None = None
    # more accurate winners (on the evaluate step's timings) that were NOT faster side by side, so the
    # verdict passed over them (refine.first_faster_side_by_side): code, best_ms, reference_ms each
    side_by_side_tried: list | None = None
    # the evaluated table's column every mIoU above is (ffnet_nas.evaluate.ACCURACY_COLUMNS): the fine-tuned
    # model's, or under an INT8 latency table the quantised model's, what ships
    accuracy: str = "measured_miou"
    # the published variants within the latency target that the run measured, the most accurate of
    # them and whether the best point beats it too (ffnet_nas.rivals.PublishedRivals as a dict)
    published_rivals: dict | None = None
    # the best point and that strongest rival, when it is not the reference, fine-tuned again as the
    # win check does (ffnet_nas.win_check.WinCheck as a dict, its "text" included)
    rival_check: dict | None = None
    # the latency table's scale against the timings of the points fine-tuned with it in the workdir, the
    # design points and the evaluate step's (ffnet_nas.evaluate.drift: a TableDrift as a dict, "drifted" included)
    latency_drift: dict | None = None
    rounds: list = field(default_factory=list)  # refine rounds run after the first evaluation
    seconds: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)


def read_summary(path) -> RunSummary:
    """A run_summary.json, from this version or an older one (extra keys such as provenance are
    ignored); one line saying why and what to do when it cannot be read."""
    from ffnet_nas.space.io import read_json

    data = read_json(path, what="run summary")
    if not isinstance(data, dict) or not {"budget", "space", "device"} <= set(data):
        raise InvalidInput(f"run summary {str(path)!r} lacks budget/space/device; expected a file written by "
                           "'ffnet-nas run' (re-run it to write a new one)")
    names = {f.name for f in dataclasses.fields(RunSummary)}
    return RunSummary(**{k: v for k, v in data.items() if k in names})


__all__ = ["RunSummary", "read_summary"]
