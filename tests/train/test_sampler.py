"""Crop sampler: crops contain points, augmentation keeps labels aligned, batches are deterministic."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pointseg_cli.train.config import TrainConfig
from pointseg_cli.train.data import ImageData
from pointseg_cli.train.sampler import CropSampler, Prefetcher


def _blob_image(shape, points, sigma=2.0):
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    img = np.zeros(shape, np.float32)
    for p in points:
        d2 = sum((g - c) ** 2 for g, c in zip(grids, p, strict=True))
        img = np.maximum(img, np.exp(-d2 / (2 * sigma**2)).astype(np.float32))
    return img


def _data2d(rng, shape=(120, 150), n=6):
    pts = np.stack([rng.integers(5, s - 5, n) for s in shape], axis=1)
    img = _blob_image(shape, pts)
    bg = np.zeros(shape, bool)
    bg[:, 0] = True
    soft = np.stack([1 - img, img]).astype(np.float16)
    return ImageData("a", img[None], pts, np.ones(n, np.int32), background=bg, soft=soft)


def _cfg(**kw) -> TrainConfig:
    base = dict(classes=("c",), crop=(32, 64), batch_size=8, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_every_crop_contains_a_point_and_batches_are_deterministic(rng) -> None:
    s = CropSampler([_data2d(rng)], _cfg(), augment=False)
    a, b = s.batch(5), s.batch(5)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert a["image"].shape == (8, 1, 32, 64) and a["soft"].shape == (8, 2, 32, 64)
    assert a["present"].all()
    assert ((a["sparse"] == 1).flatten(1).sum(1) >= 1).all()
    # the sparse map is exactly the points plus the boundary background of the crop
    assert set(torch.unique(a["sparse"]).tolist()) <= {-1, 0, 1}
    assert not torch.equal(s.batch(6)["image"], a["image"])


def test_affine_augmentation_keeps_points_on_their_blobs(rng) -> None:
    s = CropSampler([_data2d(rng)], _cfg(), augment=True)
    s._photometric_2d = lambda out, r: None  # geometric part only
    s._noise = lambda out, r: None
    ratios = []
    for i in range(10):
        b = s.batch(i)
        x, sp = b["image"].numpy(), b["sparse"].numpy()
        for n, y0, x0 in np.argwhere(sp == 1):
            win = x[n, 0, max(y0 - 3, 0) : y0 + 4, max(x0 - 3, 0) : x0 + 4]
            ratios.append(x[n, 0, y0, x0] / win.max())
        # point labels survive: each sample flagged present has its point pixels drawn
        assert np.array_equal(b["present"].numpy()[:, 0], (sp == 1).reshape(8, -1).any(1))
    assert len(ratios) > 40
    assert np.median(ratios) > 0.95  # the clicked pixel stays on its blob's peak


def _two_class_data():
    # class 1 at x=10, class 2 at x=70 (6 px right of a 64-wide crop starting at 0), class 3 far away
    pts = np.array([[16, 10], [16, 70], [16, 140]])
    img = _blob_image((32, 150), pts)
    return ImageData("a", img[None], pts, np.array([1, 2, 3], np.int32), background=np.zeros((32, 150), bool))


@pytest.mark.parametrize("margin", [0, 8])
def test_img_margin_leaves_classes_just_outside_the_crop_unlabelled(margin) -> None:
    cfg = _cfg(classes=("a", "b", "c"), crop=(32, 64), batch_size=16, img_margin=margin)
    s = CropSampler([_two_class_data()], cfg, augment=False)
    seen = 0
    for i in range(20):
        b = s.batch(i)
        pres, absent = b["present"].numpy(), b["absent"].numpy()
        assert not (pres & absent).any()
        for n in np.flatnonzero(pres[:, 0] & ~pres[:, 1]):  # crops of the class-1 point only
            seen += 1
            # class 3 is > 64 px away: always absent; class 2 only outside the crop by < 8 px
            # when the crop starts at x <= 6, which happens only for crops at x in [0, 6]
            assert absent[n, 2]
            assert absent[n, 1] == (margin == 0)
    assert seen > 0


def test_img_margin_zero_is_the_papers_rule(rng) -> None:
    s = CropSampler([_data2d(rng)], _cfg(), augment=True)
    for i in range(5):
        b = s.batch(i)
        assert torch.equal(b["absent"], ~b["present"])


def test_point_radius_draws_a_disk(rng) -> None:
    s = CropSampler([_data2d(rng, n=1)], _cfg(point_radius=2, batch_size=1), augment=False)
    assert int((s.batch(0)["sparse"] == 1).sum()) == 13  # pixels within distance 2


@pytest.mark.parametrize("crop", [(8, 16, 16), (8, 16, 24)])
def test_d4h_in_3d_preserves_label_alignment(rng, crop) -> None:
    shape = (16, 40, 40)
    pts = np.stack([rng.integers(2, s - 2, 5) for s in shape], axis=1)
    img = _blob_image(shape, pts, sigma=1.0)
    im = ImageData("v", img[None], pts, np.ones(5, np.int32), background=np.zeros(shape, bool),
                   soft=np.stack([1 - img, img]).astype(np.float16))
    cfg = TrainConfig(arch="unet3d", ndim=3, classes=("c",), crop=crop, batch_size=4)
    s = CropSampler([im], cfg, augment=True)
    s._noise = lambda out, r: None
    for i in range(4):
        b = s.batch(i)
        assert b["image"].shape == (4, 1, *crop)
        on_point = b["image"][:, 0][b["sparse"] == 1]
        assert torch.allclose(on_point, torch.ones_like(on_point))  # exact: D4h is a permutation
        torch.testing.assert_close(b["soft"][:, 1], b["image"][:, 0], atol=1e-3, rtol=0)  # float16 soft


def test_prefetcher_yields_in_order_and_reraises() -> None:
    with Prefetcher(lambda i: i * i, range(3, 8), depth=2) as p:
        assert list(p) == [(i, i * i) for i in range(3, 8)]

    def boom(i: int) -> int:
        if i == 2:
            raise ValueError("bad batch")
        return i

    with pytest.raises(ValueError, match="bad batch"), Prefetcher(boom, range(5)) as p:
        list(p)


def test_prefetcher_with_several_workers_keeps_order_and_batches() -> None:
    import time

    def slow_square(i: int) -> int:
        time.sleep(0.01 * (5 - i % 5))  # later items finish first
        return i * i

    with Prefetcher(slow_square, range(0, 12), depth=3, workers=4) as p:
        assert list(p) == [(i, i * i) for i in range(12)]
    with pytest.raises(ZeroDivisionError), Prefetcher(lambda i: 1 // (2 - i), range(4), workers=2) as p:
        assert next(iter(p)) == (0, 0)
        list(p)


def test_center_target_follows_the_image_through_augmentation(rng) -> None:
    im = _data2d(rng)
    img = im.image[0]
    known = np.ones_like(img)
    known[:, :10] = 0  # an unknown band
    im = replace(im, center=np.stack([img, known]).astype(np.float16))
    s = CropSampler([im], _cfg(), augment=True)
    s._photometric_2d = lambda out, r: None
    s._noise = lambda out, r: None
    b = s.batch(0)
    assert b["center"].shape == (8, 2, 32, 64)
    torch.testing.assert_close(b["center"][:, 0], b["image"][:, 0], atol=2e-3, rtol=0)  # float16 target
    assert set(torch.unique(b["center"][:, 1]).tolist()) <= {0.0, 1.0}
    # rotated crops reach outside the source crop (zero padding): those pixels are unknown
    assert (b["center"][:, 1] == 0).any()


def test_center_target_follows_d4h_in_3d(rng) -> None:
    shape = (16, 40, 40)
    pts = np.stack([rng.integers(2, s - 2, 5) for s in shape], axis=1)
    img = _blob_image(shape, pts, sigma=1.0)
    im = ImageData("v", img[None], pts, np.ones(5, np.int32), background=np.zeros(shape, bool),
                   center=np.stack([img, np.ones(shape, np.float32)]).astype(np.float16))
    cfg = TrainConfig(arch="unet3d", ndim=3, classes=("c",), crop=(8, 16, 16), batch_size=4, losses=("pce", "center"))
    s = CropSampler([im], cfg, augment=True)
    s._noise = lambda out, r: None
    for i in range(3):
        b = s.batch(i)
        torch.testing.assert_close(b["center"][:, 0], b["image"][:, 0], atol=1e-3, rtol=0)
        assert (b["center"][:, 1] == 1).all()
