"""Helpers for the hostile-input suite: broken files made on the spot, and the promises every
command keeps — the exit code, one message line, no traceback, nothing left behind."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from pointseg_cli.cli.app import app
from pointseg_cli.io.images import write_zarr
from tests.io.ngff_helpers import ngff_attrs

IMAGE = ((np.arange(64 * 80).reshape(64, 80) * 7) % 200 + 20).astype(np.uint8)


def invoke(runner, *args):  # noqa: ANN001, ANN201
    """Run the CLI on ``args`` (paths turned into text), wide enough that lines do not wrap."""
    return runner.invoke(app, [str(a) for a in args], terminal_width=250)


def assert_usage_error(res, *needles: str) -> str:  # noqa: ANN001
    """Exit 2, exactly one ``error:`` line (which contains every needle), no traceback."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.output
    for needle in needles:
        assert needle in lines[0], res.output
    return lines[0]


def assert_batch_failure(res, name: str, *needles: str) -> str:  # noqa: ANN001
    """Exit 1 with the batch summary; exactly one ``failed:`` line, for ``name``; no traceback."""
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output, res.output
    assert "inputs failed" in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("failed:")]
    assert len(lines) == 1 and name in lines[0], res.output
    for needle in needles:
        assert needle in lines[0], res.output
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Hidden or temporary files pointseg might have left in ``folder`` (recursively)."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name)


# ------------------------------------------------------------------ broken files (2-D, 64 x 80)


def _truncated_pages(path: Path) -> None:
    tifffile.imwrite(path, np.stack([IMAGE] * 3), photometric="minisblack")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])  # page 1 is whole: it must not pass as the image


def _truncated_zlib(path: Path) -> None:
    tifffile.imwrite(path, IMAGE, compression="zlib", rowsperstrip=8)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_strip(path: Path) -> None:
    tifffile.imwrite(path, IMAGE, compression="zlib", rowsperstrip=8)
    with tifffile.TiffFile(path) as tf:
        start = int(tf.pages[0].dataoffsets[5])
    data = bytearray(path.read_bytes())
    for i in range(start + 2, start + 30):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _nan(path: Path) -> None:
    data = IMAGE.astype(np.float32)
    data[40, 50] = np.nan
    tifffile.imwrite(path, data)


def _inf(path: Path) -> None:
    data = IMAGE.astype(np.float32)
    data[3, 3] = np.inf
    tifffile.imwrite(path, data)


def _complex(path: Path) -> None:
    tifffile.imwrite(path, IMAGE.astype(np.complex64))


def _cmyk(path: Path) -> None:
    tifffile.imwrite(path, np.stack([IMAGE] * 4, -1), photometric="separated")


def _garbage(path: Path) -> None:
    path.write_bytes(b"II*\x00" + bytes(range(256)) * 4)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _zarr_missing_dataset(path: Path) -> None:
    write_zarr(path, IMAGE, axes="YX")
    shutil.rmtree(path / "0")


def _zarr_bad_multiscales(path: Path) -> None:
    write_zarr(path, IMAGE, axes="YX")
    _, save = ngff_attrs(zarr.open_group(str(path), mode="r+"))
    save([{"datasets": "zero"}])


def _zarr_bad_chunk(path: Path) -> None:
    write_zarr(path, IMAGE, axes="YX", chunks=(16, 16))
    for chunk in (p for p in (path / "0").rglob("*") if p.is_file() and not p.name.startswith((".", "zarr"))):
        chunk.write_bytes(b"not a chunk")


def _zarr_bad_json(path: Path) -> None:
    write_zarr(path, IMAGE, axes="YX")
    (path / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "banana"}))


#: name -> (file name, maker, words expected in the message)
BROKEN: dict[str, tuple[str, Callable[[Path], None], tuple[str, ...]]] = {
    "truncated-pages": ("bad.tif", _truncated_pages, ("truncated",)),
    "truncated-zlib": ("bad.tif", _truncated_zlib, ("truncated",)),
    "corrupt-strip": ("bad.tif", _corrupt_strip, ("cannot read pixels",)),
    "nan": ("bad.tif", _nan, ("NaN or infinite",)),
    "inf": ("bad.tif", _inf, ("NaN or infinite",)),
    "complex": ("bad.tif", _complex, ("complex",)),
    "cmyk": ("bad.tif", _cmyk, ("CMYK",)),
    "garbage": ("bad.tif", _garbage, ("bad.tif",)),
    "empty": ("bad.tif", _empty, ("bad.tif",)),
    "zarr-missing-dataset": ("bad.ome.zarr", _zarr_missing_dataset, ("missing",)),
    "zarr-bad-multiscales": ("bad.ome.zarr", _zarr_bad_multiscales, ("datasets",)),
    "zarr-bad-chunk": ("bad.ome.zarr", _zarr_bad_chunk, ("cannot read pixels",)),
    "zarr-bad-json": ("bad.ome.zarr", _zarr_bad_json, ("bad.ome.zarr",)),
}


@pytest.fixture
def good_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", IMAGE)
    return folder


def only_line(res, *needles: str) -> str:  # noqa: ANN001
    """Exit 2 and the whole output is one ``error:`` line containing every needle (no table, no traceback)."""
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    for needle in needles:
        assert needle in lines[0], res.output
    return lines[0]


def snapshot(*folders: Path) -> set[str]:
    """Every path under ``folders`` (to show that a command left nothing behind, under any name)."""
    return {str(p) for f in folders if f.exists() for p in f.rglob("*")}
