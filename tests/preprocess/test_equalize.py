"""Histogram equalisation."""

from __future__ import annotations

import numpy as np
import pytest

from pointseg_cli.preprocess.equalize import equalize


def test_equalize_range_and_order(rng: np.random.Generator) -> None:
    x = rng.gamma(2.0, size=(20, 20))
    out = equalize(x)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    flat_in, flat_out = x.ravel(), out.ravel()
    order = np.argsort(flat_in)
    assert (np.diff(flat_out[order]) >= -1e-7).all()
    assert (equalize(np.ones((4, 4))) == 0).all()


def test_map_matches_scikit_image_and_applies_alike_to_parts(rng: np.random.Generator) -> None:
    from skimage.exposure import equalize_hist

    from pointseg_cli.preprocess.equalize import apply_equalization, equalization_map

    x = rng.gamma(2.0, size=(6, 30, 30)).astype(np.float32)
    np.testing.assert_allclose(equalize(x), equalize_hist(x), atol=1e-6)
    emap = equalization_map(x)
    # the whole image's map applied slab by slab gives the whole image's equalisation
    parts = np.concatenate([apply_equalization(x[i : i + 2], emap) for i in range(0, 6, 2)])
    np.testing.assert_allclose(parts, equalize(x), atol=1e-7)


def test_channels_are_equalised_separately_and_must_match(rng: np.random.Generator) -> None:
    from pointseg_cli.errors import ConfigError
    from pointseg_cli.preprocess.equalize import apply_equalization, equalization_map

    x = np.stack([rng.gamma(2.0, size=(20, 20)), 100 + 5 * rng.normal(size=(20, 20))], axis=-1)
    out = equalize(x, channel_axis=-1)
    np.testing.assert_allclose(out[..., 1], equalize(x[..., 1]), atol=1e-7)
    emap = equalization_map(x, channel_axis=-1)
    with pytest.raises(ConfigError, match="2 channel"):
        apply_equalization(x[..., 0], emap)
