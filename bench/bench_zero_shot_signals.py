"""Do other zero-shot signals of the distilled model rank a predictor check's held-out points better?

    .venv/bin/python -m bench.bench_zero_shot_signals CHECK_WORKDIR

CHECK_WORKDIR is a finished `bench.bench_predictor --out` folder (its measurements.csv holds the two
seeds' fine-tuned scores, the truth). For each held-out point the assembled distilled model is scored
with no fine-tuning on the first 64, 256 and 512 images of a 512-image embedded split, and compared
with the teacher on images 256-511 (disjoint from the truth's first 256): the mean per-pixel
KL(teacher || student) and the share of pixels where their argmax agrees. Prints each signal's Kendall
tau against the mean of the seeds with a bootstrap 95% interval, overall and within the largest
output-stride group, beside the yardstick's own (seed against seed); writes zs_features.csv there.
Issue 13, item 3: directions for the zero-shot stage, measured offline on one check (docs/results.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

SIGNALS = ["zs64", "zs256", "zs512", "neg_kl", "agree"]


def teacher_agreement(model, teacher, val, *, start: int, stop: int, batch: int = 16) -> tuple[float, float]:
    """Mean per-pixel KL(teacher || student), negated so that higher is better, and the share of
    pixels whose argmax agrees, over images start..stop (the student's logits resized to the teacher's)."""
    from ffnet_nas.training import kd_loss

    kl, agree, n = 0.0, 0.0, 0
    with torch.no_grad():
        for i in range(start, stop, batch):
            x = torch.stack([val[j][0] for j in range(i, min(i + batch, stop))])
            t, s = teacher(x), model(x)
            s = F.interpolate(s, size=t.shape[-2:], mode="bilinear", align_corners=False)
            kl += kd_loss(s, t).item() * len(x)  # the fine-tune's own KD term: mean over pixels
            agree += (s.argmax(1) == t.argmax(1)).float().mean().item() * len(x)
            n += len(x)
    return -kl / n, agree / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("check_workdir", help="a finished bench.bench_predictor --out folder")
    args = parser.parse_args()

    from ffnet_nas.data import make_dataset
    from ffnet_nas.distill.assemble import assemble
    from ffnet_nas.evaluate import Resources
    from ffnet_nas.predictor_check import largest_group, run_settings
    from ffnet_nas.space.arch import Arch
    from ffnet_nas.stats import kendall_interval
    from ffnet_nas.training import evaluate
    from ffnet_nas.workspace import Workspace

    torch.set_num_threads(1)
    ws = Workspace(Path(args.check_workdir))
    settings = run_settings(ws)
    path = ws.predictor_check_dir / "measurements.csv"
    if settings is None or not path.exists():
        raise SystemExit(f"{args.check_workdir}: expected a finished bench_predictor --out folder "
                         "(run_summary.json and predictor/check/measurements.csv)")
    measured = pd.read_csv(path).pivot(index="code", columns="quantity", values="value")
    m = measured.dropna(subset=["seed0", "seed1"])
    r = Resources.load(ws, score_at=settings.score_at)
    val = make_dataset(r.data, "val", size_hw=r.score_hw, num_images=512, cache_dir=ws.data_dir)
    teacher = r.teacher.eval()
    rows = []
    for code in m.index:
        arch = Arch.parse(code)
        model = assemble(arch, ws.library_dir).eval()
        row = {"code": code, "stride": arch.output_stride}
        for n in (64, 256, 512):
            row[f"zs{n}"] = 100 * evaluate(model, val, limit=n, progress=False).miou
        row["neg_kl"], row["agree"] = teacher_agreement(model, teacher, val, start=256, stop=512)
        rows.append(row)
        print(code, {k: round(v, 3) for k, v in row.items() if k != "code"}, flush=True)
    f = pd.DataFrame(rows).set_index("code").join(m)
    truth = ((f["seed0"] + f["seed1"]) / 2).to_numpy(float)
    _, inside = largest_group(f["stride"].to_numpy())
    print(f"\n{len(f)} points; truth = the mean of the two seeds' scores as the check took them")
    a, b = f["seed0"].to_numpy(float), f["seed1"].to_numpy(float)
    print(f"{'yardstick':22s}", kendall_interval(a, b).text(), kendall_interval(a[inside], b[inside]).text())
    for c in ["zero_shot"] + SIGNALS:
        x = f[c].to_numpy(float)
        print(f"{c:22s}", kendall_interval(x, truth).text(), kendall_interval(x[inside], truth[inside]).text())
    f.to_csv(ws.root / "zs_features.csv")
    print(f"(per-point signals in {ws.root / 'zs_features.csv'})")


if __name__ == "__main__":
    main()
