"""The demo kinds: one :class:`KindSpec` per generator, and size parsing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pointseg_cli.demo import gray2d, he, nuclei3d, sim
from pointseg_cli.demo._common import DemoSample
from pointseg_cli.errors import ConfigError, check_choice

DIFFICULTIES = nuclei3d.DIFFICULTIES
_MAX_SIDE = 4096


@dataclass(frozen=True)
class KindSpec:
    """How to make and name the samples of one demo kind.

    Attributes
    ----------
    name : str
        The ``--kind`` value.
    prefix : str
        File stems are ``<prefix>_000``, ``<prefix>_001``, ...
    make : callable
        ``make(shape, *, seed, difficulty, name) -> DemoSample``.
    class_names : tuple of str
        Object classes in id order (what ``classes.txt`` lists).
    default_shape, min_shape : tuple of int
        Spatial shape used without ``--size`` and the smallest one accepted.
    writes_points : bool
        Whether a ``points.csv`` with one click per object is written beside the images.
    """

    name: str
    prefix: str
    make: Callable[..., DemoSample]
    class_names: tuple[str, ...]
    default_shape: tuple[int, ...]
    min_shape: tuple[int, ...]
    writes_points: bool = False


SPECS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec("3d-nuclei", "nuclei3d", nuclei3d.make_nuclei_volume, nuclei3d.NUCLEI_CLASSES,
                 nuclei3d.DEFAULT_SHAPE, nuclei3d.MIN_SHAPE),
        KindSpec("2d-he", "he", he.make_he_tile, he.HE_CLASSES, he.DEFAULT_SHAPE, he.MIN_SHAPE),
        KindSpec("2d-gray", "gray", gray2d.make_gray_nuclei, gray2d.GRAY_CLASSES, gray2d.DEFAULT_SHAPE,
                 gray2d.MIN_SHAPE, writes_points=True),
        KindSpec("3d-sim", "sim", sim.make_sim_volume, sim.SIM_CLASSES, sim.DEFAULT_SHAPE, sim.MIN_SHAPE,
                 writes_points=True),
    )
}
KINDS = tuple(SPECS)
DEFAULT_SIZE = {name: spec.default_shape for name, spec in SPECS.items()}


def get_kind(kind: str) -> KindSpec:
    """The spec of ``kind``; :class:`ConfigError` listing the kinds if it is unknown."""
    check_choice("kind", kind, KINDS)
    return SPECS[kind]


def parse_size(text: str | int | Sequence[int] | None, *, kind: str) -> tuple[int, ...]:
    """Parse and validate a size such as ``"64,256,256"`` / ``"64x256x256"`` for ``kind``.

    ``None`` gives the default size; a single number is used for every axis.
    """
    spec = get_kind(kind)
    ndim = len(spec.default_shape)
    if text is None:
        return spec.default_shape
    if isinstance(text, (int, np.integer)):
        text = [int(text)]
    if isinstance(text, str):
        parts = [p for p in text.replace("x", ",").replace("X", ",").split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(
                f"size must be {ndim} integers like {'x'.join(map(str, spec.default_shape))}; got {text!r}"
            ) from None
    else:
        values = [int(v) for v in text]
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim:
        raise ConfigError(f"size for {kind} must have {ndim} values (got {len(values)}: {values})")
    low = spec.min_shape
    if any(v < m or v > _MAX_SIDE for v, m in zip(values, low, strict=True)):
        raise ConfigError(
            f"size for {kind} must be between {'x'.join(map(str, low))} and {_MAX_SIDE} per axis; got "
            f"{'x'.join(map(str, values))}"
        )
    return tuple(values)
