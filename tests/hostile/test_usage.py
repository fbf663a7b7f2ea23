"""Options that do not fit the model or the inputs, and output paths that cannot be written: exit 2
with one line before any file is processed, and nothing left behind under any name."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from tests.hostile.conftest import IMAGE, assert_batch_failure, invoke, leftovers, only_line, snapshot

MODEL = ("--model", "test-2d-gray")
POINTS = "image,z,y,x,class\na,,20,30,cell\n"


@pytest.fixture
def folder(tmp_path):
    """Two 2-D images, so that a per-file failure would show as a batch of failures."""
    d = tmp_path / "in"
    d.mkdir()
    tifffile.imwrite(d / "a.tif", IMAGE)
    tifffile.imwrite(d / "b.tif", IMAGE[:40])
    return d


@pytest.mark.parametrize(
    "options, needles",
    [
        (("--tile", "8,64,64", *MODEL), ("--tile 8,64,64", "2-D")),  # 3-D tile, 2-D model
        (("--tile", "64,64", "--model", "test-3d"), ("--tile 64,64", "3-D")),  # 2-D tile, 3-D model
        (("--tile", "8,64,64"), ("--tile 8,64,64", "'a.tif' is 2-D")),  # default models: decided per input kind
        (("--axes", "ZYX", *MODEL), ("--axes 'ZYX'", "2 dimensions")),
        (("--axes", "CYX", *MODEL), ("--axes 'CYX'",)),
        (("--axes", "XY", "--model", "test-3d"), ("--axes XY", "3-D")),  # fits the file, not the model
        (("--axes", "Q", *MODEL), ("axes must be",)),
        (("--overlap", "1", *MODEL), ("overlap",)),
        (("--overlap", "nan", *MODEL), ("overlap", "nan")),
        (("--overlap", "-0.5", *MODEL), ("overlap",)),
        (("--batch-size", "0", *MODEL), ("batch size",)),
        (("--tile", "0,64", *MODEL), ("--tile",)),
        (("--tile", "64", *MODEL), ("--tile",)),
        (("--tile", "a,b", *MODEL), ("--tile",)),
        (("--blend", "cubic", *MODEL), ("blend",)),
        (("--precision", "fp8", *MODEL), ("precision",)),
        (("--probabilities", "png", *MODEL), ("probabilities",)),
    ],
)
def test_segment_option_that_does_not_fit_is_one_line_before_work(runner, folder, tmp_path, options, needles):
    out = tmp_path / "out"
    before = snapshot(folder)
    only_line(invoke(runner, "segment", folder, "--out-dir", out, *options), *needles)
    assert not out.exists()
    assert snapshot(folder) == before


def test_input_that_does_not_fit_the_model_still_fails_alone(runner, folder, tmp_path):
    """Without --axes a 3-D input among 2-D ones is that file's problem, not a usage error."""
    tifffile.imwrite(folder / "v.tif", np.stack([IMAGE] * 8), photometric="minisblack")
    out = tmp_path / "out"
    assert_batch_failure(invoke(runner, "segment", folder, "--out-dir", out, *MODEL), "v.tif", "2D")
    assert sorted(p.name for p in out.iterdir()) == [f"{s}.{kind}" for s in "ab"
                                                     for kind in ("instances.tif", "labels.tif", "objects.csv")]


def test_out_dir_is_a_file(runner, folder, tmp_path):
    target = tmp_path / "taken"
    target.write_text("mine")
    only_line(invoke(runner, "segment", folder, "--out-dir", target, *MODEL), "is a file")
    assert target.read_text() == "mine"


def test_out_dir_under_a_file(runner, folder, tmp_path):
    (tmp_path / "taken").write_text("mine")
    only_line(invoke(runner, "segment", folder, "--out-dir", tmp_path / "taken" / "seg", *MODEL), "is a file")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_dir_not_writable(runner, folder, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        only_line(invoke(runner, "segment", folder, "--out-dir", out, *MODEL), "not writable")
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o755)


def test_out_dir_not_writable_even_for_root(runner, folder, tmp_path, monkeypatch):
    """The check creates a file, so it also catches read-only mounts and ACLs (simulated here)."""
    import pointseg_cli.io.writers as writers

    out = tmp_path / "out"
    real_open = os.open

    def refusing_open(path, flags, *args):  # noqa: ANN001, ANN002, ANN202
        if str(path).startswith(str(out)) and flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(writers.os, "open", refusing_open)
    only_line(invoke(runner, "segment", folder, "--out-dir", out, *MODEL), "not writable", "Permission denied")
    assert leftovers(out) == [] and list(out.iterdir()) == []


