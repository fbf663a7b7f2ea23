"""`pointseg objectness` end to end on tiny images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from pointseg_cli.cli.app import app
from pointseg_cli.io.images import write_tiff


def _scene(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path, Path]:
    yy, xx = np.mgrid[:32, :32]
    images = tmp_path / "images"
    masks = tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rows = ["image,z,y,x,class"]
    for name, centres in (("a", [(8, 8), (22, 20)]), ("b", [(16, 16)])):
        mask = np.zeros((32, 32), np.uint8)
        for i, (cy, cx) in enumerate(centres, 1):
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < 25] = i
            rows.append(f"{name},,{cy},{cx},{'big' if i == 1 else 'small'}")
        img = (np.where(mask > 0, 180, 30) + rng.normal(0, 4, mask.shape)).clip(0, 255).astype(np.uint8)
        write_tiff(images / f"{name}.tif", img, axes="YX")
        write_tiff(masks / f"{name}.labels.tif", mask, axes="YX")
    points = tmp_path / "points.csv"
    points.write_text("\n".join(rows) + "\n")
    return points, images, masks


def test_writes_outputs_and_sidecar(runner, tmp_path: Path, rng: np.random.Generator) -> None:  # noqa: ANN001
    points, images, _ = _scene(tmp_path, rng)
    out = tmp_path / "out"
    res = runner.invoke(app, ["objectness", str(points), str(images), "--out", str(out), "--preview",
                              "--w", "5", "--classes", "small,big"])
    assert res.exit_code == 0, res.output
    soft = tifffile.imread(out / "a.objectness.tif")
    assert soft.shape == (3, 32, 32) and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(0), 1.0, rtol=1e-6)
    assert soft[2, 8, 8] == 1.0 and soft[1, 22, 20] == 1.0  # --classes order: small=1, big=2
    regions = tifffile.imread(out / "a.regions.tif")
    assert regions.dtype == np.int32 and set(np.unique(regions)) == {1, 2}
    bg = tifffile.imread(out / "a.background.tif")
    assert bg.dtype == np.uint8 and bg.any() and not bg[8, 8]
    assert np.asarray(Image.open(out / "b.preview.png")).shape == (32, 32, 3)
    meta = json.loads((out / "objectness.json").read_text())
    assert meta["classes"] == ["background", "small", "big"] and meta["w"] == 5.0
    assert meta["cost"] == "seed" and meta["config"]["cost"] == "seed"
    assert meta["preprocessing"]["diffusion_iterations"] == 0 and meta["images"]["b"]["seeds"] == 1


def test_tune_reports_chosen_values(runner, tmp_path: Path, rng: np.random.Generator) -> None:  # noqa: ANN001
    points, images, masks = _scene(tmp_path, rng)
    out = tmp_path / "out"
    res = runner.invoke(app, ["objectness", str(points), str(images), "--out", str(out), "--tune", str(masks),
                              "--tune-diffusion", "0,2"])
    assert res.exit_code == 0, res.output
    assert "chosen: w =" in res.output
    meta = json.loads((out / "objectness.json").read_text())
    assert meta["tune"]["iou"] > 0.8 and len(meta["tune"]["table"]) == 2
    assert meta["w"] == meta["tune"]["w"]


@pytest.mark.parametrize("cost", ["seed", "parent"])
def test_cost_option_reaches_the_outputs(runner, tmp_path: Path, rng: np.random.Generator, cost: str) -> None:  # noqa: ANN001
    points, images, masks = _scene(tmp_path, rng)
    out = tmp_path / "out"
    res = runner.invoke(app, ["objectness", str(points), str(images), "--out", str(out), "--cost", cost,
                              "--tune", str(masks), "--tune-diffusion", "0"])
    assert res.exit_code == 0, res.output
    assert f"cost={cost}" in res.output
    meta = json.loads((out / "objectness.json").read_text())
    assert meta["cost"] == cost and meta["config"]["cost"] == cost and meta["tune"]["iou"] > 0.8
    # the soft labels were grown with that cost: compare with the library on the same settings
    from pointseg_cli.io.images import read_image
    from pointseg_cli.io.points import read_points_csv
    from pointseg_cli.objectness import ObjectnessConfig, objectness_for_image

    pts = read_points_csv(points).for_image("a")
    want = objectness_for_image(read_image(images / "a.tif"), pts,
                                config=ObjectnessConfig(w=meta["w"], cost=cost))
    soft = tifffile.imread(out / "a.objectness.tif")
    np.testing.assert_allclose(1.0 - soft[0], want.objectness, rtol=1e-6, atol=1e-7)


def test_geodesic_diffuse_3d(runner, tmp_path: Path, rng: np.random.Generator) -> None:  # noqa: ANN001
    vol = rng.integers(0, 255, (5, 12, 12)).astype(np.uint8)
    write_tiff(tmp_path / "v.tif", vol, axes="ZYX")
    (tmp_path / "p.csv").write_text("image,z,y,x,class\nv,2,3,3,c\nv,2,9,9,c\n")
    res = runner.invoke(app, ["objectness", str(tmp_path / "p.csv"), str(tmp_path / "v.tif"), "--out",
                              str(tmp_path / "o"), "--mode", "geodesic", "--connectivity", "3", "--diffuse", "2",
                              "--spacing", "2,1,1", "--preview"])
    assert res.exit_code == 0, res.output
    assert tifffile.imread(tmp_path / "o" / "v.objectness.tif").shape == (2, 5, 12, 12)
    assert (tmp_path / "o" / "v.preview.png").exists()


@pytest.mark.parametrize(
    ("csv", "args", "code", "message"),
    [
        ("image,z,y,x,class\na,,40,3,c\n", [], 2, "outside the image"),
        ("image,z,y,x,class\na,1,4,3,c\n", [], 2, "z coordinate"),
        ("image,z,y,x,class\nzzz,,4,3,c\n", [], 2, "no image matches"),
        ("image,z,y,x,class\na,,4,3,c\n", ["--mode", "fast"], 2, "paper, geodesic"),
        ("image,z,y,x,class\na,,4,3,c\n", ["--cost", "mean"], 2, "seed, parent"),
        ("image,z,y,x,class\na,,4,3,c\nb,,50,3,c\n", [], 1, "1 of 2 inputs failed"),
    ],
)
def test_bad_input_exit_codes(runner, tmp_path: Path, rng: np.random.Generator, csv, args, code, message):  # noqa: ANN001, ANN201
    _, images, _ = _scene(tmp_path, rng)
    points = tmp_path / "bad.csv"
    points.write_text(csv)
    out = tmp_path / "out"
    res = runner.invoke(app, ["objectness", str(points), str(images), "--out", str(out), *args])
    assert res.exit_code == code, res.output
    assert message in " ".join(res.output.split())
    if code == 2:  # nothing half-written for the failed image
        assert not list(out.glob("a.*"))


def test_help_has_example(runner) -> None:  # noqa: ANN001
    res = runner.invoke(app, ["objectness", "--help"])
    assert res.exit_code == 0 and "Example" in res.output and "pointseg objectness " in res.output


def test_tune_with_masks_beside_images(runner, tmp_path: Path, rng: np.random.Generator) -> None:  # noqa: ANN001
    points, images, masks = _scene(tmp_path, rng)
    for m in masks.iterdir():
        m.rename(images / m.name)  # a.tif and a.labels.tif side by side: a.tif must not be its own mask
    out = tmp_path / "out"
    res = runner.invoke(app, ["objectness", str(points), str(images), "--out", str(out), "--tune", str(images),
                              "--tune-diffusion", "0"])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "objectness.json").read_text())
    assert sorted(meta["images"]) == ["a", "b"]  # the .labels files are not processed as images
    assert meta["tune"]["iou"] > 0.8


def test_tune_without_any_mask(runner, tmp_path: Path, rng: np.random.Generator) -> None:  # noqa: ANN001
    points, images, _ = _scene(tmp_path, rng)
    empty = tmp_path / "empty"
    empty.mkdir()
    write_tiff(empty / "other.tif", np.zeros((4, 4), np.uint8), axes="YX")
    res = runner.invoke(app, ["objectness", str(points), str(images), "--out", str(tmp_path / "o"), "--tune",
                              str(empty)])
    assert res.exit_code == 2 and "no mask" in " ".join(res.output.split())


def test_stain_normalized_rgb(runner, tmp_path: Path, rng: np.random.Generator) -> None:  # noqa: ANN001
    stains = np.array([[0.65, 0.07], [0.70, 0.99], [0.29, 0.11]])
    conc = rng.gamma(1.0, 0.5, size=(2, 24 * 24))
    rgb = (256 * np.exp(-(stains @ conc)) - 1).T.clip(0, 255).astype(np.uint8).reshape(24, 24, 3)
    write_tiff(tmp_path / "he.tif", rgb, axes="YXC")
    write_tiff(tmp_path / "target.tif", rgb[::-1], axes="YXC")
    (tmp_path / "p.csv").write_text("image,z,y,x,class\nhe,,5,5,cell\nhe,,18,18,cell\n")
    out = tmp_path / "o"
    res = runner.invoke(app, ["objectness", str(tmp_path / "p.csv"), str(tmp_path / "he.tif"), "--out", str(out),
                              "--stain-normalize", str(tmp_path / "target.tif"), "--stain-method", "macenko",
                              "--preview"])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "objectness.json").read_text())
    assert meta["preprocessing"]["stain_method"] == "macenko"
    assert meta["preprocessing"]["stain_target"].endswith("target.tif")
    assert tifffile.imread(out / "he.objectness.tif").shape == (2, 24, 24)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tune-diffusion", "0,-5"], "--tune-diffusion values must be >= 0"),
        (["--tune-diffusion", ""], "one or more values >= 0"),
        (["--spacing", "1,x"], "--spacing must be numbers separated by commas"),
    ],
)
def test_bad_lists_exit_2(runner, tmp_path: Path, rng: np.random.Generator, args, message) -> None:  # noqa: ANN001
    points, images, masks = _scene(tmp_path, rng)
    res = runner.invoke(app, ["objectness", str(points), str(images), "--out", str(tmp_path / "o"), "--tune",
                              str(masks), *args])
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output


def test_run_objectness_reads_the_points_file(tmp_path: Path, rng: np.random.Generator) -> None:
    from pointseg_cli.errors import InputError
    from pointseg_cli.objectness import ObjectnessConfig
    from pointseg_cli.objectness.batch import run_objectness

    points, images, _ = _scene(tmp_path, rng)
    run = run_objectness(points, [images], tmp_path / "o", config=ObjectnessConfig(), classes=["small", "big"])
    assert run.classes == ("small", "big") and run.failed == 0 and len(run.outcomes) == 2
    with pytest.raises(InputError, match="points file '.*nope.csv' does not exist"):
        run_objectness(tmp_path / "nope.csv", [images], tmp_path / "o", config=ObjectnessConfig())
