#!/usr/bin/env bash
# The prepared check for a GPU machine (issue 14): under 8 minutes on one GPU.
#
#   bash bench/gpu_check.sh                     # on the GPU machine, from the repository root
#   DEVICE=cpu SIZE=64x128 STEPS=4 TEACHER_STEPS=4 DISTILL_STEPS=4 SPACES= bash bench/gpu_check.sh   # a CPU dry run
#
# 1. the versions: GPU, driver, CUDA, torch;
# 2. the latency tables of the mobile and gpu_large spaces at the paper's resolutions (512x1024 and
#    1024x2048; pre_down points 2x), in fp32 and fp16, each validated end to end (--validate) on random
#    points plus every published variant, with the rank correlation of the published variants'
#    latency here against the paper's RTX 2080 Ti column;
# 3. generated data at 512x1024 (a folder data set of synthetic scenes), a teacher trained briefly with
#    bf16 autocast, a handful of blocks distilled on the GPU, and one point fine-tuned for a few
#    hundred steps with AMP: wall time and images per second of each.
# Everything goes to $OUT (default /tmp/gpu_check); the figures are printed, and gpu_check.json
# collects them for docs/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-512x1024}       # mobile deployment input (the paper's)
LARGE=${LARGE:-1024x2048}    # gpu_large deployment input (the paper's)
STEPS=${STEPS:-300}          # fine-tuning steps of the one point
TEACHER_STEPS=${TEACHER_STEPS:-100}
DISTILL_STEPS=${DISTILL_STEPS:-200}  # per block
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
W="$OUT/work"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

stamp "versions"
$PY - <<EOF | tee "$OUT/versions.txt"
import platform, subprocess, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0))
    try:
        print("driver", subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                       capture_output=True, text=True).stdout.strip())
    except FileNotFoundError:
        print("driver unknown (no nvidia-smi)")
else:
    print("device", platform.processor() or platform.machine(), "(no CUDA)")
EOF

# --- 2. latency tables at the paper's resolutions ------------------------------------------------
SPACES=${SPACES-mobile gpu_large}   # SPACES= skips the tables (a dry run of the rest)
for space in $SPACES; do
  size=$SIZE; [ "$space" = gpu_large ] && size=$LARGE
  for dtype in fp32 fp16; do
    [ "$DEVICE" = cpu ] && [ "$dtype" = fp16 ] && continue   # fp16 convolutions are a GPU thing
    stamp "latency table: $space $dtype at $size"
    $PY -m ffnet_nas measure-latency --workdir "$W/lat" --space "$space" --device "$DEVICE" --dtype "$dtype" \
        --input-size "$size" --num-classes 19 --calibrate 6 --validate 6 --repeats 10:30 --max-seconds 1 \
        --no-progress 2>&1 | tail -6
  done
done

# --- 3. generated data, teacher, blocks, one fine-tune, all on the device with AMP ---------------
stamp "generated data: 48 scenes at $SIZE as a folder data set"
$PY - "$OUT/data" "$SIZE" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
import torch
from ffnet_nas.data import make_dataset
from ffnet_nas.data.synthetic import CLASS_NAMES
from ffnet_nas.data.transforms import IMAGENET_MEAN, IMAGENET_STD
root, size = Path(sys.argv[1]), tuple(int(v) for v in sys.argv[2].split("x"))
if not (root / "classes.txt").exists():
    for split, n in (("train", 40), ("val", 8)):
        ds = make_dataset("synthetic:0", split, size_hw=size, num_images=n)
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image, mask = ds[i]  # normalised float image: back to RGB bytes
            image = image * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
            image = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(image).save(root / split / "images" / f"{i:04d}.png")
            Image.fromarray(mask.numpy().astype(np.uint8)).save(root / split / "masks" / f"{i:04d}.png")
    (root / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
print("data:", root)
EOF
cat > "$OUT/space.yaml" <<EOF
# a handful of mobile blocks (7) for the check: 4 stages, stem B, two depths at stage 2, seg heads B and C
base: mobile
name: gpu_check
stems: [B]
up_heads: [B]
seg_heads: [B, C]
first_strides: [1]
pre_downs: [false]
stages:
  4: {depths: [[4], [5, 8], [6], [4]], widths: [[64], [128], [192], [320]]}
input_size: $SIZE
EOF
DATA="folder:$OUT/data"
AMP=bf16
stamp "teacher: $TEACHER_STEPS steps, batch 8, $AMP autocast"
$PY -m ffnet_nas train-teacher --workdir "$W/run" --data "$DATA" --device "$DEVICE" --amp $AMP --input-size "$SIZE" \
    --arch segmentation_ffnet40S_BBB_mobile --steps "$TEACHER_STEPS" --batch-size 8 --workers 4 --no-progress 2>&1 | tail -2
stamp "distil the space's blocks: $DISTILL_STEPS steps each, $AMP autocast"
$PY -m ffnet_nas distill --workdir "$W/run" --space "$OUT/space.yaml" --device "$DEVICE" --amp $AMP --steps "$DISTILL_STEPS" \
    --train-images 32 --val-images 8 --no-progress 2>&1 | tail -3
stamp "fine-tune one point: $STEPS steps, batch 8, $AMP autocast"
t=$(date +%s)
$PY -m ffnet_nas evaluate --workdir "$W/run" --device "$DEVICE" --amp $AMP --steps "$STEPS" --batch-size 8 \
    --workers 4 --val-images 8 stemB-basic-d4.5.6.4-w64.128.192.320-s1-upB-segC-nearest 2>&1 | tail -3
secs=$(( $(date +%s) - t ))
echo "fine-tune: $STEPS steps x 8 images at $SIZE in ${secs} s (incl. scoring and start-up): $(( STEPS * 8 / (secs > 0 ? secs : 1) )) images/s"

stamp "figures"
$PY - "$W" "$OUT" <<'EOF'
import dataclasses, json, sys
from pathlib import Path
import pandas as pd
from ffnet_nas.space.catalogue import get_variant
from ffnet_nas.stats import rank_correlations
work, out = Path(sys.argv[1]), Path(sys.argv[2])
figures = {"versions": (out / "versions.txt").read_text().splitlines(), "tables": []}
for val in sorted((work / "lat" / "lut").glob("*.validation.csv")):
    frame = pd.read_csv(val)
    summary = json.loads(val.with_name(val.name.replace(".validation.csv", ".validation.json")).read_text())
    pub = frame[frame.get("source", "") == "published"]
    dtype = "fp16" if "-fp16-" in val.name else "fp32"
    here, paper = [], []
    for r in pub.to_dict("records"):
        ms = get_variant(r["name"]).latency_ms
        key = next((k for k in sorted(ms, key=lambda k: not k.startswith("paper")) if "2080" in k and dtype in k), None)
        if key is not None:
            here.append(float(r["measured_ms"])); paper.append(float(ms[key]))
    rc = dataclasses.asdict(rank_correlations(here, paper)) if here else None
    row = {"table": val.name.removesuffix(".validation.csv"), "predictor_vs_measured": summary.get("predictor"),
           "published_vs_paper_2080Ti": rc}
    figures["tables"].append(row)
    print(row["table"], "| table vs end to end:", row["predictor_vs_measured"])
    print(row["table"], "| published variants here vs the paper's 2080 Ti", dtype, ":",
          rc if rc else "n/a (the paper times these variants on a phone DSP only)")
(out / "gpu_check.json").write_text(json.dumps(figures, indent=1, default=str))
print("wrote", out / "gpu_check.json")
EOF
stamp "done"
