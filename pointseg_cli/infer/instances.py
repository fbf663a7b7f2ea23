"""Object instances from a class map (and an optional object-centre map), exact when streamed.

Methods (:data:`INSTANCE_METHODS`)
    ``centers``
        Markers are the peaks of the centre map inside each object class: voxels whose centre
        value exceeds ``threshold`` and is the largest among the voxels *of the same connected
        component* within ``min_distance`` (a plateau of equal peak values is one marker). A
        seeded watershed then grows the markers over the component, highest centre values
        first (scikit-image's algorithm, run by a compiled kernel; see
        :mod:`pointseg_cli.infer._ws_kernels`).
    ``distance``
        The same, with the Euclidean distance to the nearest voxel of another class (voxel
        spacing respected) in place of the centre map: the classic distance-transform watershed,
        a baseline that needs no centre output.
    ``components``
        Connected components of each class.
    ``none``
        No instances.
    A component without any marker (for example an object whose centre value never exceeds the
    threshold) becomes one instance.

Why streaming is exact
    Every step is confined to one connected component of one class: peaks compare a voxel only
    with voxels of its own component, the watershed cannot flood through voxels outside the
    mask, and the distance of a voxel to the nearest other-class voxel is attained within the
    component's bounding box grown by one voxel. Watershed ties are broken by raster position
    (the flooding order is the rank of ``(-value, raster index)``), which is the same in any
    crop that holds the whole component. So segmenting each component alone in its bounding
    box grown by one voxel gives exactly what the whole volume gives, and ids are numbered 1..N
    in raster order of each object's first voxel, so streamed and whole-volume results are
    identical arrays. (:mod:`pointseg_cli.infer.watershed_reference` computes the same result
    over whole arrays at once; the tests compare the two.)

    :func:`instances_from_maps` reads the maps a few planes at a time: (1) connected components
    slab by slab, joined across slab faces (:mod:`pointseg_cli.infer.stitch`); (2) one sweep
    over the planes that segments each component alone as soon as it has been read whole and
    writes every plane once, with final ids, while accumulating the object table
    (:mod:`pointseg_cli.infer.sweep`). Components of one or two voxels are one object each
    without any work, and a component that has at most one marker is written from a lookup
    table. Only a single component whose box holds more than ``max_voxels`` voxels is handled
    approximately (see :mod:`pointseg_cli.infer.bigcomp`); a warning names it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pointseg_cli.errors import ConfigError, InputError, check_choice
from pointseg_cli.infer.objects import ObjectAccumulator, ObjectTable
from pointseg_cli.infer.stitch import scan_components
from pointseg_cli.infer.sweep import release_pages, segment_and_write
from pointseg_cli.infer.watershed import neighbourhood
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

INSTANCE_METHODS = ("centers", "distance", "components", "none")
#: Methods that work without a centre map.
BASELINE_METHODS = ("distance", "components", "none")


@dataclass(frozen=True)
class InstanceConfig:
    """How instances are formed.

    Attributes
    ----------
    method : one of :data:`INSTANCE_METHODS`.
    spacing : voxel size per spatial axis (any unit), or ``None`` for isotropic pixels.
    min_distance : a peak is the largest value of its component within this distance, in units
        of the finest voxel spacing (per axis ``floor(min_distance * min(spacing) / spacing)``
        voxels, so a coarse Z axis is searched over fewer planes).
    threshold : smallest value a peak may have: the centre-map value for ``centers`` (default
        0.3), the distance in spacing units for ``distance`` (default 0: any peak).
    connectivity : 1 (faces) up to ndim (faces, edges and corners), for components and
        watershed alike.
    max_voxels : the largest component box segmented in one piece (larger ones are segmented
        in chunks, approximately) and the size of the plane buffer of the streamed sweep; the
        instance step needs up to about 50 bytes per voxel of it.
    """

    method: str = "centers"
    spacing: tuple[float, ...] | None = None
    min_distance: float = 3.0
    threshold: float | None = None
    connectivity: int = 1
    max_voxels: int = 16_000_000

    def __post_init__(self) -> None:
        check_choice("instance method", self.method, INSTANCE_METHODS)
        if self.spacing is not None:
            sp = tuple(float(s) for s in self.spacing)
            if not all(np.isfinite(s) and s > 0 for s in sp):
                raise ConfigError(f"spacing must hold positive numbers; got {self.spacing}")
            object.__setattr__(self, "spacing", sp)
        if not self.min_distance >= 0:
            raise ConfigError(f"min_distance must be >= 0; got {self.min_distance}")
        if self.connectivity < 1:
            raise ConfigError(f"connectivity must be >= 1; got {self.connectivity}")
        if self.max_voxels < 1:
            raise ConfigError(f"max_voxels must be >= 1; got {self.max_voxels}")

    @property
    def peak_threshold(self) -> float:
        if self.threshold is not None:
            return float(self.threshold)
        return 0.3 if self.method == "centers" else 0.0


@dataclass(frozen=True)
class InstanceResult:
    """What :func:`instances_from_maps` produced.

    Attributes
    ----------
    n_instances : ids 1..n_instances were written.
    n_components : connected components of the class map (all classes).
    table : one row per instance.
    approximate : component numbers that were too large for one window and were segmented in
        overlapping chunks (ids there may differ from a whole-volume run).
    """

    method: str
    n_instances: int
    n_components: int
    table: ObjectTable
    approximate: tuple[int, ...] = field(default=())


def renumber_by_first_voxel(ids: np.ndarray) -> np.ndarray:
    """Renumber non-zero ids 1..N in raster order of their first voxel (uint32)."""
    flat = ids.ravel()
    idx = np.flatnonzero(flat)
    present, first = np.unique(flat[idx], return_index=True)
    lut = np.zeros(int(present[-1]) + 1 if present.size else 1, np.uint32)
    lut[present[np.argsort(first)]] = np.arange(1, present.size + 1, dtype=np.uint32)
    return lut[ids]


def _check_maps(shape: tuple[int, ...], centers: Any, cfg: InstanceConfig) -> None:
    if len(shape) not in (2, 3):
        raise InputError(f"class map must be (Y, X) or (Z, Y, X); got shape {shape}")
    if cfg.method == "centers" and centers is None:
        raise ConfigError(
            f"instance method 'centers' needs a centre map; without one use {', '.join(BASELINE_METHODS)}"
        )
    if centers is not None and tuple(centers.shape) != tuple(shape):
        raise InputError(f"centre map has shape {tuple(centers.shape)} but the class map has {tuple(shape)}")
    if cfg.spacing is not None and len(cfg.spacing) != len(shape):
        raise ConfigError(f"spacing has {len(cfg.spacing)} values but the class map has {len(shape)} axes")


def label_instances(class_map: np.ndarray, centers: np.ndarray | None = None, *,
                    config: InstanceConfig | None = None) -> np.ndarray:
    """Instance ids of a class map held in memory.

    The streamed path (:func:`instances_from_maps`) on the in-memory arrays with a window as
    large as the array, so no component is ever approximated; equal, voxel for voxel, to the
    plain whole-array computation of :func:`pointseg_cli.infer.watershed_reference.reference_instances`.

    Parameters
    ----------
    class_map : ``(Z, Y, X)`` or ``(Y, X)`` integer class ids, 0 = background.
    centers : centre map, same shape (higher = closer to an object centre); ``centers`` only.
    config : method and settings (default :class:`InstanceConfig`).

    Returns
    -------
    numpy.ndarray, uint32, same shape; ids 1..N in raster order of each object's first voxel.
    """
    cfg = config or InstanceConfig()
    cls = np.asarray(class_map)
    _check_maps(cls.shape, centers, cfg)
    out = np.zeros(cls.shape, np.uint32)
    if cfg.method == "none":
        return out
    whole = replace(cfg, max_voxels=max(cfg.max_voxels, 2 * int(cls.size)))
    instances_from_maps(cls, None if centers is None else np.asarray(centers), out, config=whole)
    return out


# ------------------------------------------------------------------------------------------
# streaming


def _empty_table(ndim: int, spacing: tuple[float, ...] | None) -> ObjectTable:
    return ObjectAccumulator(0, ndim).table(np.zeros(0, np.int64), spacing=spacing)


def instances_from_maps(
    labels: Any,
    centers: Any | None,
    out: Any,
    *,
    config: InstanceConfig | None = None,
    image: Any | None = None,
    slab: int | None = None,
    progress: ProgressCallback | None = None,
) -> InstanceResult:
    """Instance ids of an on-disk class map, written slab by slab to ``out``.

    Equal to :func:`label_instances` of the whole arrays, voxel for voxel (see the module
    docstring), except in components reported in :attr:`InstanceResult.approximate`.

    Parameters
    ----------
    labels : class map ``(Z, Y, X)`` or ``(Y, X)``, any array that can be sliced along the first
        axis (numpy array or memmap, tifffile memmap, zarr array); 0 = background.
    centers : centre map of the same shape, or ``None`` (required by ``centers``).
    out : writable array of the same shape (uint32 recommended); every voxel is overwritten.
    config : method and settings (default :class:`InstanceConfig`).
    image : input image for the mean intensity, same spatial shape (channel last if any).
    slab : planes per read for the component scan and the sweep (default: a quarter of the buffer,
        ``max_voxels`` voxels of whole planes).
    progress : optional ``progress(task, done, total)`` callback.

    Returns
    -------
    InstanceResult
    """
    cfg = config or InstanceConfig()
    shape = tuple(int(s) for s in labels.shape)
    _check_maps(shape, centers, cfg)
    if tuple(out.shape) != shape:
        raise InputError(f"output array has shape {tuple(out.shape)} but the class map has {shape}")
    if image is not None and tuple(image.shape[: len(shape)]) != shape:
        raise InputError(f"image has shape {tuple(image.shape)} but the class map has {shape}")
    nd = len(shape)
    if cfg.method == "none":
        return InstanceResult(method="none", n_instances=0, n_components=0, table=_empty_table(nd, cfg.spacing))
    plane = int(np.prod(shape[1:], dtype=np.int64))
    depth = max(3, cfg.max_voxels // plane)
    slab = max(1, int(slab) if slab else depth // 4)
    tall = max(1, depth - slab)

    def read_cls(a: int, b: int) -> np.ndarray:
        block = np.asarray(labels[a:b])
        if isinstance(labels, np.memmap):
            block = block.copy()
            release_pages(labels)
        return block

    index = scan_components(read_cls, shape, slab=slab, structure=neighbourhood(nd, cfg.connectivity))
    table, n, approximate = segment_and_write(index, labels, read_cls, centers, out, config=cfg, image=image,
                                              slab=slab, tall_planes=tall, progress=progress)
    return InstanceResult(method=cfg.method, n_instances=n, n_components=index.n, table=table,
                          approximate=approximate)
