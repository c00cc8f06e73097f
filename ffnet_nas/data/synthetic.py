"""The embedded data set: procedurally generated street scenes ("synthetic streets").

A fair miniature of Cityscapes that the package makes itself, deterministic from a seed, at
any resolution (default 128x256). Eight classes: sky, building, vegetation, road, sidewalk,
pole, sign, car. It is built so that the things the FFNet paper argues about matter:

* **Receptive field / context.** Road and sidewalk have the *same* texture and colour in an
  image; the road is the perspective wedge below the vanishing point (its slope, the horizon
  and the vanishing point change per image). The curb between them is drawn only near the
  horizon and fades out, so near the bottom of the frame a pixel's label can only be inferred
  from far away (the lane line, the curb near the horizon, the poles at the road edge).
  Facades and sky draw their colours from overlapping ranges: a window-free patch of facade
  is told from sky by the window grid around it.
* **Output resolution.** Poles are 1-3 px wide at 128x256, lane dashes thin, signs and far
  cars a few pixels across.
* **Not solvable per pixel.** Per-image colour, contrast and brightness jitter, value-noise
  textures and sensor noise.

**The harder level** (`synthetic:SEED:hard`, issue 13) leans further on context: the curb fades
out within 12% of the ground instead of 35%, half the scenes have no lane line, 40% of the
buildings have no windows, and the ground's texture is twice as strong. It was made to test whether
the accuracy yardstick separates architectures better when their capacity and receptive field
matter more (on one quick run it did not: the seed noise grew with it; docs/results.md). The
default level is unchanged (same scenes, same cache files).

Geometry is in units of image height, so the same seed gives the same scenes at any size.
Generation is vectorised over a chunk of images (torch, CPU): about a second per hundred
128x256 images.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from .base import SegmentationDataset, Transform

logger = logging.getLogger(__name__)

CLASS_NAMES = ("sky", "building", "vegetation", "road", "sidewalk", "pole", "sign", "car")
SKY, BUILDING, VEGETATION, ROAD, SIDEWALK, POLE, SIGN, CAR = range(8)
DEFAULT_HW = (128, 256)
SPLIT_SIZES = {"train": 512, "val": 128}
VERSION = 1  # bump when the generator changes: cache files carry it in their name
_CHUNK = 8
_BUILDING_SLOTS, _POLE_SLOTS, _CAR_SLOTS = 8, 4, 3
LEVELS = ("default", "hard")


def validation_size(scored: int | None) -> int:
    """How many validation scenes the embedded data generates for a workdir that scores its points
    on the first `scored` (None: all): the split's 128, or, when that is fewer, as many images
    held out as scored, so the held-out check and the win check always have images no score
    used. Rounded up to whole chunks: every size then begins with the same scenes (the generator
    draws chunk by chunk), and a score on the first 64 is the same score in a split of any size."""
    if scored is None:
        return SPLIT_SIZES["val"]
    return max(SPLIT_SIZES["val"], -(-2 * int(scored) // _CHUNK) * _CHUNK)


def _u(g: torch.Generator, shape, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def _noise(g: torch.Generator, b: int, hw: tuple[int, int], cells: int, channels: int = 1) -> torch.Tensor:
    """Smooth value noise in [0, 1): random values on a coarse grid, bicubically upsampled."""
    h, w = hw
    grid = torch.rand(b, channels, cells + 1, 2 * cells + 1, generator=g)
    return F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _paint(img: torch.Tensor, lbl: torch.Tensor, mask: torch.Tensor, colour: torch.Tensor, label: int | None) -> torch.Tensor:
    """img (B,3,H,W) takes `colour` (broadcastable) where mask (B,H,W); lbl updated in place."""
    if label is not None:
        lbl.masked_fill_(mask, label)
    return torch.where(mask[:, None], colour, img)


def generate(n: int, *, seed: int, size_hw: tuple[int, int] = DEFAULT_HW, level: str = "default",
             progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` scenes: images uint8 (n, 3, H, W), masks uint8 (n, H, W) with ids in CLASS_NAMES order.
    `level`: one of LEVELS (module doc)."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r}: expected one of {', '.join(LEVELS)}")
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(int(seed))
    images, masks = [], []
    threads = torch.get_num_threads()
    # Small element-wise ops: one thread is faster than two, and much faster on a shared CPU.
    torch.set_num_threads(1)
    try:
        for start in tqdm(range(0, n, _CHUNK), desc="generating scenes", unit="chunk", disable=not progress, dynamic_ncols=True):
            img, lbl = _scenes(g, min(_CHUNK, n - start), size_hw, hard=level == "hard")
            images.append(img)
            masks.append(lbl)
    finally:
        torch.set_num_threads(threads)
    return torch.cat(images), torch.cat(masks)


def _scenes(g: torch.Generator, b: int, hw: tuple[int, int], *, hard: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    # The hard level's extra random draws happen only at that level, so the default level draws
    # exactly the numbers it always drew (its scenes and cache files stay valid).
    h_px, w_px = hw
    yy = ((torch.arange(h_px) + 0.5) / h_px).view(1, h_px, 1)  # 0 top .. 1 bottom
    uu = ((torch.arange(w_px) + 0.5) / h_px).view(1, 1, w_px)  # same unit as yy
    width = w_px / h_px
    px = 1.0 / h_px
    p = lambda *s: (b, *s)  # noqa: E731  (per-image parameter shape)

    horizon = _u(g, p(1, 1), 0.33, 0.58)
    vp = _u(g, p(1, 1), 0.3 * width, 0.7 * width)
    slope = _u(g, p(1, 1), 1.1, 2.2)
    depth = (yy - horizon).clamp(min=0)  # distance below the horizon: perspective scale

    img = torch.zeros(b, 3, h_px, w_px)
    lbl = torch.zeros(b, h_px, w_px, dtype=torch.uint8)

    # Sky: blue-ish or overcast, brighter towards the horizon, soft clouds.
    sky_top = torch.where(_u(g, p(1, 1, 1)) < 0.6, torch.stack([_u(g, b, .2, .5), _u(g, b, .35, .65), _u(g, b, .6, .95)], 1).view(b, 3, 1, 1),
                          _u(g, p(1, 1, 1), .45, .85).expand(b, 3, 1, 1))
    glow = (1 - (horizon[:, None] - yy[:, None]).clamp(0, 1)) * _u(g, p(1, 1, 1), 0.0, 0.25)
    clouds = (_noise(g, b, hw, 3) - 0.5) * _u(g, p(1, 1, 1), 0.0, 0.35)
    img = _paint(img, lbl, torch.ones(b, h_px, w_px, dtype=torch.bool), (sky_top + glow + clouds).clamp(0, 1), SKY)

    # Buildings and trees along the horizon, left to right.
    left = -_u(g, p(1, 1), 0.0, 0.3)
    for _ in range(_BUILDING_SLOTS):
        w = _u(g, p(1, 1), 0.15, 0.5)
        gap = torch.where(_u(g, p(1, 1)) < 0.3, _u(g, p(1, 1), 0.02, 0.2), torch.zeros(b, 1, 1))
        x0, x1 = left + gap, left + gap + w
        left = x1
        is_tree = _u(g, p(1, 1)) < 0.25
        top = horizon - _u(g, p(1, 1), 0.1, 1.0) * horizon
        facade = _u(g, p(3, 1, 1), 0.15, 0.9)  # same range as the sky: windows are the cue
        inside = (uu >= x0) & (uu < x1) & (yy >= top) & (yy < horizon + 0.01)
        pw, ph = _u(g, p(1, 1), 0.03, 0.07), _u(g, p(1, 1), 0.04, 0.08)
        margin = 0.5 * pw
        win = ((((uu - x0) / pw) % 1.0) < 0.55) & ((((yy - top) / ph) % 1.0) > 0.35) \
            & (uu > x0 + margin) & (uu < x1 - margin) & (yy > top + 0.5 * ph) & (yy < horizon - 0.3 * ph)
        if hard:  # a plain facade: told from the sky only by where it stands
            win = win & (_u(g, p(1, 1)) >= 0.4)
        win_colour = torch.where(_u(g, p(1, 1, 1)) < 0.5, facade * 0.45, (facade * 0.3 + 0.6).clamp(0, 1))
        tex = facade + (_noise(g, b, hw, 24) - 0.5) * 0.12
        colour = torch.where(win[:, None], win_colour, tex).clamp(0, 1)
        img = _paint(img, lbl, inside & ~is_tree, colour, BUILDING)
        # Tree: a noisy-edged crown that may dip below the horizon over the ground.
        cx, r = (x0 + x1) / 2, w / 2 * _u(g, p(1, 1), 0.8, 1.2)
        cy = horizon - r * _u(g, p(1, 1), 0.5, 1.0)
        edge = _noise(g, b, hw, 16)[:, 0] * 0.5
        crown = ((uu - cx) ** 2 + ((yy - cy) * 1.2) ** 2).sqrt() / r + edge < 1.15
        leaf = torch.stack([_u(g, b, .05, .35), _u(g, b, .25, .6), _u(g, b, .02, .3)], 1).view(b, 3, 1, 1)
        leaf = leaf * (0.55 + 0.9 * _noise(g, b, hw, 40))
        img = _paint(img, lbl, crown & is_tree, leaf.clamp(0, 1), VEGETATION)

    # Ground: road and sidewalk share one texture; only geometry tells them apart.
    ground = (yy >= horizon) & ~((lbl == VEGETATION) & (yy < horizon + 0.06))
    grey = _u(g, p(1, 1, 1), 0.25, 0.6) + (_u(g, p(3, 1, 1)) - 0.5) * 0.12
    # the strength scales each term's constant, so the default level adds the same float32 terms in
    # the same order as before levels existed (a regrouped sum rounds differently)
    strength = 2.0 if hard else 1.0
    ground_tex = (grey + (_noise(g, b, hw, 20) - 0.5) * (0.15 * strength)
                  + (_noise(g, b, hw, 60) - 0.5) * (0.1 * strength)).clamp(0, 1)
    offset = (uu - vp).abs() - slope * depth
    road = ground & (offset < 0)
    img = _paint(img, lbl, ground & ~road, ground_tex, SIDEWALK)
    img = _paint(img, lbl, road, ground_tex, ROAD)
    # The curb is visible near the horizon only, fading to nothing within 35% of the ground.
    fade = (1 - depth / ((0.12 if hard else 0.35) * (1 - horizon))).clamp(0, 1)
    curb = ground & (offset.abs() < 0.6 * px + 0.01 * depth) & (fade > 0)
    curb_colour = (ground_tex + 0.12 * fade[:, None] * torch.where(_u(g, p(1, 1, 1)) < 0.5, 1.0, -1.0)).clamp(0, 1)
    img = _paint(img, lbl, curb, curb_colour, None)  # label stays road/sidewalk
    # Lane line: dashed in perspective along the centre; it is road.
    dash = ((0.12 / (depth + 0.02) + _u(g, p(1, 1))) % 1.0) < 0.5
    lane = road & ((uu - vp).abs() < 0.5 * px + 0.012 * depth) & dash
    if hard:  # no lane line in half the scenes
        lane = lane & (_u(g, p(1, 1)) < 0.5)
    img = _paint(img, lbl, lane, _u(g, p(1, 1, 1), 0.8, 1.0).expand(b, 3, 1, 1), ROAD)

    # Cars on the road, far ones first so near ones occlude them.
    car_y = torch.sort(_u(g, (b, _CAR_SLOTS)), dim=1).values
    for i in range(_CAR_SLOTS):
        active = _u(g, p(1, 1)) < 0.6
        d = (0.05 + car_y[:, i].view(b, 1, 1) * (1 - horizon - 0.05))
        bottom = horizon + d
        cx = vp + _u(g, p(1, 1), -0.75, 0.75) * slope * d
        cw = 0.9 * d * _u(g, p(1, 1), 0.85, 1.2)
        body = active & ((uu - cx).abs() < cw / 2) & (yy < bottom) & (yy >= bottom - 0.32 * cw)
        cabin = active & ((uu - cx).abs() < cw * 0.33) & (yy < bottom - 0.32 * cw) & (yy >= bottom - 0.55 * cw)
        paint = _u(g, p(3, 1, 1), 0.05, 0.95)
        glass = paint * 0.25 + 0.1
        shade = (1 - 0.35 * ((bottom - yy) < 0.08 * cw).float())[:, None]
        img = _paint(img, lbl, body, (paint * shade).clamp(0, 1), CAR)
        img = _paint(img, lbl, cabin, glass, CAR)

    # Poles just outside the road edge, many topped by a sign.
    for _ in range(_POLE_SLOTS):
        active = _u(g, p(1, 1)) < 0.7
        d = _u(g, p(1, 1), 0.06, 1.0) * (1 - horizon)
        base_y = horizon + d
        side = torch.where(_u(g, p(1, 1)) < 0.5, -1.0, 1.0)
        pu = vp + side * (slope * d * 1.06 + 0.01)
        top = base_y - d * _u(g, p(1, 1), 1.6, 2.6)
        half = (0.014 * d).clamp(min=0.5 * px)
        pole = active & ((uu - pu).abs() <= half) & (yy >= top) & (yy < base_y)
        img = _paint(img, lbl, pole, _u(g, p(1, 1, 1), 0.15, 0.55).expand(b, 3, 1, 1), POLE)
        has_sign = active & (_u(g, p(1, 1)) < 0.75)
        r = d * _u(g, p(1, 1), 0.06, 0.1) + px
        cy = top + r
        round_sign = _u(g, p(1, 1)) < 0.5
        dist = torch.where(round_sign, ((uu - pu) ** 2 + (yy - cy) ** 2).sqrt(), torch.maximum((uu - pu).abs(), (yy - cy).abs()))
        sign = has_sign & (dist < r)
        hue = torch.randint(0, 3, (b,), generator=g)
        vivid = torch.eye(3)[hue].view(b, 3, 1, 1) * 0.8 + _u(g, p(3, 1, 1), 0.0, 0.25)
        vivid = torch.where(_u(g, p(1, 1, 1)) < 0.25, torch.tensor([0.9, 0.8, 0.1]).view(1, 3, 1, 1), vivid)
        img = _paint(img, lbl, sign, vivid.clamp(0, 1), SIGN)

    # Camera: per-image contrast, brightness, colour cast and sensor noise.
    contrast = _u(g, p(1, 1, 1), 0.7, 1.3)
    bright = _u(g, p(1, 1, 1), -0.12, 0.12)
    cast = _u(g, p(3, 1, 1), -0.06, 0.06)
    sigma = _u(g, p(1, 1, 1), 0.01, 0.05)
    img = (img - 0.5) * contrast + 0.5 + bright + cast + sigma * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), lbl


class SyntheticStreets(SegmentationDataset):
    """Generated scenes held in memory as uint8; transforms applied on access."""

    def __init__(self, *, seed: int, split: str, size_hw: tuple[int, int], transform: Transform,
                 cache_dir: Path | None = None, n: int | None = None, progress: bool = False, level: str = "default"):
        self.spec = f"synthetic:{seed}" if level == "default" else f"synthetic:{seed}:{level}"
        self.split = split
        self.seed = seed
        self.size_hw = tuple(size_hw)
        self.class_names = CLASS_NAMES
        self.num_classes = len(CLASS_NAMES)
        self.transform = transform
        n = SPLIT_SIZES[split] if n is None else n
        self.images, self.masks, self.cache_path, self.generated = _load_or_generate(
            seed=seed, split=split, size_hw=self.size_hw, n=n, cache_dir=cache_dir, progress=progress, level=level)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i], self.masks[i].long())


def split_seed(seed: int, split: str) -> int:
    # Distinct, stable streams per split: val scenes never repeat train scenes.
    return (int(seed) * 1_000_003 + {"train": 0, "val": 1}[split]) % (2**63)


def _load_or_generate(*, seed: int, split: str, size_hw: tuple[int, int], n: int, cache_dir: Path | None, progress: bool,
                      level: str = "default"):
    """(images, masks, cache file or None, whether they were generated now)."""
    path = None
    if cache_dir is not None:
        kind = "synthetic" if level == "default" else f"synthetic-{level}"  # the default's names predate levels
        path = Path(cache_dir) / f"{kind}-v{VERSION}-seed{seed}-{split}-{size_hw[0]}x{size_hw[1]}-n{n}.pt"
        if path.is_file():
            from ffnet_nas.space.io import DIGEST_KEY, tensor_digest

            try:
                data = torch.load(path, weights_only=True)
                tensors = {"images": data["images"], "masks": data["masks"]}
                # bytes changed inside a tensor still load: only the recorded digest tells
                if data.get(DIGEST_KEY) in (None, tensor_digest(tensors)):
                    return data["images"], data["masks"], path, False
            except Exception:  # noqa: BLE001 - a corrupt cache is only a cache: regenerate it
                pass
            logger.warning("data cache %s is damaged; generating it again", path)
    images, masks = generate(n, seed=split_seed(seed, split), size_hw=size_hw, level=level, progress=progress)
    if path is not None:
        from ffnet_nas.space.io import DIGEST_KEY, atomic_torch_save, tensor_digest

        atomic_torch_save(path, {"images": images, "masks": masks,
                                 DIGEST_KEY: tensor_digest({"images": images, "masks": masks})})
    return images, masks, path, True


def preview(n: int = 4, *, seed: int = 0, size_hw: tuple[int, int] = DEFAULT_HW, level: str = "default") -> torch.Tensor:
    """Images above their colourised masks, (3, 2H, nW) uint8: for eyeballing the generator."""
    images, masks = generate(n, seed=seed, size_hw=size_hw, level=level)
    palette = torch.tensor([[70, 130, 180], [70, 70, 70], [107, 142, 35], [128, 64, 128],
                            [244, 35, 232], [153, 153, 153], [220, 220, 0], [0, 0, 142]], dtype=torch.uint8)
    coloured = palette[masks.long()].permute(0, 3, 1, 2)
    return torch.cat([torch.cat(list(images), -1), torch.cat(list(coloured), -1)], -2)


__all__ = ["CLASS_NAMES", "DEFAULT_HW", "LEVELS", "SyntheticStreets", "generate", "preview"]
