"""Does the accuracy predictor rank points the run never evaluated, and better than the trivial rules?

    .venv/bin/python -m bench.bench_predictor --workdir runs/quick [--k 16] [--draw-seed 0] [--short-steps 10]

On a finished `ffnet-nas run` workdir: `ffnet_nas.predictor_check.check_predictor` with the run's own
space, fine-tuning and scoring (its run_summary.json). K never-evaluated points, each fine-tuned
under two seeds, scored again on disjoint images, ranked by the predictor and by every baseline
(output stride, params, MACs, measured latency, grad-norm, ZiCo, no fine-tuning, a short fine-tune);
Kendall tau against the mean of the seeds with bootstrap 95% intervals, overall and within the
largest output-stride group, side by side in one run. Resumable: a killed run measures only what
is missing (WORKDIR/predictor/check/measurements.csv). Prints the Markdown table docs/results.md quotes.
"""

from __future__ import annotations

import argparse
import logging
import time

from ffnet_nas.predictor_check import check_predictor, run_settings
from ffnet_nas.space.searchspace import get_search_space
from ffnet_nas.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--draw-seed", type=int, default=0)
    parser.add_argument("--short-steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    workspace = Workspace(args.workdir)
    settings = run_settings(workspace)
    if settings is None:
        raise SystemExit(f"{args.workdir}: no run_summary.json; expected a workdir finished by 'ffnet-nas run'")
    t0 = time.perf_counter()
    check = check_predictor(workspace=workspace, space=get_search_space(settings.space), k=args.k,
                            config=settings.config, val_images=settings.val_images, score_at=settings.score_at,
                            short_steps=args.short_steps, draw_seed=args.draw_seed, device=args.device)
    print(check.table())
    print(f"\n({time.perf_counter() - t0:.0f} s; figures in {workspace.predictor_check_dir})")


if __name__ == "__main__":
    main()
