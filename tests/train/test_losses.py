"""Each loss against a value computed by hand on tiny tensors; gradients; stability."""

from __future__ import annotations

import math

import pytest
import torch

from pointseg_cli.errors import ConfigError
from pointseg_cli.train.config import TrainConfig
from pointseg_cli.train.losses import (
    PointSupervisionLoss,
    center_loss,
    dense_loss,
    image_loss,
    objectness_loss,
    point_loss,
)

LN3 = math.log(3.0)
LN2 = math.log(2.0)


def test_point_loss_hand_value() -> None:
    # pixel 0: S = (.5, .5), a point of class 1 (alpha 1); pixel 1: S = (.75, .25), boundary
    # background (alpha .1); pixel 2 unlabelled.
    logits = torch.tensor([[0.0, LN3, 5.0], [0.0, 0.0, -5.0]]).view(1, 2, 1, 3)
    sparse = torch.tensor([[1, 0, -1]]).view(1, 1, 3)
    expected = (1.0 * LN2 + 0.1 * -math.log(0.75)) / 1.1
    got = point_loss(logits, sparse, bg_weight=0.1)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_point_loss_nothing_labelled_is_zero() -> None:
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    loss = point_loss(logits, torch.full((1, 2, 2), -1), bg_weight=0.1)
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_objectness_loss_hand_value() -> None:
    logits = torch.tensor([[0.0, LN3], [0.0, 0.0]]).view(1, 2, 1, 2)
    soft = torch.tensor([[0.2, 1.0], [0.8, 0.0]]).view(1, 2, 1, 2)
    beta = torch.tensor([1.0, 0.5])
    expected = -(1.0 * 0.2 * math.log(0.5) + 0.5 * 0.8 * math.log(0.5) + 1.0 * math.log(0.75)) / 2
    assert objectness_loss(logits, soft, beta).item() == pytest.approx(expected, rel=1e-6)


def test_image_loss_hand_value() -> None:
    # pixel a: S = (.25, .5, .25); pixel b: S = (.2, .2, .6) -> t_1 = a, t_2 = b.
    logits = torch.tensor([[0.0, 0.0], [LN2, 0.0], [0.0, LN3]]).view(1, 3, 1, 2)
    present = torch.tensor([[True, False]])
    expected = -math.log(0.5) - math.log(1 - 0.6)
    assert image_loss(logits, present).item() == pytest.approx(expected, rel=1e-6)
    # Both classes present -> mean of the two log S terms; none present -> mean of log(1 - S).
    both = image_loss(logits, torch.tensor([[True, True]])).item()
    assert both == pytest.approx(-(math.log(0.5) + math.log(0.6)) / 2, rel=1e-6)
    none = image_loss(logits, torch.tensor([[False, False]])).item()
    assert none == pytest.approx(-(math.log(0.5) + math.log(0.4)) / 2, rel=1e-6)


def test_image_loss_leaves_out_classes_neither_present_nor_absent() -> None:
    logits = torch.tensor([[0.0, 0.0], [LN2, 0.0], [0.0, LN3]]).view(1, 3, 1, 2)
    present = torch.tensor([[True, False]])
    # class 2 not absent (a point just outside the crop): only the log S term of class 1 is left
    only_l = image_loss(logits, present, torch.tensor([[False, False]])).item()
    assert only_l == pytest.approx(-math.log(0.5), rel=1e-6)
    # absent=~present is the paper's rule; a class flagged both present and absent counts as present
    assert image_loss(logits, present, ~present).item() == pytest.approx(image_loss(logits, present).item())
    assert image_loss(logits, present, torch.tensor([[True, True]])).item() == pytest.approx(
        image_loss(logits, present).item()
    )


def test_dense_loss_matches_cross_entropy() -> None:
    logits = torch.tensor([[0.0, LN3]]).view(1, 2, 1, 1).expand(1, 2, 1, 2).contiguous()
    masks = torch.tensor([[[1, -1]]])
    assert dense_loss(logits, masks).item() == pytest.approx(-math.log(0.75), rel=1e-6)


@pytest.mark.parametrize("which", ["img", "obj"])
def test_gradients_reach_logits(which: str) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    if which == "img":
        loss = image_loss(logits, torch.tensor([[True, False], [False, True]]))
    else:
        soft = torch.softmax(torch.randn(2, 3, 4, 5), dim=1)
        loss = objectness_loss(logits, soft, torch.tensor([1.0, 0.5, 0.5]))
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert torch.isfinite(logits.grad).all()


