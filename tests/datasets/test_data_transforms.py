"""Joint transforms: masks move with images, padding is ignore, eval is deterministic."""

import torch

from ffnet_nas.data.transforms import EvalTransform, TrainTransform, denormalize, normalize


def _pair(h=20, w=40):
    # Columns in blocks of 8 px: the mask holds the block id, image channel 0 holds 30 x block id.
    block = (torch.arange(w) // 8).expand(h, w)
    image = torch.stack([block * 30, block * 0, block * 0]).to(torch.uint8)
    return image, block.long()


def test_flip_scale_and_crop_keep_image_and_mask_aligned():
    image, mask = _pair()
    t = TrainTransform((20, 40), scale_range=(2.0, 2.0))
    flipped = 0
    for seed in range(8):
        torch.manual_seed(seed)
        x, m = t(image, mask)
        assert x.shape == (3, 20, 40) and m.shape == (20, 40)
        value = denormalize(x)[0] * 255
        exact = (value - (value / 30).round() * 30).abs() < 0.5  # block interiors (bilinear keeps them exact)
        assert exact.float().mean() > 0.7
        assert torch.equal((value / 30).round().long()[exact], m[exact])
        flipped += int(m[0, 0] > m[0, -1])
    assert 0 < flipped < 8  # both orientations occur


def test_random_draws_follow_torch_rng():
    image, mask = _pair()
    t = TrainTransform((12, 24))
    torch.manual_seed(3)
    a = t(image, mask)
    torch.manual_seed(3)
    b = t(image, mask)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_downscale_pads_with_ignore_and_eval_is_deterministic():
    image, mask = _pair()
    torch.manual_seed(0)
    _, m = TrainTransform((20, 40), scale_range=(0.5, 0.5), flip=False)(image, mask)
    assert (m == 255).float().mean() > 0.7  # a quarter of the area holds data, the rest is ignore
    e = EvalTransform((10, 20))
    x1, m1 = e(image, mask)
    x2, m2 = e(image, mask)
    assert torch.equal(x1, x2) and torch.equal(m1, m2) and x1.shape == (3, 10, 20)


def test_normalize_matches_imagenet_statistics():
    x = normalize(torch.full((3, 2, 2), 255, dtype=torch.uint8))
    assert torch.allclose(x[:, 0, 0], (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]))
