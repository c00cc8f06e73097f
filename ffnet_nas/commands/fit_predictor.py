"""ffnet-nas fit-predictor: evaluate a space-filling set of points and fit the accuracy predictor."""

from __future__ import annotations

import argparse

from ffnet_nas.commands._common import FEATURE_SET_NAMES, add_scheduler_arg, common_options
from ffnet_nas.settings import PRECISIONS, accuracy_label
from ffnet_nas.commands.evaluate import add_finetune_args, add_lut_arg, finetune_settings, workdir_run_settings


def register(sub) -> None:
    p = sub.add_parser("fit-predictor", parents=[common_options(device="cpu")],
                       help="fit the accuracy predictor (evaluating points as needed)",
                       description="Picks N points (published variants of the space plus a space-filling sample), "
                                   "evaluates those not yet evaluated, fits a ridge model from the points' choices "
                                   "(or, with --features nsr, their blocks' held-out NSR) to measured mIoU, and "
                                   "reports leave-one-out Kendall tau and Spearman.")
    p.add_argument("--n", type=int, default=12, help="points to pick (default 12); all evaluated rows are used")
    p.add_argument("--space", default=None, help="built-in space name or YAML file (default: the workdir's run's, else mobile)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--refit-only", action="store_true", help="refit on the evaluated rows, evaluate nothing")
    p.add_argument("--features", choices=FEATURE_SET_NAMES, default=None,
                   help="what the ridge reads: route_free (output stride, one indicator per categorical choice but "
                        "the first stride and pre_down, which only say how the point reaches its stride, log params), "
                        "within_stride (the same with stride levels unshrunk and stage depths; not adopted), "
                        "choices (every indicator) or nsr (the distilled blocks' held-out NSR, log params, output "
                        "stride); default: the workdir predictor's, else route_free. --check ranks with all four")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="the accuracy it learns: fp32 (the fine-tuned model's mIoU) or int8 (the model quantised as "
                        "the INT8 latency table does: evaluated points are scored in INT8 as needed; column int8_miou); "
                        "default: what the workdir's predictor learned, else what its run judged by, else fp32")
    p.add_argument("--check", type=int, default=None, metavar="K",
                   help="fit nothing: check the workdir's predictor on K points never evaluated, each fine-tuned under "
                        "two seeds as the run did (its run_summary.json; else the fine-tuning flags), against the "
                        "yardstick's own repeatability and the trivial rankings (stride, params, MACs, latency, "
                        "zero-cost proxies, no or a short fine-tune); writes WORKDIR/predictor/check/")
    p.add_argument("--check-seeds", default="0,1", metavar="A,B", help="the two fine-tuning seeds of --check (default 0,1)")
    p.add_argument("--short-steps", type=int, default=10, help="the short fine-tune --check ranks by (default 10 steps)")
    add_lut_arg(p)
    add_finetune_args(p)
    add_scheduler_arg(p, work="fine-tune the points")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ffnet_nas import steps
    from ffnet_nas.cluster import check_scheduler, scheduler_address
    from ffnet_nas.predictors.accuracy import LOO_FILE, PREDICTOR_FILE, ZERO_SHOT_FILE
    from ffnet_nas.predictors.load import load_zero_shot_predictor
    from ffnet_nas.workspace import Workspace

    workspace = Workspace(args.workdir)
    if args.check is not None:
        return _check(args, workspace)
    scheduler = scheduler_address(args.scheduler)
    check_scheduler(scheduler)
    from ffnet_nas.fit_predictor import workdir_precision

    args.precision = args.precision or workdir_precision(workspace)
    if args.refit_only:
        request = _refit_request(args, workspace)
    else:
        from ffnet_nas.space.searchspace import get_search_space

        settings = workdir_run_settings(workspace)
        finetune, val_images, score_at = finetune_settings(args, settings)
        # --space, else the space the workdir's run searched, else mobile
        space = get_search_space(args.space or (settings.space if settings is not None else "mobile"))
        request = steps.PredictorRequest(
            space=space, points=args.n, seed=args.seed, finetune=finetune, val_images=val_images,
            score_at=score_at, device=args.device, lut=args.lut, scheduler=scheduler, features=args.features,
            precision=args.precision)
    fitted = steps.fit_predictor(workspace=workspace, request=request)
    predictor = fitted.predictor
    v = predictor.validation
    from ffnet_nas.predictors.accuracy import feature_set_of

    print(f"accuracy predictor: ridge on the {feature_set_of(predictor.feature_names)} features (alpha "
          f"{predictor.alpha:g}) on {v.n} fine-tuned points; leave-one-out "
          f"Kendall tau {v.kendall_tau:.3f}, Spearman {v.spearman:.3f}, mean abs error {v.mae:.2f} "
          f"{accuracy_label(request.precision)}")
    stage = load_zero_shot_predictor(fitted.folder)
    if stage is not None:
        z = stage.validation
        recalibrated = f", BatchNorm recalibrated on {stage.meta['bn_batches']} batches" if stage.meta.get("bn_batches") else ""
        print(f"zero-shot stage (ridge on {', '.join(stage.feature_names)}: the distilled model's mIoU with no "
              f"fine-tuning{recalibrated}{' and the output stride' if len(stage.feature_names) > 1 else ''}): leave-one-out "
              f"Kendall tau {z.kendall_tau:.3f}, Spearman {z.spearman:.3f}, mean abs error {z.mae:.2f} mIoU "
              f"-> {fitted.folder / ZERO_SHOT_FILE}")
    print(f"wrote {fitted.folder / PREDICTOR_FILE} and {fitted.folder / LOO_FILE}")
    return 0


