"""`run_train` and its parts: configuration from settings, data and device; run folders."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from pointseg_cli.errors import ConfigError
from pointseg_cli.io.points import read_points_csv
from pointseg_cli.metrics import confusion_matrix, scores_from_confusion
from pointseg_cli.train.config import CPU_DEFAULTS, TrainConfig
from pointseg_cli.train.run import new_run_dir, resolve_config, run_train

from .synthetic import make_dataset


@pytest.fixture
def data2d(tmp_path):
    make_dataset(tmp_path, n_images=2, shape=(64, 64), n_objects=3, radius=4)
    return tmp_path


def test_resolve_config_from_data_and_device(data2d) -> None:
    table = read_points_csv(data2d / "points.csv")
    cpu, applied = resolve_config({"batch_size": 3, "lr": None}, table, [data2d / "images"], device="cpu")
    assert (cpu.arch, cpu.ndim, cpu.channels, cpu.classes, cpu.device) == ("fpn", 2, 1, ("cell",), "cpu")
    assert cpu.batch_size == 3 and "batch_size" not in applied
    assert applied == {k: v for k, v in CPU_DEFAULTS[2].items() if k != "batch_size"}
    assert (cpu.encoder, cpu.base_filters, cpu.crop) == ("resnet18", 32, (128, 128))
    gpu, applied = resolve_config({}, table, [data2d / "images"], device="cuda")
    assert applied == {} and (gpu.encoder, gpu.batch_size, gpu.device) == ("resnet50", 64, "cuda")


def test_resolve_config_on_resume_keeps_the_saved_settings(data2d) -> None:
    table = read_points_csv(data2d / "points.csv")
    saved = TrainConfig(classes=("cell",), encoder="resnet34", batch_size=5, device="cuda")
    config, applied = resolve_config({"epochs": 7}, table, [data2d / "images"], device="cpu", saved=saved)
    assert applied == {} and (config.encoder, config.batch_size, config.epochs, config.device) == (
        "resnet34", 5, 7, "cpu")


def test_new_run_dir_never_reuses_a_folder(tmp_path) -> None:
    now = time.localtime(0)
    a = new_run_dir(tmp_path / "runs", "fpn", now=now)
    b = new_run_dir(tmp_path / "runs", "fpn", now=now)
    assert a != b and a.is_dir() and b.is_dir() and b.name == a.name + "-2"
    assert a.name == time.strftime("%Y%m%d-%H%M%S", now) + "-fpn"


def test_run_train_into_new_folder_and_errors(data2d) -> None:
    settings = {"encoder": "resnet18", "base_filters": 4, "crop": (32, 32), "batch_size": 2, "max_steps": 2,
                "val_fraction": 0.0}
    res = run_train(settings, data2d / "points.csv", [data2d / "images"], device="cpu", runs_root=data2d / "runs")
    assert res.created_run_dir and res.run_dir.parent == data2d / "runs" and (res.run_dir / "best.pt").is_file()
    assert res.training.steps == 2 and res.config.crop == (32, 32)
    with pytest.raises(ConfigError, match="give its folder with --out"):
        run_train(settings, data2d / "points.csv", [data2d / "images"], device="cpu", resume=True)
    with pytest.raises(ConfigError, match="needs --stain-normalize"):
        run_train(settings, data2d / "points.csv", [data2d / "images"], device="cpu", stain_method="macenko")


def test_validation_scores_are_evaluates(data2d) -> None:
    """val_miou is evaluate's mIoU over object classes; the background's IoU is reported apart."""
    from pointseg_cli.train.data import prepare_data
    from pointseg_cli.train.losses import PointSupervisionLoss
    from pointseg_cli.train.validate import predict_image, validate

    config = TrainConfig(classes=("cell",), encoder="resnet18", base_filters=4, crop=(32, 32), batch_size=2,
                         val_fraction=0.5, val_masks_dir=str(data2d / "masks"), device="cpu")
    data = prepare_data(config, read_points_csv(data2d / "points.csv"), [data2d / "images"])

    class Threshold(torch.nn.Module):  # predicts "cell" where the image is bright
        def forward(self, x):
            return torch.cat([torch.zeros_like(x), x - 0.95], dim=1)

    model = Threshold()
    res = validate(model, sampler=None, n_batches=0, images=data.val, loss_fn=PointSupervisionLoss(config),
                   n_classes=2, divisor=32, device="cpu")
    cm = sum(confusion_matrix(predict_image(model, im.image, divisor=32, device="cpu"),
                              im.val_mask.astype(np.int64), 2) for im in data.val)
    scores = scores_from_confusion(cm)
    assert res.miou == pytest.approx(scores.miou_objects) and res.iou_background == pytest.approx(scores.iou[0])
    assert res.miou != pytest.approx(scores.miou_all)
