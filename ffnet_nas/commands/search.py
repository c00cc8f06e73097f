"""`ffnet-nas search`: Optuna search for Pareto points (predicted mIoU up, predicted latency down)."""

from __future__ import annotations

import argparse

from ffnet_nas.commands._common import RERANK_BY, SAMPLERS, TARGET_GRAMMAR, common_options
from ffnet_nas.workspace import JOURNAL_NAME, Workspace  # stdlib-only module


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search", parents=[common_options(progress=True)],
        help="search the space for Pareto points under a target (e.g. --target 'latency<25ms')",
        description="Multi-objective Optuna search: maximise predicted mIoU, minimise predicted latency (from the "
                    "workdir's latency table and accuracy predictor), with --target bounds as constraints. Published "
                    "variants are evaluated first. The study is stored in "
                    f"WORKDIR/search/{JOURNAL_NAME} (or "
                    "--storage URL); re-running continues it until it holds --trials complete trials, and several "
                    "processes may run it at once. Writes WORKDIR/search/<study>/pareto.csv, published.csv, "
                    "summary.json (+ closest.csv when nothing meets the target, to_evaluate.csv with --evaluate-top).",
    )
    p.add_argument("--target", default="", help=f"constraints, e.g. 'latency<25ms,params<10M'; {TARGET_GRAMMAR}")
    p.add_argument("--space", default="mobile", help="built-in space (mobile, gpu_large, gpu_small, all, mobile_peers) or a YAML file")
    p.add_argument("--trials", type=int, default=1000, help="complete trials the study should hold (default 1000)")
    p.add_argument("--sampler", choices=SAMPLERS, default="nsga2", help="nsga2 (default), tpe or random")
    p.add_argument("--storage", default=None,
                   help="journal file path or SQLAlchemy URL (postgresql://user:pass@host/db) shared by several "
                        f"workers (default: WORKDIR/search/{JOURNAL_NAME})")
    p.add_argument("--study", default=None, help="study name (default: SPACE.TARGETS)")
    p.add_argument("--lut", default=None, help="latency table name in WORKDIR/lut when several fit the space")
    p.add_argument("--evaluate-top", type=int, default=0, metavar="K",
                   help="list the best K feasible points in WORKDIR/search/to_evaluate.csv (and the study's folder) "
                        "for 'ffnet-nas evaluate --from-search'")
    p.add_argument("--rerank", type=int, default=None, metavar="N",
                   help="with --evaluate-top: re-rank the best N feasible points by their expected gain over "
                        "--reference before listing them; writes reranked.csv (default 24; 0: rank by the predicted "
                        "mean alone)")
    p.add_argument("--rerank-by", choices=RERANK_BY, default=RERANK_BY[0],
                   help="the mean and spread the re-ranking uses: predictor (the search's own accuracy predictor; "
                        "default) or zero-shot (the predictor's zero-shot stage: each point's distilled model scored "
                        "once with no fine-tuning after recalibrating its BatchNorm; the quick budget's choice)")
    p.add_argument("--rerank-per-class", type=int, default=0, metavar="N",
                   help="with --rerank: every structure class (stages, first stride, pre_down) among the feasible "
                        "points keeps at least its best N among the re-ranked (default 0: the best N alone)")
    p.add_argument("--reference", default=None, metavar="NAME_OR_CODE",
                   help="with --rerank: order the list by the expected gain over this point (e.g. the published "
                        "variant nearest the target), not by the predicted mean")
    p.add_argument("--seed", type=int, default=None, help="sampler seed (give each parallel worker its own)")
    p.add_argument("--durable", action="store_true", help="fsync every journal write (survives power loss; slower)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ffnet_nas import steps
    from ffnet_nas.predictors.load import find_lut
    from ffnet_nas.search.targets import parse_targets
    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.space.searchspace import get_search_space

    if args.trials < 1:
        raise InvalidInput(f"--trials {args.trials}: expected a positive number of complete trials")
    if args.evaluate_top < 0:
        raise InvalidInput(f"--evaluate-top {args.evaluate_top}: expected 0 or a positive number of points")
    rerank = (24 if args.evaluate_top else 0) if args.rerank is None else args.rerank
    if rerank < 0:
        raise InvalidInput(f"--rerank {rerank}: expected 0 (off) or a positive number of candidates")
    if args.reference is not None:
        from ffnet_nas.space.arch import resolve

        resolve(args.reference)  # an unknown name or a malformed code: one line, before any work
    targets = parse_targets(args.target)  # fail on a malformed target before touching anything
    space = get_search_space(args.space)
    ws = Workspace(args.workdir)
    # params and MACs of a point depend on the head's classes: the teacher's, else those the table
    # the search scores latency with was timed for (the step picks that table by the same rule)
    num_classes = steps.workdir_num_classes(ws, lut_path=find_lut(ws.lut_dir, space, lut=args.lut))
    found = steps.search(workspace=ws, progress=not args.no_progress, request=steps.SearchRequest(
        space=space, targets=targets, trials=args.trials, num_classes=num_classes, seed=args.seed,
        sampler=args.sampler, storage=args.storage, study=args.study, lut=args.lut, durable=args.durable,
        out_dir=ws.search_dir, study_subdir=True, latest_dir=ws.search_dir, evaluate_top=args.evaluate_top,
        rerank=rerank, rerank_by=args.rerank_by, rerank_per_class=args.rerank_per_class, reference=args.reference))
    return report(found, ws=ws, evaluate_top=args.evaluate_top)


def report(found, *, ws: Workspace, evaluate_top: int) -> int:
    """Print the tables the step wrote and where they went; an unmeetable target ends in one error line."""
    from ffnet_nas.search import summary
    from ffnet_nas.search.storage import redact
    from ffnet_nas.space.errors import InvalidInput

    result, paths, storage = found.result, found.paths, found.storage
    print(f"study {result.study_name!r}: {result.n_complete} complete trials ({result.n_run} this run, "
          f"{result.own_ms_per_trial:.3f} ms of our own time per trial); storage {redact(str(storage))}")
    if not result.feasible:
        print(summary.closest_text(result))
        print(f"wrote {paths['closest']}")
        raise InvalidInput(f"no point of the {result.n_complete} searched meets "
                           f"{', '.join(t.text for t in result.targets)}; the closest are listed above and in "
                           f"{paths['closest']} (relax the target or search more: --trials)")
    print(summary.pareto_text(result))
    print(summary.dominance_text(result))
    print(summary.best_text(result))
    if found.reranked is not None:
        print(summary.reranked_text(found.reranked))
    if "to_evaluate" in paths:
        print(f"the top {evaluate_top} points are listed for full evaluation; evaluate them with: "
              f"ffnet-nas evaluate --from-search --top {evaluate_top} --workdir {ws.root}")
    if "://" not in str(storage):
        print(f"dashboard: optuna-dashboard {storage}")
    for path in paths.values():
        print(f"wrote {path}")
    return 0