def test_saturated_logits_stay_finite() -> None:
    logits = torch.tensor([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]]).view(1, 3, 1, 2).requires_grad_(True)
    loss = image_loss(logits, torch.tensor([[False, False]])) + point_loss(
        logits, torch.tensor([[[2, 1]]]), bg_weight=0.1
    )
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_combined_loss_respects_switches_and_lambdas() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 2, 4, 4)
    batch = {
        "sparse": torch.tensor([[[1, -1, -1, 0]] * 4]),
        "soft": torch.softmax(torch.randn(1, 2, 4, 4), dim=1),
        "present": torch.tensor([[True]]),
        "center": torch.stack([torch.rand(1, 4, 4), torch.ones(1, 4, 4)], dim=1),
    }
    centers = torch.rand(1, 1, 4, 4)
    cfg = TrainConfig(classes=("a",), lambdas=(1.0, 2.0, 3.0), center_weight=4.0)
    out = PointSupervisionLoss(cfg)(logits, batch, centers)
    expected = out.terms["point"] + 2.0 * out.terms["obj"] + 3.0 * out.terms["img"] + 4.0 * out.terms["center"]
    assert out.total.item() == pytest.approx(expected, rel=1e-5)
    assert out.terms["center"] > 0
    only = PointSupervisionLoss(cfg.replace(losses=("pce",)))(logits, batch)
    assert set(only.terms) == {"point"} and only.total.item() == pytest.approx(out.terms["point"], rel=1e-6)


def test_center_loss_hand_value_ignores_unknown_pixels() -> None:
    centers = torch.tensor([0.5, 1.0, 0.0, 0.9]).view(1, 1, 1, 4).requires_grad_(True)
    target = torch.tensor([[1.0, 1.0, 0.5, 0.0], [1.0, 1.0, 1.0, 0.0]]).view(1, 2, 1, 4)
    loss = center_loss(centers, target)  # (0.25 + 0 + 0.25) / 3; the last pixel is unknown
    assert loss.item() == pytest.approx(0.5 / 3)
    loss.backward()
    assert centers.grad[0, 0, 0, 3] == 0
    none_known = center_loss(centers, torch.zeros(1, 2, 1, 4))
    assert none_known.item() == 0.0 and none_known.requires_grad


def test_center_term_with_masks_supervision_and_missing_inputs() -> None:
    logits = torch.randn(1, 2, 4, 4)
    batch = {"mask": torch.randint(0, 2, (1, 4, 4)), "center": torch.stack([torch.rand(1, 4, 4)] * 2, dim=1)}
    cfg = TrainConfig(classes=("a",), supervision="masks", masks_dir="m", center_weight=0.5)
    out = PointSupervisionLoss(cfg)(logits, batch, torch.rand(1, 1, 4, 4))
    assert set(out.terms) == {"dense", "center"}
    assert out.total.item() == pytest.approx(out.terms["dense"] + 0.5 * out.terms["center"], rel=1e-5)
    with pytest.raises(ValueError, match="centre map"):
        PointSupervisionLoss(cfg)(logits, batch)
    off = PointSupervisionLoss(cfg.replace(losses=("pce",)))(logits, batch)
    assert set(off.terms) == {"dense"}


def test_img_scale_point_weighs_each_crops_l_img_like_one_clicked_pixel() -> None:
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 4, 4)
    sparse = torch.full((2, 4, 4), -1)
    sparse[0, 0, 0], sparse[0, 1, 1], sparse[1, 2, 2] = 1, 2, 1  # 3 clicks
    sparse[:, 3, :] = 0  # 8 boundary pixels, weight 0.5 each: sum alpha = 3 + 4 = 7
    batch = {"sparse": sparse, "present": torch.tensor([[True, True], [True, False]])}
    cfg = TrainConfig(classes=("a", "b"), losses=("pce", "img"), lambdas=(1.0, 1.0, 2.0), bg_weight=0.5,
                      img_scale="crop")
    crop = PointSupervisionLoss(cfg)(logits, batch)
    point = PointSupervisionLoss(cfg.replace(img_scale="point"))(logits, batch)
    assert point.terms == crop.terms  # the logged L_img is the same
    assert point.total.item() == pytest.approx(crop.terms["point"] + 2.0 * crop.terms["img"] * 2 / 7, rel=1e-5)
    with pytest.raises(ConfigError, match="img_scale"):
        cfg.replace(img_scale="pixel")
