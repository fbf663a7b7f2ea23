"""Finding inputs: our own outputs never taken, same stems refused, special files never opened."""

from __future__ import annotations

import logging
import os
import socket

import numpy as np
import pytest
import tifffile

from pointseg_cli.errors import InputError
from pointseg_cli.io.images import DERIVED_MARKERS, find_images, is_derived


def _tif(path):
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8))
    return path


OUTPUT_NAMES = [
    "a.labels.tif", "a.instances.tif", "a.probabilities.tif", "a.preview.png", "a.objectness.tif",
    "a.regions.tif", "a.background.tif", "a.classes.tif",
]


@pytest.mark.parametrize("name", OUTPUT_NAMES)
def test_every_output_name_is_derived(name):
    assert is_derived(name)


def test_probabilities_zarr_is_derived():
    assert is_derived("a.probabilities.zarr") and ".instances" in DERIVED_MARKERS


def test_folder_glob_and_unquoted_glob_skip_outputs(tmp_path, caplog):
    _tif(tmp_path / "a.tif")
    for name in OUTPUT_NAMES:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "a.probabilities.zarr").mkdir()
    assert [p.name for p in find_images([tmp_path])] == ["a.tif"]
    assert [p.name for p in find_images([str(tmp_path / "*")])] == ["a.tif"]
    # what the shell hands over for an unquoted *.tif: the outputs are dropped with a warning
    expanded = sorted(tmp_path.glob("*.tif"))
    with caplog.at_level(logging.WARNING):
        assert [p.name for p in find_images(expanded)] == ["a.tif"]
    assert "skipping" in caplog.text and "pointseg output" in caplog.text
    # an output named on its own is used as asked (e.g. to evaluate or inspect it)
    assert [p.name for p in find_images([tmp_path / "a.labels.tif"])] == ["a.labels.tif"]


@pytest.mark.parametrize("names", [("x.tif", "x.ome.tif"), ("x.tif", "x.tiff"), ("x.tif", "x.png")])
def test_same_stem_in_one_folder_is_refused(tmp_path, names):
    for name in names:
        _tif(tmp_path / name)
    with pytest.raises(InputError, match=r"two images share the stem 'x'") as err:
        find_images([tmp_path])
    assert all(name in str(err.value) for name in names)


def test_same_stem_in_two_folders_is_refused(tmp_path):
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
        _tif(tmp_path / sub / "x.tif")
    with pytest.raises(InputError, match="share the stem 'x'") as err:
        find_images([tmp_path / "one", tmp_path / "two"])
    assert "one" in str(err.value) and "two" in str(err.value)
    assert len(find_images([tmp_path / "one", tmp_path / "two"], unique_stems=False)) == 2


def test_same_file_twice_is_not_a_duplicate(tmp_path):
    _tif(tmp_path / "x.tif")
    os.symlink(tmp_path / "x.tif", tmp_path / "y.tif")
    assert len(find_images([tmp_path / "x.tif", tmp_path / "x.tif", tmp_path / "y.tif"])) == 1


def test_fifo_and_socket_in_folder_are_skipped_never_opened(tmp_path, caplog):
    _tif(tmp_path / "a.tif")
    os.mkfifo(tmp_path / "pipe.tif")  # opening it for reading would block forever
    sock = socket.socket(socket.AF_UNIX)
    sock_path = tmp_path / "s.tif"
    try:
        sock.bind(str(sock_path))
    except OSError:  # path too long for AF_UNIX on some systems
        sock_path = None
    with caplog.at_level(logging.WARNING):
        assert [p.name for p in find_images([tmp_path])] == ["a.tif"]
        assert [p.name for p in find_images([str(tmp_path / "*.tif")])] == ["a.tif"]
    sock.close()
    assert "FIFO" in caplog.text
    with pytest.raises(InputError, match="FIFO"):
        find_images([tmp_path / "pipe.tif"])


def test_symlink_loop(tmp_path, caplog):
    _tif(tmp_path / "a.tif")
    os.symlink(tmp_path / "l1.tif", tmp_path / "l2.tif")
    os.symlink(tmp_path / "l2.tif", tmp_path / "l1.tif")
    with pytest.raises(InputError, match="symbolic link loop"):
        find_images([tmp_path / "l1.tif"])
    with caplog.at_level(logging.WARNING):
        assert [p.name for p in find_images([tmp_path])] == ["a.tif"]
    assert "symbolic link loop" in caplog.text
    os.symlink(tmp_path / "loopdir", tmp_path / "loopdir")
    with pytest.raises(InputError, match="symbolic link loop"):
        find_images([tmp_path / "loopdir"])


def test_dangling_link_and_unlistable_folder(tmp_path, monkeypatch):
    os.symlink(tmp_path / "gone.tif", tmp_path / "d.tif")
    with pytest.raises(InputError, match="link to a missing file"):
        find_images([tmp_path / "d.tif"])

    def denied(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "listdir", denied)
    with pytest.raises(InputError, match="cannot be listed: permission denied"):
        find_images([tmp_path])


def test_a_folder_scan_leaves_out_masks_beside_the_images(tmp_path) -> None:
    import numpy as np
    import tifffile

    from pointseg_cli.io.images import find_images

    for name in ("a.tif", "a.masks.tif", "a_mask.tif", "b_labels.tif", "b.tif"):
        tifffile.imwrite(tmp_path / name, np.zeros((8, 8), np.uint8))
    assert [p.name for p in find_images([tmp_path])] == ["a.tif", "b.tif"]