def _refit_request(args: argparse.Namespace, workspace):
    """A refit scores the zero-shot stage on the images the rows were scored on: the run's (its
    run_summary.json) unless --val-images says otherwise."""
    from ffnet_nas import steps
    from ffnet_nas.predictor_check import run_settings

    settings = run_settings(workspace) if args.val_images is None else None
    val_images, score_at = (settings.val_images, settings.score_at) if settings is not None else (args.val_images, "train")
    return steps.PredictorRequest(refit_only=True, val_images=val_images, score_at=score_at, device=args.device,
                                  lut=args.lut, features=args.features, precision=args.precision)


def _check(args: argparse.Namespace, workspace) -> int:
    from ffnet_nas.predictor_check import check_predictor, run_settings
    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.space.searchspace import get_search_space

    try:
        seeds = tuple(int(s) for s in args.check_seeds.split(","))
    except ValueError:
        raise InvalidInput(f"--check-seeds {args.check_seeds!r}: expected two integers, e.g. 0,1") from None
    settings = run_settings(workspace)
    if settings is not None:
        space, config, val_images, score_at = (get_search_space(settings.space), settings.config, settings.val_images,
                                               settings.score_at)
        print(f"checking as the run evaluated: space {settings.space}, {config.steps} fine-tuning steps"
              f"{' in ' + config.amp if config.amp else ''}, "
              f"{val_images or 'all'} validation images (its run_summary.json; the fine-tuning flags are not used)")
    else:
        config, val_images, score_at = finetune_settings(args)
        space = get_search_space(args.space or "mobile")
    from ffnet_nas.fit_predictor import workdir_precision

    learned = workdir_precision(workspace)
    if learned != "fp32":
        # the check's truth is the float fine-tune's mIoU; say so rather than compare unlike things silently
        print(f"note: this workdir's predictor learned {accuracy_label(learned)}; the check "
              "fine-tunes and scores in float, so its figures rank the float mIoU (INT8 moved every published "
              "mobile variant by under 0.3 mIoU on the embedded data: docs/results.md)")
    check = check_predictor(workspace=workspace, space=space, k=args.check, config=config, val_images=val_images,
                            seeds=seeds, short_steps=args.short_steps, draw_seed=args.seed, device=args.device,
                            lut=args.lut, score_at=score_at)
    print(check.table())
    print(f"wrote {workspace.predictor_check_dir}/measurements.csv and summary.json")
    return 0
