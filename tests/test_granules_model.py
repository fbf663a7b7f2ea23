"""The registered granules-3d-sim model: registered, not a default, and usable end to end."""

from __future__ import annotations

import numpy as np

from pointseg_cli.cli.app import app
from pointseg_cli.demo import SIM_CLASSES
from pointseg_cli.io.images import read_image
from pointseg_cli.model.metadata import read_model_metadata
from pointseg_cli.zoo import get_entry, read_defaults, resolve_model


def test_registered_embedded_and_not_a_default() -> None:
    entry = get_entry("granules-3d-sim")
    assert (entry.kind, entry.embedded) == ("3d", True)
    assert "granules-3d-sim" not in read_defaults().values()
    meta = read_model_metadata(resolve_model("granules-3d-sim", kind="3d"))
    assert meta.classes == tuple(SIM_CLASSES) and meta.ndim == 3 and meta.channels == 1
    assert meta.normalization["equalize"] is True  # segment equalises like the training did
    assert meta.has_centers  # segment's default instances use the centre map, not the watershed fallback


def test_segments_a_sim_volume_by_name(runner, tmp_path) -> None:
    res = runner.invoke(app, ["demo-data", str(tmp_path / "sim"), "--kind", "3d-sim", "--n", "1",
                              "--size", "16x96x96", "--seed", "3"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["segment", str(tmp_path / "sim" / "sim_000.tif"), "--model", "granules-3d-sim",
                              "--out-dir", str(tmp_path / "seg"), "--instances", "none"])
    assert res.exit_code == 0, res.output
    labels = read_image(tmp_path / "seg" / "sim_000.labels.tif")
    truth = read_image(tmp_path / "sim" / "sim_000.classes.tif")
    assert labels.shape == truth.shape
    lipo = truth == 1  # the bright, most frequent class: most of it must be found
    assert np.mean(labels[lipo] == 1) > 0.5
