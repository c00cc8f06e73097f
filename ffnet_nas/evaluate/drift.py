"""A latency table's scale against the timings a workdir's evaluation took with it.

    drift = table_drift_of(workspace, table)     # None when no point was timed with this table
    print(drift.text())
    record = table_drift_record(workspace, table)  # the same, logged (a warning when drifted), as a dict
    drifts = table_drifts(workspace, ["cpu-fp32-eager-b1-64x128-t2.csv"])  # by the names evaluated.csv holds

Every fine-tuned point is timed under the table's protocol (`evaluate.point_latency`) and its row in
evaluated.csv keeps both figures. Only rows whose recorded prediction is what the table predicts now
count: a table measured again under the same file name (after a drift warning, say) predicts other
milliseconds, and the timings taken against the old one say nothing about it.
"""

from __future__ import annotations

import logging
import math

from ffnet_nas.evaluate import read_evaluated
from ffnet_nas.space.arch import Arch
from ffnet_nas.workspace import Workspace

logger = logging.getLogger(__name__)


def table_drift_of(workspace: Workspace, table):
    """`predictors.latency.validate.TableDrift` over the points of `workspace` timed with `table` as it
    is now; None when there are none."""
    from ffnet_nas.predictors.latency import predict_latency
    from ffnet_nas.predictors.latency.validate import table_drift

    rows = read_evaluated(workspace.evaluated_path)
    if not len(rows) or "latency_table" not in rows:
        return None
    rows = rows[rows["latency_table"] == table.path.name]
    predicted, measured = [], []
    for code, recorded, timed in zip(rows["code"], rows["predicted_latency_ms"], rows["measured_latency_ms"]):
        now = predict_latency(Arch.parse(code), table)
        if math.isclose(float(recorded), now, rel_tol=1e-6):  # NaN (never timed) matches nothing
            predicted.append(now)
            measured.append(float(timed))
    return table_drift(predicted, measured) if predicted else None


def table_drift_record(workspace: Workspace, table) -> dict | None:
    """`table_drift_of` logged in one line (a warning when the table drifted) and as a dict, what
    `run_summary.json` keeps under `latency_drift` and the closing lines read."""
    drift = table_drift_of(workspace, table)
    if drift is None:
        return None
    (logger.warning if drift.drifted else logger.info)("  %s", drift.text())
    return drift.to_dict()


def table_drifts(workspace: Workspace, names) -> dict:
    """{table file name: TableDrift} for each named table (as evaluated.csv's `latency_table` column
    names them) that `workspace`'s lut/ still holds and that timed a point; what `ffnet-nas evaluate`
    prints after its points, so a drift shows outside a run too."""
    from ffnet_nas.predictors.load import load_latency_table

    drifts = {}
    for name in dict.fromkeys(n for n in names if isinstance(n, str) and n):
        path = workspace.lut_dir / name
        if path.is_file():
            drift = table_drift_of(workspace, load_latency_table(path))
            if drift is not None:
                drifts[name] = drift
    return drifts


__all__ = ["table_drift_of", "table_drift_record", "table_drifts"]
