"""`ffnet-nas import-latency FILE`: times measured on a device elsewhere -> a latency table in the workdir."""

from __future__ import annotations

import argparse

from ffnet_nas.commands._common import common_options

PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # ffnet_nas.predictors.latency.imported.PRECISIONS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import-latency", parents=[common_options()],
        help="read device times of the files measure-latency --export-units wrote into a latency table",
        description="FILE: a CSV with header key,ms or file,ms (milliseconds, one row per exported file), a JSON "
                    "object {file or key: AI Hub download_profile() output} (times in microseconds), or a folder "
                    "of <file stem>.json profiles. Every unit and calibration network of the manifest needs a "
                    "time. Writes WORKDIR/lut/ext-<device>-<precision>-<runtime>-b<batch>-<H>x<W>.csv (+ .json, "
                    ".calibration.json) recording device, runtime, toolchain and precision; search, evaluate and "
                    "report pick it with --lut NAME. With --validate N: adds the validation networks to the export "
                    "folder and lists them; once FILE holds their times too, scores the predictor on them.",
    )
    p.add_argument("file", metavar="FILE", help="the times: CSV key,ms | file,ms, AI Hub profiles JSON, or a folder")
    p.add_argument("--units", metavar="DIR", default=None,
                   help="the folder measure-latency --export-units wrote (default: FILE's folder)")
    p.add_argument("--device-name", required=True, metavar="NAME", help="the device, e.g. 'Galaxy S24'")
    p.add_argument("--runtime", required=True, metavar="TEXT", help="the runtime that timed the files, e.g. 'tflite 2.16'")
    p.add_argument("--toolchain", default=None, metavar="VERSION",
                   help="converter/compiler version (e.g. 'qai-hub 0.30'): the same model's device time moves "
                        "between toolchain releases, so the table records it (default: unrecorded)")
    p.add_argument("--precision", choices=PRECISIONS, required=True, help="what the device computed in")
    p.add_argument("--validate", type=int, default=0, metavar="N",
                   help="N random points + every published variant: export them and list them to time; with their "
                        "times in FILE, report the predictor's error on them")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation sample")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ffnet_nas.predictors.latency.import_build import import_latency
    from ffnet_nas.workspace import Workspace

    ws = Workspace(args.workdir)
    r = import_latency(times_path=args.file, units=args.units, lut_dir=ws.lut_dir, device_name=args.device_name,
                       runtime=args.runtime, precision=args.precision, toolchain=args.toolchain,
                       validate_n=args.validate, seed=args.seed)
    t = r.table
    print(f"latency table: {t.path} ({r.n_units} keys, {t.spec.device_name}, {t.meta['external']['runtime']}, "
          f"{t.spec.dtype}, toolchain {t.meta['external']['toolchain']}) + {t.path.with_suffix('.json')}; "
          f"use it with --lut {t.path.stem} or --lut {t.spec.device_name!r} (it is chosen without either "
          f"where it is the only table at {t.spec.input_hw[0]}x{t.spec.input_hw[1]})")
    if r.calibration is not None:
        c = r.calibration
        print(f"calibration ({c.model}): measured = {c.a:.4f} * sum + {c.b:.3f} ms on {c.n_points} networks "
              f"(fit rms {c.rel_rmse * 100:.1f}%)")
    if r.to_time:
        folder = args.units or str(Path(args.file).parent)
        print(f"validation: time these {len(r.to_time)} files (in {folder}) on the device, add their times to "
              "FILE and run this command again:")
        for f in r.to_time:
            print(f"  {f}")
    if r.validation is not None:
        a = r.validation["predictor"]
        print(f"validation: predictor vs device on {a['n']} networks: median |err| {a['median_abs_pct']:.1f}%  "
              f"within ±10% {a['within_10pct'] * 100:.0f}%  Spearman {a['spearman']:.3f} (one device time per "
              "network: its repeatability is not known here)")
    return 0