@pytest.mark.parametrize(
    "taken, options",
    [
        ("a.labels.tif", ()),
        ("a.preview.png", ("--preview",)),
        ("a.probabilities.tif", ("--probabilities", "tif")),
    ],
)
def test_final_output_name_is_a_folder(runner, folder, tmp_path, taken, options):
    out = tmp_path / "out"
    (out / taken).mkdir(parents=True)
    before = snapshot(out)
    only_line(invoke(runner, "segment", folder, "--out-dir", out, *MODEL, *options), taken, "is a folder")
    assert snapshot(out) == before  # not even b's outputs: the batch stopped before any work


def test_zarr_output_name_is_a_file(runner, folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.probabilities.zarr").write_text("not zarr")
    only_line(invoke(runner, "segment", folder, "--out-dir", out, *MODEL, "--probabilities", "zarr"),
              "b.probabilities.zarr", "is a file")


def test_final_name_taken_after_the_check_fails_that_file_and_leaves_no_temporary(folder, tmp_path):
    """The last line of defence (a folder appears between the check and the rename): one failure, no leftovers."""
    from pointseg_cli.infer.batch import PredictorCache, SegmentConfig, segment_one

    out = tmp_path / "out"
    (out / "a.labels.tif").mkdir(parents=True)
    res = segment_one(folder / "a.tif", config=SegmentConfig(overwrite=True, instances="none"), out_dir=out,
                      predictors=PredictorCache("test-2d-gray", device="cpu"))
    assert res.status == "failed" and "is a folder" in res.message
    assert leftovers(out) == [] and sorted(p.name for p in out.iterdir()) == ["a.labels.tif"]


# ------------------------------------------------------------------ objectness


@pytest.mark.parametrize(
    "options, needles",
    [
        (("--spacing", "2,1,1"), ("--spacing has 3 values", "'a.tif' has 2 spatial axes")),
        (("--spacing", "1,nan"), ("--spacing", "finite")),
        (("--spacing", "1,inf"), ("--spacing", "finite")),
        (("--spacing", "1,0"), ("spacing",)),
        (("--axes", "ZYX"), ("--axes 'ZYX'",)),
        (("--kappa", "inf", "--diffuse", "2"), ("kappa", "inf")),
        (("--w", "nan"), ("w must be",)),
        (("--low", "nan"), ("low=nan",)),
        (("--connectivity", "5"), ("connectivity",)),
    ],
)
def test_objectness_option_that_does_not_fit_is_one_line_before_work(runner, folder, tmp_path, options, needles):
    points = tmp_path / "points.csv"
    points.write_text(POINTS)
    out = tmp_path / "out"
    only_line(invoke(runner, "objectness", points, folder, "--out", out, *options), *needles)
    assert not out.exists()


@pytest.mark.parametrize("taken", ["a.regions.tif", "objectness.json"])
def test_objectness_output_name_is_a_folder(runner, folder, tmp_path, taken):
    points = tmp_path / "points.csv"
    points.write_text(POINTS)
    out = tmp_path / "out"
    (out / taken).mkdir(parents=True)
    before = snapshot(out)
    only_line(invoke(runner, "objectness", points, folder, "--out", out), taken, "is a folder")
    assert snapshot(out) == before


def test_objectness_out_is_a_file(runner, folder, tmp_path):
    points = tmp_path / "points.csv"
    points.write_text(POINTS)
    (tmp_path / "taken").write_text("mine")
    only_line(invoke(runner, "objectness", points, folder, "--out", tmp_path / "taken"), "is a file")


def test_disk_full_while_writing_fails_that_file_and_leaves_no_temporary(runner, folder, tmp_path, monkeypatch):
    import errno

    import pointseg_cli.infer.outputs as outputs

    def full(fd, data, offset):  # noqa: ANN001, ANN202
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.os, "pwrite", full)
    out = tmp_path / "out"
    res = invoke(runner, "segment", folder, "--out-dir", out, *MODEL, "--probabilities", "zarr", "--preview")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "2 of 2 inputs failed" in res.output and res.output.count("No space left on device") == 2
    assert list(out.iterdir()) == []
