"""Tiny end-to-end training runs on generated data: loss goes down, seeds reproduce, resume works."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from pointseg_cli.errors import ConfigError, InputError
from pointseg_cli.io.points import read_points_csv
from pointseg_cli.model.checkpoint import load_model
from pointseg_cli.train.config import TrainConfig
from pointseg_cli.train.loop import train

from .synthetic import make_dataset


def _config(**kw) -> TrainConfig:
    base = dict(
        classes=("cell",), encoder="resnet18", base_filters=4, crop=(32, 32), batch_size=4, epochs=2,
        steps_per_epoch=3, device="cpu", val_fraction=0.34, lr=3e-3,
    )
    base.update(kw)
    return TrainConfig(**base)


def _run(tmp_path, config: TrainConfig, name: str = "run", **kw):
    losses: list[float] = []
    res = train(config, read_points_csv(tmp_path / "points.csv"), [tmp_path / "images"], tmp_path / name,
                monitor=lambda info: losses.append(info.loss), **kw)
    return res, losses


@pytest.fixture
def data2d(tmp_path):
    make_dataset(tmp_path, n_images=3, shape=(48, 48), n_objects=4, radius=5)
    return tmp_path


def test_tiny_2d_run_loss_goes_down_and_writes_run_dir(data2d) -> None:
    cfg = _config(epochs=3, steps_per_epoch=6, augment=False, val_masks_dir=str(data2d / "masks"))
    res, losses = _run(data2d, cfg)
    assert len(losses) == 18
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    for name in ("config.json", "best.pt", "last.pt", "metrics.csv", "curves.png"):
        assert (res.run_dir / name).is_file()
    rows = list(csv.DictReader(open(res.run_dir / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(0.0 <= float(r["val_miou"]) <= 1.0 for r in rows)
    assert res.best_metric == "val_miou"
    loaded = load_model(res.run_dir)
    assert loaded.classes == ["cell"] and loaded.tile == (32, 32)
    assert not any(p.name.startswith(".") for p in res.run_dir.iterdir())  # no temporary leftovers


def test_tiny_3d_run_loss_goes_down(tmp_path) -> None:
    make_dataset(tmp_path, n_images=2, shape=(16, 32, 32), n_objects=3, radius=4)
    cfg = _config(arch="unet3d", ndim=3, crop=(8, 16, 16), batch_size=2, base_filters=4, epochs=2,
                  steps_per_epoch=6, val_fraction=0.0)
    res, losses = _run(tmp_path, cfg)
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert res.best_metric == "train_loss"
    assert load_model(res.run_dir).divisor == 8


def test_same_seed_same_losses_on_cpu(data2d) -> None:
    cfg = _config(epochs=1, steps_per_epoch=4)
    _, a = _run(data2d, cfg, "a")
    _, b = _run(data2d, cfg, "b")
    _, c = _run(data2d, cfg.replace(seed=1), "c")
    assert a == b
    assert a != c


def test_resume_continues_where_it_stopped(data2d) -> None:
    cfg = _config(epochs=2, steps_per_epoch=2)
    _, full = _run(data2d, cfg, "full")
    _, first = _run(data2d, cfg.replace(epochs=1), "part")
    res, rest = _run(data2d, cfg, "part", resume=True)
    assert first + rest == full
    assert [r["epoch"] for r in res.history] == [1, 2]
    with pytest.raises(ConfigError, match="lr"):
        _run(data2d, cfg.replace(lr=0.1), "part", resume=True)
    with pytest.raises(InputError, match="already holds a training run"):
        _run(data2d, cfg, "part")


def test_ablations_and_baselines_run(data2d) -> None:
    for i, kw in enumerate([
        {"losses": ("pce",)},
        {"losses": ("pce", "img")},
        {"objectness": "gauss", "gauss_sigma": 3.0},
        {"supervision": "masks", "masks_dir": str(data2d / "masks")},
    ]):
        res, losses = _run(data2d, _config(epochs=1, steps_per_epoch=2, **kw), f"r{i}")
        assert len(losses) == 2 and all(np.isfinite(losses))


def test_rgb_two_class_run(tmp_path) -> None:
    from pointseg_cli.io.points import PointTable, write_points_csv

    make_dataset(tmp_path, n_images=2, shape=(40, 40), n_objects=4, radius=4, rgb=True)
    t = read_points_csv(tmp_path / "points.csv")
    names = np.array(["a", "b"] * (len(t) // 2) + ["a"] * (len(t) % 2))
    write_points_csv(tmp_path / "points.csv", PointTable(image=t.image, coords=t.coords, class_name=names,
                                                         class_names=("a", "b")))
    cfg = _config(classes=("a", "b"), channels=3, epochs=1, steps_per_epoch=2, val_fraction=0.0)
    res, losses = _run(tmp_path, cfg)
    assert len(losses) == 2 and all(np.isfinite(losses))
    loaded = load_model(res.run_dir)
    assert loaded.channels == 3 and loaded.classes == ["a", "b"]
    assert loaded.model.head.out_channels == 3
