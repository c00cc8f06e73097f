"""What making the report costs, and PNG export by kaleido vs by Chromium screenshots.

    .venv/bin/python bench/bench_report.py [--rounds 2]

Measured side by side in one run, interleaved round by round (so a drift of a shared machine
hits every path alike), on the three paper figures:
  * compute + render of the figures (plotly objects, label placement),
  * one offline HTML page with all three (plotly.js inlined),
  * PNG by kaleido (one browser session for all figures; needs `kaleido>=1`),
  * PNG by headless Chromium screenshots (one browser start per figure; the fallback).
Prints the median seconds per path and the ratio screenshot / kaleido.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from ffnet_nas.reports import export  # noqa: E402
from ffnet_nas.reports.browser import find_chromium  # noqa: E402
from ffnet_nas.reports.build import paper_report_figures  # noqa: E402
from ffnet_nas.reports.html import write_html  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if find_chromium() is None:
        print("bench_report: no Chromium (apt-get install chromium); nothing to compare")
        return 1
    has_kaleido = export.kaleido_available()
    times: dict[str, list[float]] = {"compute+render": [], "html page": [], "png kaleido": [], "png screenshot": []}
    real = export.kaleido_available
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            t0 = time.perf_counter()
            figs = paper_report_figures()
            times["compute+render"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            write_html(figs, Path(tmp) / f"html{r}")
            times["html page"].append(time.perf_counter() - t0)
            order = ["png kaleido", "png screenshot"] if r % 2 == 0 else ["png screenshot", "png kaleido"]
            for path in order:
                if path == "png kaleido" and not has_kaleido:
                    continue
                export.kaleido_available = real if path == "png kaleido" else (lambda: False)
                t0 = time.perf_counter()
                export.export_static(figs, Path(tmp) / f"{path.split()[1]}{r}", formats=("png",))
                times[path].append(time.perf_counter() - t0)
            export.kaleido_available = real
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items() if v), flush=True)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    print(f"\n3 paper figures, {args.rounds} rounds, median seconds:")
    for k, v in med.items():
        print(f"  {k:16s} {v:7.2f} s")
    if "png kaleido" in med:
        print(f"  ratio screenshot / kaleido: {med['png screenshot'] / med['png kaleido']:.2f}x")
    else:
        print("  kaleido not installed: no ratio (pip install 'kaleido>=1')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
