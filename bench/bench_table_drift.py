"""The latency table's scale against each finished run's own later timings (the check `run` now makes
at its end): for every workdir, the geometric mean of measured / predicted latency over the points its
evaluate step timed with its table, with a bootstrap 95% interval, and whether it lies wholly outside
the validation's +-10%. Reads the workdirs' files; times nothing.

    .venv/bin/python -m bench.bench_table_drift WORKDIR [WORKDIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def drift_of(workdir: Path):
    """`TableDrift` over the evaluated points timed with the table the run's best point was timed with."""
    from ffnet_nas.evaluate import read_evaluated
    from ffnet_nas.predictors.latency.validate import table_drift
    from ffnet_nas.run_summary import read_summary
    from ffnet_nas.workspace import Workspace

    ws = Workspace(workdir)
    summary = read_summary(ws.run_summary_path)
    if not summary.best:
        raise SystemExit(f"{workdir}: its run found no point; expected a workdir finished by 'ffnet-nas run'")
    rows = read_evaluated(ws.evaluated_path)
    rows = rows[rows["latency_table"] == summary.best["latency_table"]]
    return summary.best["latency_table"], table_drift(rows["predicted_latency_ms"], rows["measured_latency_ms"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print("| workdir | table | points | measured / predicted [95%] | outside +-10% |\n|---|---|---:|---:|---|")
    for workdir in args.workdirs:
        table, d = drift_of(workdir)
        print(f"| {workdir} | {table} | {d.n} | {d.ratio:.2f}x [{d.low:.2f}, {d.high:.2f}] | {'yes' if d.drifted else 'no'} |")


if __name__ == "__main__":
    main()
