"""Histogram equalisation."""

from __future__ import annotations

import numpy as np

from pointseg_cli.preprocess.equalize import equalize


def test_equalize_range_and_order(rng: np.random.Generator) -> None:
    x = rng.gamma(2.0, size=(20, 20))
    out = equalize(x)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    flat_in, flat_out = x.ravel(), out.ravel()
    order = np.argsort(flat_in)
    assert (np.diff(flat_out[order]) >= -1e-7).all()
    assert (equalize(np.ones((4, 4))) == 0).all()
