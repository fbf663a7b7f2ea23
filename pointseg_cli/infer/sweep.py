"""Passes 2 and 3 of the streamed instance step: each component segmented once, each plane written once.

After the component scan (:mod:`pointseg_cli.infer.stitch`) every connected component is known
by its class, first voxel, voxel count and bounding box. :func:`segment_and_write` then

1. gives every component of at most two voxels one id without looking at it (one or two
   neighbouring voxels cannot hold two separate markers);
2. segments each component whose box is taller than the sweep buffer on its own, in its box read
   from disk (provisional ids go into ``out``), and each component whose box holds more than
   ``max_voxels`` voxels in overlapping chunks (:func:`pointseg_cli.infer.bigcomp.segment_in_chunks`,
   approximate);
3. sweeps the planes once, holding the component numbers (and centre values) of a few planes:
   a component is segmented alone in its box grown by one voxel (a crop of the buffer) as soon as
   the buffer holds all of it (:func:`pointseg_cli.infer.watershed.segment_component`), and the
   planes no pending component reaches are written to ``out`` with their final ids (raster order
   of each object's first voxel, see :meth:`pointseg_cli.infer.bigcomp.ProvisionalIds.finalize`)
   and added to the object table.

Small components (noise specks, granules) are not worth a call each: they wait while the
buffer has room and are then segmented together, in runs of planes, in one pass over the box
they share (:func:`pointseg_cli.infer.watershed.segment_many`), when that box costs less than
their own boxes plus a fixed cost per call (:data:`OVERHEAD_VOXELS`). Both ways give the same
ids. A component that turns out to be one object (no marker, or one) costs no write at all: its
voxels take its id from a lookup table when the planes are written.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from pointseg_cli.infer.bigcomp import ProvisionalIds
from pointseg_cli.infer.objects import ObjectAccumulator, ObjectTable
from pointseg_cli.infer.stitch import ComponentIndex
from pointseg_cli.infer.watershed import neighbourhood, peak_radii, segment_component, segment_many
from pointseg_cli.progress import ProgressCallback

#: Components whose box (grown by one voxel) holds at most this many voxels are "small": they
#: are segmented together in one pass over the box they share when there are at least
#: :data:`BATCH_MIN` of them and that box (once per class) holds fewer voxels than their own boxes
#: plus :data:`OVERHEAD_VOXELS` each (the fixed cost of segmenting one component, in voxels).
SMALL_BOX = 4_096
BATCH_MIN = 16
OVERHEAD_VOXELS = 4_000


def _write_ids(ids: np.ndarray, origin: Any, cls: np.ndarray, prov: ProvisionalIds, target: np.ndarray,
               shape: tuple[int, ...]) -> None:
    """New provisional ids for the labels in ``ids`` (a box at ``origin``), written into ``target``."""
    idx = np.flatnonzero(ids)
    local, fi = np.unique(ids.ravel()[idx], return_index=True)
    pos = np.unravel_index(idx[fi], ids.shape)
    first = np.ravel_multi_index(tuple(q + int(o) for q, o in zip(pos, origin, strict=True)), shape)
    lut = np.zeros(int(local[-1]) + 1, np.uint32)
    lut[local] = prov.add(first, cls.ravel()[idx[fi]])
    sel = ids > 0
    target[sel] = lut[ids[sel]]


def _groups(small: np.ndarray, clo: np.ndarray, chi: np.ndarray, voxels: int) -> list[np.ndarray]:
    """Split components into runs along the first axis whose shared box holds about ``voxels`` voxels."""
    lo, hi = clo[small].min(axis=0), chi[small].max(axis=0)
    area = int(np.prod(hi[1:] - lo[1:]))
    planes = max(1, voxels // max(area, 1))
    key = (clo[small, 0] - lo[0]) // planes
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    return np.split(small[order], cuts)


def release_pages(arr: Any) -> None:
    """Let the OS drop the pages of a shared memory map read or written so far (bounded RSS)."""
    mm = getattr(arr, "_mmap", None)
    if mm is None or getattr(arr, "mode", "c") == "c" or not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        mm.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError, AttributeError):
        pass


class _Buffer:
    """Planes ``b0:b1`` of the component numbers, centre values and multi-object ids."""

    def __init__(self, capacity: int, rest: tuple[int, ...], comp_dtype: Any, values: bool) -> None:
        self.b0 = self.b1 = 0
        self.comp = np.zeros((capacity, *rest), comp_dtype)
        self.ids = np.zeros((capacity, *rest), np.uint32)
        self.values = np.zeros((capacity, *rest), np.float32) if values else None

    def append(self, comp: np.ndarray, values: np.ndarray | None) -> None:
        a, b = self.b1 - self.b0, self.b1 - self.b0 + comp.shape[0]
        self.comp[a:b] = comp
        self.ids[a:b] = 0
        if self.values is not None:
            self.values[a:b] = values
        self.b1 += comp.shape[0]

    def drop(self, upto: int) -> None:
        k, keep = upto - self.b0, self.b1 - upto
        if k <= 0:
            return
        for arr in (self.comp, self.ids, self.values):
            if arr is not None and keep:
                arr[:keep] = arr[k: k + keep].copy()
        self.b0 = upto


def segment_and_write(
    index: ComponentIndex,
    labels: Any,
    read_cls: Callable[[int, int], np.ndarray],
    centers: Any,
    out: Any,
    *,
    config: Any,
    image: Any | None,
    slab: int,
    tall_planes: int,
    progress: ProgressCallback | None = None,
) -> tuple[ObjectTable, int, tuple[int, ...]]:
    """Segment every component of ``index`` and write final ids to ``out`` plane block by plane block.

    Parameters
    ----------
    index : the component scan (its slabs are ``slab`` planes).
    labels, read_cls : the class map, and ``read_cls(a, b)`` returning its planes ``a:b``.
    centers : centre map (``centers`` only), sliceable like ``labels``.
    out : output array; every voxel is written.
    config : :class:`~pointseg_cli.infer.instances.InstanceConfig`.
    image : input image rows for the mean intensity, or ``None``.
    slab : planes read per step (the scan's slab).
    tall_planes : components whose box (grown by one voxel) spans more planes are segmented on
        their own, read from disk; the buffer holds at most ``tall_planes + slab`` planes.

    Returns
    -------
    table, n_instances, approximate component numbers.
    """
    from pointseg_cli.infer.bigcomp import segment_in_chunks

    shape, nd, n = index.shape, len(index.shape), index.n
    plane = int(np.prod(shape[1:], dtype=np.int64))
    structure = neighbourhood(nd, config.connectivity)
    radii = peak_radii(config, nd)
    want_values = config.method == "centers"
    prov = ProvisionalIds(out, shape)
    whole = np.zeros(n + 1, np.uint32)  # the id of each component that is one object (0: not, or not yet)
    on_disk = np.zeros(n + 1, bool)  # components whose ids were written to ``out`` before the sweep
    clo = np.maximum(index.lo - 1, 0)
    chi = np.minimum(index.hi + 1, np.asarray(shape))
    approximate: list[int] = []
    if config.method == "components":
        whole[1:] = prov.add(index.first, index.classes)
        sweep = np.zeros(0, np.int64)
    else:
        small = index.voxels <= 2
        whole[1:][small] = prov.add(index.first[small], index.classes[small])
        crop = np.prod(chi - clo, axis=1)
        huge = ~small & (crop > config.max_voxels)
        tall = ~small & ~huge & ((chi[:, 0] - clo[:, 0]) > tall_planes)
        sweep = np.flatnonzero(~small & ~huge & ~tall)
        for c in np.flatnonzero(huge):
            number = int(c) + 1
            segment_in_chunks_of(index, c, labels, read_cls, centers, prov, config, segment_in_chunks)
            on_disk[number] = True
            approximate.append(number)
        for c in np.flatnonzero(tall):
            box = tuple(slice(int(a), int(b)) for a, b in zip(clo[c], chi[c], strict=True))
            cls_w = np.asarray(labels[box])
            lab, _ = ndi.label(cls_w == index.classes[c], structure=structure)
            first = np.unravel_index(int(index.first[c]), shape)
            mask = lab == lab[tuple(int(f) - int(a) for f, a in zip(first, clo[c], strict=True))]
            del lab
            vals = np.asarray(centers[box], np.float32) if want_values else None
            ids, k = segment_component(mask, vals, config=config, radii=radii, structure=structure)
            if ids is None:
                whole[c + 1] = prov.add(index.first[c: c + 1], index.classes[c: c + 1])[0]
            else:
                prov.write(tuple(int(v) for v in clo[c]), ids, k, np.where(mask, index.classes[c], 0))
                on_disk[c + 1] = True
            release_pages(labels)
            release_pages(centers)
            release_pages(out)

    channels = 0 if image is None else (1 if len(image.shape) == nd else int(image.shape[-1]))
    acc = ObjectAccumulator(0, nd, channels=channels)
    any_on_disk = bool(on_disk.any())

    def flush(buf: _Buffer, upto: int) -> None:
        a, b = buf.b0, upto
        if b <= a:
            return
        comp, ids = buf.comp[: b - a], buf.ids[: b - a]
        pid = np.where(ids > 0, ids, whole[comp])
        if any_on_disk:
            sel = on_disk[comp]
            if sel.any():
                pid[sel] = np.asarray(out[a:b])[sel]
        final = prov.finalize(b * plane)[pid]
        out[a:b] = final
        acc.grow(prov.n_final)
        acc.add(final, a, None if image is None else np.asarray(image[a:b]))
        buf.drop(b)
        for arr in (out, labels, centers):
            release_pages(arr)
        if progress is not None:
            progress("instances", b, shape[0])

    by_end = sweep[np.argsort(chi[sweep, 0], kind="stable")]
    crop_size = np.prod(chi - clo, axis=1)
    classes_of = np.concatenate([[0], index.classes]).astype(np.uint8 if index.classes.max(initial=0) < 256
                                                            else np.int64)
    group_voxels = max(1, config.max_voxels // 8)  # a pass over a shared box needs ~100 bytes per voxel
    picked = np.zeros(n + 1, bool)
    done = np.zeros(n, bool)
    capacity = min(tall_planes + slab, shape[0])
    buf = _Buffer(capacity, tuple(shape[1:]), index.lut.dtype, want_values)
    waiting = np.zeros(0, np.int64)
    pe = ps = 0
    for a in range(0, shape[0], slab):
        b = min(a + slab, shape[0])
        comp = index.components_in(read_cls, a, b)
        buf.append(comp, np.asarray(centers[a:b], np.float32) if want_values else None)
        start = pe
        while pe < by_end.size and chi[by_end[pe], 0] <= b:
            pe += 1
        ready = by_end[start:pe]
        is_small = crop_size[ready] <= SMALL_BOX
        waiting = np.concatenate([waiting, ready[is_small]])
        ready = ready[~is_small]
        done[ready] = True
        # small components wait (their planes stay in the buffer) until the next step would not fit
        if waiting.size and (b == shape[0] or b + slab - int(clo[waiting, 0].min()) > capacity):
            done[waiting] = True
            for small in _groups(waiting, clo, chi, group_voxels):
                lo, hi = clo[small].min(axis=0), chi[small].max(axis=0)
                shared = float(np.prod(hi - lo)) * np.unique(index.classes[small]).size
                if small.size < BATCH_MIN or shared > float(crop_size[small].sum()) + small.size * OVERHEAD_VOXELS:
                    ready = np.concatenate([ready, small])
                    continue
                # many small components: one pass over the box they share
                lo[0] -= buf.b0
                hi[0] -= buf.b0
                region = tuple(slice(int(u), int(w)) for u, w in zip(lo, hi, strict=True))
                picked[small + 1] = True
                comp_r = buf.comp[region]
                comp_sel = np.where(picked[comp_r], comp_r, 0)
                picked[small + 1] = False
                vals = buf.values[region] if buf.values is not None else None
                ids, numbers, counts = segment_many(comp_sel, classes_of, vals, config=config, radii=radii,
                                                    structure=structure)
                one = numbers[counts <= 1]
                whole[one] = prov.add(index.first[one - 1], index.classes[one - 1])
                if (counts >= 2).any():
                    origin = np.asarray(lo) + np.eye(nd, dtype=np.int64)[0] * buf.b0
                    _write_ids(ids, origin, classes_of[comp_sel], prov, buf.ids[region], shape)
                del comp_sel, ids
            waiting = waiting[:0]
        for c in ready:
            c = int(c)
            region = (slice(int(clo[c, 0]) - buf.b0, int(chi[c, 0]) - buf.b0),
                      *(slice(int(lo), int(hi)) for lo, hi in zip(clo[c, 1:], chi[c, 1:], strict=True)))
            mask = buf.comp[region] == c + 1
            vals = buf.values[region] if buf.values is not None else None
            ids, k = segment_component(mask, vals, config=config, radii=radii, structure=structure)
            if ids is None:
                whole[c + 1] = prov.add(index.first[c: c + 1], index.classes[c: c + 1])[0]
            else:
                _write_ids(ids, clo[c], np.where(mask, index.classes[c], 0), prov, buf.ids[region], shape)
        while ps < sweep.size and done[sweep[ps]]:
            ps += 1
        keep_from = b if (ps == sweep.size or b == shape[0]) else min(int(clo[sweep[ps], 0]), b)
        flush(buf, keep_from)
    acc.grow(prov.n_final)
    return acc.table(prov.final_classes(), spacing=config.spacing, with_intensity=image is not None), \
        prov.n_final, tuple(approximate)


def segment_in_chunks_of(index: ComponentIndex, c: int, labels: Any, read_cls: Any, centers: Any,
                         prov: ProvisionalIds, config: Any, run: Any) -> None:
    """Component ``c`` (0-based), too large for one window, through :func:`segment_in_chunks`."""
    import logging

    shape, nd = index.shape, len(index.shape)
    number = int(c) + 1
    lo = tuple(int(v) for v in np.maximum(index.lo[c] - 1, 0))
    hi = tuple(int(v) for v in np.minimum(index.hi[c] + 1, shape))
    region = tuple(slice(a, b) for a, b in zip(lo[1:], hi[1:], strict=True))
    want_values = config.method == "centers"

    def read_window(a: int, b: int, region: tuple[slice, ...] = region) -> tuple[Any, Any]:
        comp_all = index.components_in(read_cls, a, b, region=region)
        vals = np.array(centers[(slice(a, b), *region)], np.float32) if want_values else None
        release_pages(centers)
        return comp_all, vals

    plane = int(np.prod([b - a for a, b in zip(lo[1:], hi[1:], strict=True)], dtype=np.int64))
    halo = max(peak_radii(config, nd)[0] + 1, 4)
    # a chunk's window needs about twice the memory per voxel of a component box: half the budget
    core = max(halo, config.max_voxels // 2 // max(plane, 1) - 2 * halo)
    logging.getLogger("pointseg_cli.infer.instances").warning(
        "object component %d (class %d, bounding box %s to %s, %d voxels) is larger than max_voxels=%d: "
        "segmented in chunks of %d planes with %d-plane halos; its instance ids may differ from a "
        "whole-volume run near chunk borders",
        number, int(index.classes[c]), lo, hi, int(index.voxels[c]), config.max_voxels, core, halo,
    )
    def release() -> None:
        for arr in (prov.out, labels, centers):
            release_pages(arr)

    run(read_window, prov, lo=lo, hi=hi, number=number, cls_id=int(index.classes[c]), core=core, halo=halo,
        config=config, release=release)
