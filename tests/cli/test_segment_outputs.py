"""`pointseg segment` as users type it: outputs beside the input, voxel size, OME-Zarr, provenance,
global flags in either place, mixed batches without --model, help text, previews."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from pointseg_cli.cli.app import app, hoist_global_flags
from pointseg_cli.io.images import read_info, write_tiff
from pointseg_cli.io.ome_zarr import ngff_version, zarr_major


def _run(runner, *args):
    return runner.invoke(app, [str(a) for a in args], terminal_width=200)


@pytest.fixture
def image2d(tmp_path, rng):
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "cells.tif"
    write_tiff(path, (rng.random((60, 70)) * 255).astype(np.uint8), axes="YX", voxel_size=(0.4, 0.4))
    return path


@pytest.fixture
def volume(tmp_path, rng):
    path = tmp_path / "vol.tif"
    write_tiff(path, (rng.random((12, 40, 48)) * 255).astype(np.uint8), axes="ZYX")
    return path


def _description(path):
    with tifffile.TiffFile(path) as tf:
        xml = tf.ome_metadata
    from html import unescape

    return json.loads(unescape(xml.split("<Description>")[1].split("</Description>")[0]))


def test_no_out_dir_writes_beside_the_input_and_says_where(runner, image2d, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = _run(runner, "segment", image2d, "--model", "test-2d-gray")
    assert res.exit_code == 0, res.output
    assert (image2d.parent / "cells.labels.tif").is_file()
    assert "wrote" in res.output and "cells.labels.tif" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing in the working folder


def test_ground_truth_beside_the_input_is_never_overwritten(runner, image2d):
    gt = image2d.parent / "cells.labels.tif"
    write_tiff(gt, np.ones((60, 70), np.uint8), axes="YX")
    before = gt.read_bytes()
    for extra in ((), ("--overwrite",), ("--preview",)):
        res = _run(runner, "segment", image2d, "--model", "test-2d-gray", *extra)
        assert res.exit_code == 1, res.output
        assert "was not written by pointseg segment" in res.output
        assert gt.read_bytes() == before
    assert not (image2d.parent / "cells.preview.png").exists()


def test_voxel_size_kept_and_overridden(runner, image2d, volume, tmp_path):
    out = tmp_path / "out"
    assert _run(runner, "segment", image2d, "-o", out, "--model", "test-2d-gray").exit_code == 0
    assert read_info(out / "cells.labels.tif").voxel_size == pytest.approx((0.4, 0.4))  # from the input
    res = _run(runner, "segment", volume, "-o", out, "--model", "test-3d", "--tile", "8,32,32",
               "--voxel-size", "2,0.5,0.5", "--probabilities", "zarr")
    assert res.exit_code == 0, res.output
    assert read_info(out / "vol.labels.tif").voxel_size == pytest.approx((2.0, 0.5, 0.5))
    assert read_info(out / "vol.probabilities.zarr").voxel_size == pytest.approx((2.0, 0.5, 0.5))
    res = _run(runner, "segment", volume, "-o", out, "--model", "test-3d", "--tile", "8,32,32",
               "--voxel-size", "0.5", "--probabilities", "tif", "--overwrite")
    assert res.exit_code == 0, res.output
    assert read_info(out / "vol.labels.tif").voxel_size == pytest.approx((0.5, 0.5, 0.5))
    with tifffile.TiffFile(out / "vol.probabilities.tif") as tf:
        assert tf.shaped_metadata[0]["voxel_size_um"] == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("value, message", [
    ("2,0.5", "voxel size has 2 values but 'vol.tif' is 3D"),
    ("0,1,1", "voxel size must be positive"),
    ("a,b", "--voxel-size must be numbers"),
])
def test_bad_voxel_size(runner, volume, tmp_path, value, message):
    res = _run(runner, "segment", volume, "-o", tmp_path / "o", "--model", "test-3d", "--voxel-size", value)
    assert res.exit_code in (1, 2) and message in res.output and "Traceback" not in res.output


def test_probabilities_zarr_is_valid_ome_zarr_for_the_installed_zarr(runner, volume, tmp_path, monkeypatch):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    from pointseg_cli.io import ome_zarr as oz

    writes = []
    real = oz.OmeZarrWriter.write
    monkeypatch.setattr(oz.OmeZarrWriter, "write", lambda self, region, data: (writes.append(data.shape),
                                                                                real(self, region, data)))
    out = tmp_path / "out"
    res = _run(runner, "segment", volume, "-o", out, "--model", "test-3d", "--tile", "8,32,32",
               "--probabilities", "zarr", "--voxel-size", "2,0.5,0.5")
    assert res.exit_code == 0, res.output
    assert len(writes) > 1 and all(s[1] < 12 for s in writes)  # streamed slab by slab, never the whole volume
    store = out / "vol.probabilities.zarr"
    assert ngff_version() == ("0.5" if zarr_major() >= 3 else "0.4")
    meta = json.loads((store / ("zarr.json" if zarr_major() >= 3 else ".zattrs")).read_text())
    attrs = meta.get("attributes", meta)
    ome = attrs["ome"] if ngff_version() == "0.5" else attrs
    assert ome.get("version", ome["multiscales"][0].get("version")) == ngff_version()
    assert attrs["pointseg"]["model"]["name"] == "test-3d"
    nodes = list(Reader(parse_url(str(store)))())
    assert nodes and nodes[0].data[0].shape == (2, 12, 40, 48)
    assert nodes[0].metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 2.0, 0.5, 0.5]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_every_output_records_provenance_and_the_model_is_printed(runner, image2d, tmp_path):
    from pointseg_cli import __version__
    from pointseg_cli.zoo import fetch, sha256_of

    out = tmp_path / "out"
    res = _run(runner, "segment", image2d, "-o", out, "--model", "test-2d-gray", "--preview", "--probabilities",
               "tif", "--overlap", "0.5")
    assert res.exit_code == 0, res.output
    sha = sha256_of(fetch("test-2d-gray"))
    assert f"model: test-2d-gray (sha256 {sha[:12]})" in res.output
    desc = _description(out / "cells.labels.tif")
    assert desc["classes"][0] == "background"
    prov = desc["pointseg"]
    assert prov["model"] == {"name": "test-2d-gray", "sha256": sha}
    assert prov["version"] == __version__ and prov["input"] == "cells.tif"
    assert prov["options"]["overlap"] == 0.5 and prov["options"]["tile"] and prov["voxel_size_um"] == [0.4, 0.4]
    with tifffile.TiffFile(out / "cells.probabilities.tif") as tf:
        assert tf.shaped_metadata[0]["pointseg"]["model"]["sha256"] == sha
    png = json.loads(Image.open(out / "cells.preview.png").text["pointseg"])
    assert png["model"]["name"] == "test-2d-gray"


@pytest.mark.parametrize("flags", [["-q"], ["--quiet"], ["-q", "--debug"]])
def test_global_flags_after_the_subcommand(runner, image2d, tmp_path, flags):
    res = _run(runner, "segment", image2d, "-o", tmp_path / "o", "--model", "test-2d-gray", *flags)
    assert res.exit_code == 0, res.output
    assert "model:" not in res.output and "voxels/s" not in res.output  # --quiet honoured
    res = _run(runner, "segment", tmp_path / "missing.tif", "-o", tmp_path / "o", "--model", "test-2d-gray",
               "--debug")
    assert res.exit_code != 0 and isinstance(res.exception, Exception)  # --debug re-raises


def test_hoist_global_flags():
    commands = {"segment": None, "models": None}
    assert hoist_global_flags(["segment", "a.tif", "-q", "-vv"], commands) == ["-q", "-vv", "segment", "a.tif"]
    assert hoist_global_flags(["--debug", "segment", "a.tif"], commands) == ["--debug", "segment", "a.tif"]
    assert hoist_global_flags(["segment", "--", "-q"], commands) == ["segment", "--", "-q"]
    assert hoist_global_flags(["models", "list", "--quiet"], commands) == ["--quiet", "models", "list"]
    assert hoist_global_flags(["nosuch", "-q"], commands) == ["nosuch", "-q"]


def test_mixed_batch_without_model_fails_only_inputs_with_no_default(runner, image2d, volume, monkeypatch):
    from pointseg_cli import zoo

    monkeypatch.setattr(zoo, "read_defaults", lambda: {"3d": "test-3d"})
    volume.rename(image2d.parent / volume.name)
    res = _run(runner, "segment", image2d.parent, "--tile", "8,32,32")
    assert res.exit_code == 1, res.output
    assert "1 of 2 inputs failed" in res.output
    assert "no default model for 2d-gray inputs" in res.output
    assert (image2d.parent / "vol.labels.tif").is_file() and not (image2d.parent / "cells.labels.tif").exists()


COMMANDS = [["annotate-import"], ["objectness"], ["train"], ["export"], ["segment"], ["evaluate"], ["demo-data"],
            ["models"], ["models", "list"], ["models", "fetch"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_examples_and_no_type_noise(runner, command):
    res = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    text = res.output
    assert "Examples" in text and f"pointseg {' '.join(command)}" in text
    for noise in ("<bool>", "<int>", "<float>", "<str>", "<path>", "list[str]", "issue"):
        assert noise not in text, noise
    assert "/work/" not in text


def test_segment_help_keeps_stem_placeholder(runner):
    res = runner.invoke(app, ["segment", "--help"], terminal_width=200)
    assert "<stem>.labels.tif" in res.output and "--voxel-size" in res.output


def test_preview_2d_has_outlines_and_3d_has_orthogonal_views(runner, image2d, volume, tmp_path):
    out = tmp_path / "out"
    # without instances the outlines are those of the classes (with them, each object has its own colour)
    assert _run(runner, "segment", image2d, "-o", out, "--model", "test-2d-gray", "--preview",
                "--instances", "none").exit_code == 0
    labels = tifffile.imread(out / "cells.labels.tif")
    png = np.asarray(Image.open(out / "cells.preview.png"))
    assert png.shape == (60, 70, 3)
    from pointseg_cli.infer.preview import PALETTE, outlines

    rim = outlines(labels)
    if rim.any():  # outline pixels are drawn in the class colour, opaque
        cls = labels[rim][0]
        colour = PALETTE[(cls - 1) % len(PALETTE)]
        assert np.all(png[rim][labels[rim] == cls] == colour.astype(np.uint8))
    res = _run(runner, "segment", volume, "-o", out, "--model", "test-3d", "--tile", "8,32,32", "--preview",
               "--voxel-size", "2,0.5,0.5")
    assert res.exit_code == 0, res.output
    png = np.asarray(Image.open(out / "vol.preview.png"))
    # XY 40x48, YZ and XZ with Z = 12 slices stretched 4x (2 µm / 0.5 µm), 4 px gaps
    assert png.shape == (40 + 4 + 48, 48 + 4 + 48, 3)
