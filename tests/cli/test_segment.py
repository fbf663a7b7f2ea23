from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pointseg_cli.cli.app import app
from pointseg_cli.io.images import read_info


def _seg(runner, *args):
    return runner.invoke(app, ["segment", *map(str, args)], terminal_width=200)


def test_folder_of_2d_images(runner, inputs, tmp_path):
    out = tmp_path / "out"
    res = _seg(runner, inputs, "--out-dir", out, "--model", "test-2d-gray", "--preview")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{s}.{kind}" for s in "ab" for kind in ("instances.tif", "labels.tif", "objects.csv",
                                                                 "preview.png")]
    info = read_info(out / "a.labels.tif")
    assert info.shape == (90, 110) and info.dtype == np.uint8
    assert "CPUExecutionProvider" in res.output and "ok" in res.output and "voxels/s" in res.output


def test_existing_outputs_are_skipped_unless_overwrite(runner, inputs, tmp_path):
    out = tmp_path / "out"
    assert _seg(runner, inputs / "a.tif", "--out-dir", out, "--model", "test-2d-gray").exit_code == 0
    stamp = (out / "a.labels.tif").stat().st_mtime_ns
    res = _seg(runner, inputs / "a.tif", "--out-dir", out, "--model", "test-2d-gray")
    assert res.exit_code == 0 and "skipped" in res.output
    assert (out / "a.labels.tif").stat().st_mtime_ns == stamp
    res = _seg(runner, inputs / "a.tif", "--out-dir", out, "--model", "test-2d-gray", "--overwrite")
    assert res.exit_code == 0 and "skipped" not in res.output
    # asking for a new output kind is not skipped either
    res = _seg(runner, inputs / "a.tif", "--out-dir", out, "--model", "test-2d-gray", "--probabilities", "tif")
    assert res.exit_code == 0 and (out / "a.probabilities.tif").is_file()


def test_bad_file_is_reported_and_batch_continues_exit_1(runner, inputs, tmp_path):
    (inputs / "broken.tif").write_bytes(b"not a tiff at all")
    tifffile.imwrite(inputs / "vol.tif", np.zeros((5, 40, 40), np.uint8))  # 3D: wrong for a 2D model
    out = tmp_path / "out"
    res = _seg(runner, inputs, "--out-dir", out, "--model", "test-2d-gray")
    assert res.exit_code == 1, res.output
    assert "2 of 4 inputs failed" in res.output
    assert "cannot read 'broken.tif'" in res.output and "model expects 2D images" in res.output
    assert sorted(p.name for p in out.iterdir()) == [f"{s}.{kind}" for s in "ab"
                                                     for kind in ("instances.tif", "labels.tif", "objects.csv")]


def test_3d_volume_with_probabilities_zarr(runner, tmp_path, rng):
    src = tmp_path / "vol.tif"
    tifffile.imwrite(src, (rng.random((12, 40, 48)) * 255).astype(np.uint8))
    out = tmp_path / "out"
    res = _seg(runner, src, "--out-dir", out, "--model", "test-3d", "--tile", "8,32,32", "--probabilities", "zarr",
               "--batch-size", "3", "--blend", "linear", "--overlap", "0.5")
    assert res.exit_code == 0, res.output
    assert read_info(out / "vol.labels.tif").shape == (12, 40, 48)
    assert read_info(out / "vol.probabilities.zarr").shape == (12, 40, 48, 2)


def test_rgb_image_with_rgb_model(runner, tmp_path, rng):
    src = tmp_path / "rgb.tif"
    tifffile.imwrite(src, (rng.random((50, 60, 3)) * 255).astype(np.uint8), photometric="rgb")
    res = _seg(runner, src, "--out-dir", tmp_path / "o", "--model", "test-2d-rgb", "--preview")
    assert res.exit_code == 0, res.output
    assert read_info(tmp_path / "o" / "rgb.labels.tif").shape == (50, 60)


