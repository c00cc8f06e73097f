"""What scoring a point on more validation images costs, beside what fine-tuning it costs.

    .venv/bin/python -m bench.bench_scoring_images --workdir runs/quick --out DIR [--points 3] \\
        [--images 64,256] [--repeats 3] [--draw-seed 0]

On a finished `ffnet-nas run` workdir on the embedded data: draws `--points` points the run never
evaluated (seeded, as `fit-predictor --check` draws them), fine-tunes each once under the run's own
settings (its run_summary.json, seed 0), then scores each fine-tuned model on the first N images of
a generated validation split, for every N in `--images`, interleaved (N1, N2, N1, N2, ...)
`--repeats` times so a change of machine speed hits every N alike. Prints, per N, the median
seconds to score one point and that time as a share of the point's fine-tune. Each scoring is also
checked to give the same mIoU on every repeat. DIR is a hard-linked copy of the workdir, so nothing
lands in the run's files. Issue 13 (docs/results.md, "F2: held BatchNorm with the gradient clipped
at 2.0"): what scoring on 256 images instead of 64 adds to each point.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench._workdir import held_out_points, link_copy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True, help="a hard-linked copy of the workdir is made here")
    parser.add_argument("--points", type=int, default=3)
    parser.add_argument("--images", default="64,256", help="scoring set sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--draw-seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.images.split(",") if n]
    if args.points < 1 or args.repeats < 1 or not sizes or min(sizes) < 1:
        raise SystemExit("expected --points, --repeats and every --images size >= 1")

    import dataclasses

    from ffnet_nas.data import make_dataset
    from ffnet_nas.distill.assemble import assemble
    from ffnet_nas.evaluate import Resources
    from ffnet_nas.predictor_check import run_settings
    from ffnet_nas.space.searchspace import get_search_space
    from ffnet_nas.training import evaluate, train
    from ffnet_nas.workspace import Workspace

    workspace = Workspace(link_copy(args.workdir, args.out, ignore=("check", "model.pt")))
    settings = run_settings(workspace)
    if settings is None:
        raise SystemExit(f"{args.workdir}: no run_summary.json; expected a workdir finished by 'ffnet-nas run'")
    r = Resources.load(workspace, score_at=settings.score_at)
    if not r.data.startswith("synthetic"):
        raise SystemExit(f"the embedded data only (this workdir's is {r.data!r}): it generates the larger split")
    val = make_dataset(r.data, "val", size_hw=r.score_hw, num_images=max(sizes), cache_dir=workspace.data_dir)
    points = held_out_points(workspace, get_search_space(settings.space), args.points, seed=args.draw_seed)
    finetune_s, seconds, scores = [], {n: [] for n in sizes}, {}
    for arch in points:
        model = assemble(arch, workspace.library_dir)
        t0 = time.perf_counter()
        train(model, r.train_ds, config=dataclasses.replace(settings.config, seed=0), teacher=r.teacher, progress=False,
              fingerprint={"init": "distilled", "data": r.data})
        finetune_s.append(time.perf_counter() - t0)
        for _ in range(args.repeats):
            for n in sizes:
                t0 = time.perf_counter()
                miou = evaluate(model.eval(), val, limit=n, progress=False).miou
                seconds[n].append(time.perf_counter() - t0)
                if scores.setdefault((arch.code, n), miou) != miou:
                    raise SystemExit(f"{arch.code} scored {miou} and {scores[(arch.code, n)]} on the same {n} images")
        print(f"{arch.code}: fine-tune {finetune_s[-1]:.1f} s; " + ", ".join(
            f"{n} images {statistics.median(seconds[n][-args.repeats:]):.2f} s (mIoU {100 * scores[(arch.code, n)]:.2f})"
            for n in sizes), flush=True)
    fine = statistics.median(finetune_s)
    print(f"\n{len(points)} points, {settings.config.steps}-step fine-tune: median {fine:.1f} s")
    print("| scoring images | median s per point | share of a fine-tune | ratio to the first size |\n|---:|---:|---:|---:|")
    first = statistics.median(seconds[sizes[0]])
    for n in sizes:
        m = statistics.median(seconds[n])
        print(f"| {n} | {m:.2f} | {m / fine:.1%} | {m / first:.2f}x |")


if __name__ == "__main__":
    main()
