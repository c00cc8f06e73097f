"""`ffnet-nas measure-latency`: per-unit latency table for a device, calibrated and validated."""

from __future__ import annotations

import argparse

from ffnet_nas.commands._common import (
    BACKENDS,
    CLOCKS,
    DTYPES,
    ESTIMATORS,
    common_options,
)

PRECISIONS = (*DTYPES, "int8")  # ffnet_nas.predictors.latency.protocol.PRECISIONS
FORMS = ("deploy", "module", "folded", "folded_cl")  # ffnet_nas.predictors.latency.form.REQUESTS


def _repeats(text: str) -> tuple[int, int]:
    """'10' -> (10, 100); '10:50' -> (10, 50)."""
    from ffnet_nas.space.errors import (
        InvalidInput,  # not at module level: it loads torch
    )

    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts.append(max(parts[0], 100))
    if len(parts) != 2 or not 1 <= parts[0] <= parts[1]:
        raise InvalidInput(f"--repeats {text!r}: expected MIN or MIN:MAX timed runs per round, e.g. 10 or 10:100")
    return parts[0], parts[1]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "measure-latency", parents=[common_options(device="cpu", threads=True, progress=True)],
        help="measure a per-unit latency table on a device, calibrate it, optionally validate it",
        description="Times every distinct unit (stem, residual block, head) the space needs, once, into "
                    "WORKDIR/lut/<slug>.csv (+ .json metadata); fits measured = a*sum + b on a few networks "
                    "timed end to end; with --validate N, times N random points plus every published variant "
                    "twice and reports the predictor's error next to the measurement's own repeatability. "
                    "Interrupt at any time: a re-run measures only what is missing.",
    )
    p.add_argument("--space", default="mobile", help="built-in space (mobile, gpu_large, gpu_small, all, mobile_peers, peers_paper: the peers' paper shapes) or a YAML file")
    p.add_argument("--input-size", default=None, metavar="HxW",
                   help="tensor entering the stem (default: the space's; pre_down points get 2x)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", choices=DTYPES, default="fp32", help="arithmetic of the timed networks (default fp32); "
                   "--precision says the same and also takes int8")
    p.add_argument("--precision", dest="dtype", choices=PRECISIONS, default="fp32",
                   help="the table's precision: fp32 (default), fp16, bf16, or int8 (ONNX Runtime static QDQ "
                        "quantisation on cpu, calibrated on the workdir's data; needs --backend onnxruntime)")
    p.add_argument("--backend", choices=BACKENDS, default="eager",
                   help="eager (default), compile (torch.compile) or onnxruntime")
    p.add_argument("--form", choices=FORMS, default="deploy",
                   help="eager/compile: what is timed. deploy (default): BN folded, channels_last if its probe is "
                        "faster here (an existing table keeps its form); module: as built; folded; folded_cl")
    p.add_argument("--num-classes", type=int, default=None, metavar="N",
                   help="classes the timed head predicts (default: the teacher's, WORKDIR/teacher/teacher.pt; "
                        "without a teacher, the --data set's)")
    p.add_argument("--data", default=None, metavar="SPEC",
                   help="without a teacher: the data set whose class count the head is timed for "
                        "(synthetic | cityscapes:PATH | ade20k:PATH | folder:PATH; default synthetic)")
    p.add_argument("--repeats", default="10:100", metavar="MIN[:MAX]",
                   help="timed runs per round (rounds repeat until the estimate moves < --tolerance) and the cap")
    p.add_argument("--tolerance", type=float, default=0.02, help="relative change that counts as stable (default 0.02)")
    p.add_argument("--max-seconds", type=float, default=10.0, help="time cap per measured thing, after warm-up")
    p.add_argument("--estimator", choices=ESTIMATORS, default=None,
                   help="statistic of the timed runs (default: p25 on cpu, median on gpu)")
    p.add_argument("--rounds", type=int, default=None,
                   help="independent interleaved rounds per key, the lowest kept (default 2 on cpu, 1 on gpu)")
    p.add_argument("--clock", choices=CLOCKS, default="wall",
                   help="wall (default) or cpu: CPU time of the thread, for --threads 1 on a shared machine")
    p.add_argument("--calibrate", type=int, default=6, metavar="N", help="networks timed end to end for the calibration")
    p.add_argument("--validate", type=int, default=0, metavar="N",
                   help="also time N random points + every published variant of the space twice, and report errors")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation sample")
    p.add_argument("--export-units", metavar="DIR", default=None,
                   help="measure nothing: write one ONNX file per table key plus the --calibrate networks and a "
                        "manifest.json into DIR, to time on a device this process cannot reach (then import-latency)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ffnet_nas import steps
    from ffnet_nas.predictors.latency.build import make_spec
    from ffnet_nas.predictors.latency.protocol import default_protocol
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.space.searchspace import get_space
    from ffnet_nas.workspace import Workspace

    space = get_space(args.space)
    ws = Workspace(args.workdir)
    input_hw = parse_hw(args.input_size) if args.input_size else space.input_hw
    # the head is timed for the classes the workdir's models predict (run: the teacher's), not a fixed 19
    num_classes = args.num_classes if args.num_classes is not None else steps.workdir_num_classes(ws, data=args.data)
    if args.export_units is not None:
        return _export_units(args, space=space, input_hw=input_hw, num_classes=num_classes)
    spec = make_spec(device=args.device, dtype=args.dtype, backend=args.backend, batch=args.batch,
                     input_hw=input_hw, threads=args.threads, num_classes=num_classes, form=args.form)
    lo, hi = _repeats(args.repeats)
    changes = {"min_repeats": lo, "max_repeats": hi, "rel_tol": args.tolerance, "max_seconds": args.max_seconds,
               "clock": args.clock}
    if args.estimator:
        changes["estimator"] = args.estimator
    if args.rounds is not None:
        changes["rounds"] = args.rounds
    protocol = default_protocol(spec.device, **changes)
    if args.calibrate < 0 or args.validate < 0:
        raise InvalidInput("--calibrate and --validate take a count >= 0")
    result = steps.measure_latency(workspace=ws, progress=not args.no_progress, request=steps.LatencyRequest(
        space=space, spec=spec, protocol=protocol, calibrate=args.calibrate, validate=args.validate, seed=args.seed))
    table = result.table
    print(f"latency table: {table.path} ({len(table)} keys; {result.n_keys} for space {space.name}, "
          f"{result.n_new} measured now, head of {spec.num_classes} classes) + {table.path.with_suffix('.json')}")
    if result.calibration is not None:
        c = result.calibration
        print(f"calibration ({c.model}): measured = {c.a:.4f} * sum + {c.b:.3f} ms on {c.n_points} networks "
              f"(fit rms {c.rel_rmse * 100:.1f}%, leave-one-out {c.loo_rel_rmse * 100:.1f}%) -> {table.path.with_suffix('.calibration.json')}")
    v = result.validation
    if v is not None:
        for label, a in (("predictor", v.predictor), ("raw sum", v.raw_sum), ("vs pass 1", v.per_pass[0]),
                         ("vs pass 2", v.per_pass[1]), ("repeatability", v.repeatability)):
            print(f"{label:>13}: n={a.n} median |err| {a.median_abs_pct:.1f}%  within ±10% {a.within_10pct * 100:.0f}%  "
                  f"Spearman {a.spearman:.3f}  Kendall {a.kendall:.3f}")
        if v.calibration_hurts:
            print(v.text())
        print(f"validation: {v.table_path} + {v.summary_path}")
    return 0


def _export_units(args: argparse.Namespace, *, space, input_hw, num_classes: int) -> int:
    from ffnet_nas.predictors.latency.export_units import export_units
    from ffnet_nas.space.errors import InvalidInput

    if args.calibrate < 0:
        raise InvalidInput("--calibrate takes a count >= 0")
    if not isinstance(args.batch, int) or args.batch < 1:
        raise InvalidInput(f"--batch {args.batch!r}: expected a positive integer")
    manifest = export_units(out_dir=args.export_units, space=space, input_hw=input_hw, batch=args.batch,
                            num_classes=num_classes, calibrate_n=args.calibrate, space_ref=args.space)
    n_net = len(manifest.networks("calibration"))
    print(f"exported {len(manifest.units())} unit files and {n_net} calibration networks (fp32 ONNX, "
          f"{input_hw[0]}x{input_hw[1]}, batch {args.batch}, head of {num_classes} classes) -> {manifest.path}")
    print("time every file on the device, then: ffnet-nas import-latency TIMES.csv --units "
          f"{args.export_units} --device-name NAME --runtime RUNTIME --precision P")
    return 0