@pytest.mark.parametrize("args, message", [
    (["--device", "cuda"], "device 'cuda' was requested"),
    (["--device", "tpu"], "device must be one of auto, cpu, cuda"),
    (["--blend", "cosine"], "blend must be one of gaussian, linear, constant"),
    (["--overlap", "1.5"], "overlap must be in [0, 1)"),
    (["--tile", "abc"], "--tile must be sizes like"),
    (["--probabilities", "h5"], "probabilities format must be one of tif, zarr"),
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--precision", "fp16"], "needs an fp16 ONNX model"),
])
def test_invalid_usage_exit_2_one_line(runner, inputs, tmp_path, args, message):
    res = _seg(runner, inputs, "--out-dir", tmp_path / "out", *(["--model", "test-2d-gray"] if "--model" not in args
                                                              else []), *args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists()  # nothing created for an invalid command


def test_no_default_model_for_kind_is_exit_2(runner, inputs, tmp_path, monkeypatch):
    from pointseg_cli import zoo

    monkeypatch.setattr(zoo, "read_defaults", dict)
    res = _seg(runner, inputs, "--out-dir", tmp_path / "out")
    assert res.exit_code == 2
    assert "no default model for 2d-gray inputs" in res.output


def test_missing_input_is_exit_2(runner, tmp_path):
    res = _seg(runner, tmp_path / "nothing.tif", "--out-dir", tmp_path / "out", "--model", "test-2d-gray")
    assert res.exit_code == 2 and "does not exist" in res.output


def test_crash_in_the_middle_leaves_no_partial_output(runner, inputs, tmp_path, monkeypatch):
    from pointseg_cli.infer import predictors

    calls = {"n": 0}
    real = predictors.OrtPredictor.predict

    def flaky(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # what Ctrl-C (or a kill turned into an exception) looks like
        return real(self, batch)

    monkeypatch.setattr(predictors.OrtPredictor, "predict", flaky)
    big = tmp_path / "big.tif"
    tifffile.imwrite(big, np.zeros((300, 300), np.uint8))
    out = tmp_path / "out"
    res = _seg(runner, big, "--out-dir", out, "--model", "test-2d-gray", "--tile", "64,64", "--batch-size", "1",
               "--probabilities", "zarr")
    assert res.exit_code == 130
    assert list(out.iterdir()) == []


def test_help_has_example(runner):
    res = runner.invoke(app, ["segment", "--help"], terminal_width=200)
    assert res.exit_code == 0 and "Example" in res.output and "pointseg segment " in res.output


@pytest.fixture
def he_run(tmp_path):
    """An untrained FPN run dir whose config carries a stain reference, plus an H&E tile."""
    import torch

    from pointseg_cli.demo import make_he_tile
    from pointseg_cli.model import build_model
    from pointseg_cli.preprocess.stain import stain_reference
    from pointseg_cli.train.checkpoint import save_checkpoint
    from pointseg_cli.train.config import TrainConfig, default_normalization

    ref = stain_reference(make_he_tile((64, 64), seed=7).image) | {"target": "ref.tif"}
    cfg = TrainConfig(encoder="resnet18", base_filters=4, channels=3, classes=("nucleus",), crop=(64, 64),
                      normalization={**default_normalization(), "stain": ref})
    torch.manual_seed(0)
    run = tmp_path / "run"
    cfg.to_json(run / "config.json")
    save_checkpoint(run / "best.pt", model=build_model(cfg).eval(), config=cfg)
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "he.tif", make_he_tile((96, 96), seed=8).image, photometric="rgb")
    return run, folder


def test_stain_model_is_applied_unless_switched_off(runner, he_run, tmp_path, monkeypatch):
    from pointseg_cli.infer import segment as seg
    from pointseg_cli.infer.predictors import make_predictor
    from pointseg_cli.io.images import read_image

    calls: list[tuple[int, ...]] = []
    real = seg.apply_stains

    def spy(pixels, source, reference, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append(np.shape(pixels))
        return real(pixels, source, reference, **kw)

    monkeypatch.setattr(seg, "apply_stains", spy)
    run, folder = he_run
    res = _seg(runner, folder, "--out-dir", tmp_path / "on", "--model", run, "--probabilities", "tif")
    assert res.exit_code == 0, res.output
    # once on the statistics subsample (the whole 96x96 tile), then on every batch of tiles
    assert calls[0] == (96, 96, 3) and len(calls) >= 2 and all(c[-1] == 3 for c in calls)
    calls.clear()
    res = _seg(runner, folder, "--out-dir", tmp_path / "off", "--model", run, "--probabilities", "tif",
               "--no-stain-normalize")
    assert res.exit_code == 0, res.output
    assert calls == []
    pred = make_predictor(run, device="cpu", precision="fp32")
    image = read_image(folder / "he.tif")
    for name, stain in (("on", True), ("off", False)):
        want = seg.segment_array(image, pred, options=seg.SegmentOptions(stain=stain), return_logits=True)
        probs = tifffile.imread(tmp_path / name / "he.probabilities.tif").astype(np.float32)
        soft = np.exp(want.logits - want.logits.max(axis=0))
        np.testing.assert_allclose(probs, soft / soft.sum(axis=0), atol=1e-3)
        np.testing.assert_array_equal(read_image(tmp_path / name / "he.labels.tif"), want.labels)
