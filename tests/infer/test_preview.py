"""Preview rendering: outlines, instance colours, orthogonal views."""

from __future__ import annotations

import numpy as np

from pointseg_cli.infer.preview import Section, instance_colours, orthogonal_views, outlines, overlay


def test_outlines_mark_object_rims_only():
    ids = np.zeros((7, 7), np.uint8)
    ids[1:6, 1:6] = 1
    rim = outlines(ids)
    assert rim[1, 1:6].all() and rim[1:6, 1].all() and not rim[3, 3] and not rim[0].any()


def test_instances_get_their_own_colours():
    plane = np.zeros((10, 20))
    labels = np.zeros((10, 20), np.uint8)
    labels[2:8, 2:18] = 1  # one class blob made of two touching objects
    inst = np.zeros((10, 20), np.uint32)
    inst[2:8, 2:10], inst[2:8, 10:18] = 5, 9
    by_class = overlay(plane, labels)
    by_object = overlay(plane, labels, instances=inst)
    assert (by_class[3, 9] == by_class[3, 10]).all()  # same class colour across the touching edge
    c5, c9 = instance_colours(np.array([5, 9]))
    assert not np.allclose(c5, c9)
    assert (by_object[2, 5] == np.round(c5)).all() and (by_object[2, 14] == np.round(c9)).all()
    assert (by_object[4, 9] == np.round(c5)).all()  # the boundary between the two objects is drawn


def test_orthogonal_views_layout_and_z_stretch():
    z, y, x = 6, 20, 30
    sec = lambda a, b: Section(np.zeros((a, b)), np.zeros((a, b), np.uint8))  # noqa: E731
    rgb = orthogonal_views(sec(y, x), sec(z, x), sec(z, y), z_scale=3.0, cut=(3, 10, 15), gap=4)
    assert rgb.shape == (y + 4 + 18, x + 4 + 18, 3) and rgb.dtype == np.uint8
    assert (rgb[10, :x] > 0).all()  # the cut line through the XY panel
