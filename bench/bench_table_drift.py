"""The latency table's scale against each finished run's own later timings (the check `run` now makes
at its end): for every workdir, the geometric mean of measured / predicted latency over the points its
evaluate step timed with its table, with a bootstrap 95% interval, and whether it lies wholly outside
the validation's +-10%. Points whose recorded prediction is not the table's now (a table measured
again) are left out. Reads the workdirs' files; times nothing.

    .venv/bin/python -m bench.bench_table_drift WORKDIR [WORKDIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def drift_of(workdir: Path):
    """The table the run's best point was timed with, and its `TableDrift` over the points timed with
    it in the workdir (`ffnet_nas.evaluate.drift.table_drifts`, what `run` and `evaluate` report)."""
    from ffnet_nas.evaluate.drift import table_drifts
    from ffnet_nas.run_summary import read_summary
    from ffnet_nas.workspace import Workspace

    ws = Workspace(workdir)
    summary = read_summary(ws.run_summary_path)
    name = (summary.best or {}).get("latency_table")
    if not name:
        raise SystemExit(f"{workdir}: its run_summary.json names no latency table for its best point; expected a "
                         "workdir finished by 'ffnet-nas run'")
    drift = table_drifts(ws, [name]).get(name)
    if drift is None:
        raise SystemExit(f"{workdir}: no point in evaluated.csv was timed with {name} as it is now (or lut/ no "
                         "longer holds it)")
    return name, drift


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
