"""The segment batch as a library: SegmentConfig, run_segment and segment_one."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from pointseg_cli.errors import ConfigError, ModelError
from pointseg_cli.infer import batch
from pointseg_cli.infer.batch import FileResult, PredictorCache, SegmentConfig, run_segment, segment_one
from pointseg_cli.io.images import read_image


@pytest.fixture
def folder(tmp_path, rng):
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "a.tif", (rng.random((70, 90)) * 255).astype(np.uint8))
    tifffile.imwrite(src / "b.tif", (rng.random((40, 50)) * 4000).astype(np.uint16))
    (src / "broken.tif").write_bytes(b"not a tiff")
    return src


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "int8"}, "precision must be one of auto, fp32, fp16; got 'int8'"),
    ({"axes": "ZQX"}, "axes must be distinct letters from T, Z, C, Y, X, S (e.g. ZYX, CZYX, YXC); got 'ZQX'"),
    ({"axes": "ZYY"}, "got 'ZYY'"),
    ({"blend": "cosine"}, "blend must be one of gaussian, linear, constant; got 'cosine'"),
    ({"batch_size": 0}, "batch size must be >= 1; got 0"),
])
def test_config_names_expected_and_received(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SegmentConfig(**kwargs)


def test_batch_results_skip_and_overwrite(folder, tmp_path, pred2d):
    out = tmp_path / "out"
    calls = []
    res = run_segment([folder], SegmentConfig(preview=True), out_dir=out, model=pred2d, device="cpu",
                      progress=lambda task, done, total: calls.append((task, done, total)))
    assert [(f.path.name, f.status) for f in res.files] == [("a.tif", "ok"), ("b.tif", "ok"), ("broken.tif", "failed")]
    assert (res.n_ok, res.n_skipped, res.n_failed) == (2, 0, 1) and res.out_dir == out
    a = res.files[0]
    assert a.shape == (70, 90) and a.provider == "torch-cpu" and a.seconds > 0 and a.voxels_per_second > 0
    assert a.outputs == {"labels": out / "a.labels.tif", "instances": out / "a.instances.tif",
                         "objects": out / "a.objects.csv", "preview": out / "a.preview.png"}
    assert read_image(a.outputs["labels"]).shape == (70, 90)
    assert "cannot read 'broken.tif'" in res.failures[0].message and res.failures[0].shape is None
    assert ("all files", 0, 3) in calls and calls[-1] == ("all files", 3, 3) and any(c[0] == "a" for c in calls)

    again = run_segment([folder / "a.tif"], SegmentConfig(preview=True), out_dir=out, model=pred2d, device="cpu")
    assert again.files[0] == FileResult(folder / "a.tif", "skipped", "outputs exist", shape=(70, 90))
    redo = run_segment([folder / "a.tif"], SegmentConfig(overwrite=True), out_dir=out, model=pred2d, device="cpu")
    assert redo.files[0].status == "ok"


def test_memory_error_fails_that_file_only(folder, tmp_path, pred2d, monkeypatch):
    def boom(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(batch, "segment_file", boom)
    cache = PredictorCache(pred2d, device="cpu")
    res = segment_one(folder / "a.tif", config=SegmentConfig(), out_dir=tmp_path, predictors=cache)
    assert res.status == "failed" and "out of host memory" in res.message and res.provider == "torch-cpu"


def test_device_must_be_resolved_and_bad_models_fail_before_output(folder, tmp_path):
    with pytest.raises(ConfigError, match="device must be one of cpu, cuda; got 'auto'"):
        run_segment([folder], out_dir=tmp_path / "out", model="test-2d-gray", device="auto")
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        run_segment([folder], out_dir=tmp_path / "out", model="nope", device="cpu")
    assert not (tmp_path / "out").exists()


def test_default_models_are_loaded_once_per_kind(folder, tmp_path, rng):
    (folder / "broken.tif").unlink()
    tifffile.imwrite(folder / "v.tif", (rng.random((10, 40, 40)) * 255).astype(np.uint8))
    cache = PredictorCache("test-2d-gray", device="cpu")
    assert cache.for_kind("2d-gray") is cache.for_kind("3d")  # a given model serves every kind
    res = run_segment([folder], SegmentConfig(tile=(8, 32, 32)), out_dir=tmp_path / "o", model="test-3d")
    assert [f.status for f in res.files] == ["failed", "failed", "ok"]  # the 3-D model refuses 2-D images
    assert "model expects 3D images" in res.files[0].message


def test_inference_does_not_import_training_or_export_code():
    code = (
        "import sys\n"
        "import pointseg_cli.infer, pointseg_cli.infer.batch, pointseg_cli.infer.segment, "
        "pointseg_cli.infer.predictors\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('pointseg_cli.train', 'pointseg_cli.export')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"inference imported {out.stdout.strip()}"
