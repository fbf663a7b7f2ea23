"""Training data: match points to images, validate, normalise, build objectness and label targets.

Everything per image is computed once here (numpy, objectness cached in the run dir); the batch
sampler in :mod:`pointseg_cli.train.sampler` then only slices crops and augments them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointseg_cli.errors import ImageFormatError, InputError, PointsError
from pointseg_cli.io.images import ImageInfo, find_images, image_stem, read_image, read_info
from pointseg_cli.io.masks import find_mask, mask_stem
from pointseg_cli.io.points import PointTable
from pointseg_cli.preprocess.normalize import Normalization, normalize_image
from pointseg_cli.preprocess.stain import normalize_to_reference
from pointseg_cli.progress import ProgressCallback, noop_progress
from pointseg_cli.train.config import TrainConfig
from pointseg_cli.train.targets import gaussian_soft_labels, grown_objects, mask_center_target, point_center_target

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ImageData:
    """One image ready for cropping.

    Attributes
    ----------
    stem : str
    image : np.ndarray ``(C, *spatial)`` float32, normalised
    points : np.ndarray ``(P, ndim)`` int64 pixel coordinates
    classes : np.ndarray ``(P,)`` int32 class ids (1..K)
    background : np.ndarray ``(*spatial)`` bool boundary background, or None
    soft : np.ndarray ``(K + 1, *spatial)`` float16 soft labels, or None
    mask : np.ndarray ``(*spatial)`` int16 dense class ids (full supervision), or None
    val_mask : np.ndarray ``(*spatial)`` int16 dense class ids for validation mIoU, or None
    center : np.ndarray ``(2, *spatial)`` float16 centre target and its weight, or None
        (see :mod:`pointseg_cli.train.targets`; only with the ``center`` loss)
    """

    stem: str
    image: np.ndarray
    points: np.ndarray
    classes: np.ndarray
    background: np.ndarray | None = None
    soft: np.ndarray | None = None
    mask: np.ndarray | None = None
    val_mask: np.ndarray | None = None
    center: np.ndarray | None = None

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape[1:])


@dataclass(frozen=True)
class TrainingData:
    """Prepared train and validation images plus what the config needs from them."""

    train: list[ImageData]
    val: list[ImageData]
    ndim: int
    channels: int
    classes: tuple[str, ...]


def scan_images(
    points: PointTable, images: Sequence[str | Path], *, axes: str | None = None
) -> tuple[dict[str, Path], dict[str, ImageInfo]]:
    """Find the images, read their metadata, check they agree with each other and with the points.

    Raises
    ------
    PointsError
        No points, or points refer to images that are not among ``images``.
    ImageFormatError
        Images differ in dimensionality or channel count.
    """
    if len(points) == 0:
        raise PointsError("the points file holds no points; expected at least one point per training image")
    paths = {image_stem(p): Path(p) for p in find_images(list(images))}
    infos = {stem: read_info(p, axes=axes) for stem, p in paths.items()}
    missing = sorted(set(points.stems) - set(paths))
    if missing:
        raise PointsError(
            f"points refer to {len(missing)} image(s) not found among the {len(paths)} images given: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    used = {s: infos[s] for s in points.stems}
    kinds = {(i.ndim, i.channels) for i in used.values()}
    if len(kinds) != 1:
        desc = ", ".join(f"'{s}' {i.ndim}-D with {i.channels} channel(s)" for s, i in list(used.items())[:4])
        raise ImageFormatError(f"training images must share dimensionality and channel count; found {desc}")
    for stem, info in used.items():
        pix = points.for_image(stem).pixel_coords(info.ndim)
        bad = np.any((pix < 0) | (pix >= np.array(info.spatial_shape)), axis=1)
        if bad.any():
            raise PointsError(
                f"{int(bad.sum())} point(s) of image '{stem}' lie outside its {info.spatial_shape} pixels, "
                f"e.g. at {tuple(int(v) for v in pix[bad][0])}"
            )
    return paths, infos


def split_stems(stems: Sequence[str], config: TrainConfig) -> tuple[list[str], list[str]]:
    """Image-level train/validation split: ``config.val_images``, else a seeded ``val_fraction``."""
    stems = sorted(stems)
    if config.val_images:
        unknown = sorted(set(config.val_images) - set(stems))
        if unknown:
            raise InputError(f"validation images {unknown} have no points; images with points: {stems[:8]}")
        val = [s for s in stems if s in config.val_images]
    else:
        n_val = int(round(config.val_fraction * len(stems)))
        if config.val_fraction > 0 and len(stems) >= 2:
            n_val = min(max(n_val, 1), len(stems) - 1)
        else:
            n_val = 0
        order = np.random.default_rng(config.seed).permutation(len(stems))
        val = sorted(stems[i] for i in order[:n_val])
    train = [s for s in stems if s not in val]
    if not train:
        raise InputError(f"no training images left after taking {len(val)} validation image(s)")
    return train, val


def class_map_beside(mask_path: Path) -> Path | None:
    """``<stem>.classes.tif`` beside an instance mask (the layout ``pointseg demo-data`` writes), if any."""
    path = mask_path.with_name(f"{mask_stem(mask_path)}.classes.tif")
    return path if path.is_file() and path != mask_path else None


def read_class_mask(path: Path, shape: tuple[int, ...], n_classes: int, *, axes: str | None = None) -> np.ndarray:
    """Read a mask as class ids ``(*shape)`` int16.

    With one object class any non-zero value (instance ids included) is the object; with several,
    values must already be class ids ``0..K``, unless a class map ``<stem>.classes.tif`` sits beside
    the mask: then the mask holds instance ids and the class ids come from that map.
    """
    beside = class_map_beside(path) if n_classes > 1 else None
    path = beside or path
    data = np.asarray(read_image(path, axes=axes))
    data = np.squeeze(data, axis=-1) if data.ndim == len(shape) + 1 and data.shape[-1] == 1 else data
    if data.shape != shape:
        raise InputError(f"mask '{path.name}' has shape {data.shape}; its image has spatial shape {shape}")
    if n_classes == 1:
        return (data != 0).astype(np.int16)
    if data.min() < 0 or data.max() > n_classes:
        raise InputError(
            f"mask '{path.name}' has values {int(data.min())}..{int(data.max())}; expected class ids 0..{n_classes}"
        )
    return data.astype(np.int16)


def _cache_key(
    config: TrainConfig, pts: np.ndarray, cls: np.ndarray, shape: tuple[int, ...], spacing: tuple[float, ...] | None
) -> str:
    h = hashlib.sha1()
    fields = (
        config.objectness, config.w, config.objectness_mode, config.objectness_cost, config.connectivity,
        config.gauss_sigma,
    )
    if config.diffusion_iterations or spacing is not None:  # keys of runs without them stay as they were
        fields += (config.diffusion_iterations, config.diffusion_kappa, spacing)
    h.update(repr((fields, sorted(config.normalization.items()), shape, len(config.classes))).encode())
    h.update(np.ascontiguousarray(pts).tobytes())
    h.update(np.ascontiguousarray(cls).tobytes())
    return h.hexdigest()[:16]


def _objectness(
    config: TrainConfig,
    raw: np.ndarray,
    table: PointTable,
    pts: np.ndarray,
    cls: np.ndarray,
    cache: Path | None,
    spacing: tuple[float, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(soft labels float16 (K+1, *S), background bool (*S), grown objects int32 (*S)) for one image.

    Read from the cache when possible; ``grown`` is :func:`~pointseg_cli.train.targets.grown_objects`
    of the region growing (the extent of each clicked object, for the centre target).
    ``spacing``: the image's voxel size, used by the growing (None: every step costs the same).
    """
    shape = tuple(raw.shape[: config.ndim])
    k = len(config.classes)
    path = None
    if cache is not None:
        path = cache / f"{table.image[0]}.{_cache_key(config, pts, cls, shape, spacing)}.npz"
        if path.is_file():
            with np.load(path) as z:
                if "grown" in z.files:
                    return z["soft"], z["background"], z["grown"]
    if config.objectness == "dir":
        soft, bg = _read_objectness_dir(Path(str(config.objectness_dir)), str(table.image[0]), shape, k)
        regions = _read_regions_dir(Path(str(config.objectness_dir)), str(table.image[0]), shape, pts)
        grown = grown_objects(regions, 1.0 - soft[0].astype(np.float32), bg)
    else:
        from pointseg_cli.objectness.pipeline import ObjectnessConfig, objectness_for_image

        ocfg = ObjectnessConfig(
            w=config.w,
            mode=config.objectness_mode,
            cost=config.objectness_cost,
            connectivity=config.connectivity,
            spacing=spacing,
            normalization=Normalization.from_dict(config.normalization),
            diffusion_iterations=config.diffusion_iterations,
            diffusion_kappa=config.diffusion_kappa,
        )
        res = objectness_for_image(raw, table, config=ocfg, channel_axis=-1 if raw.ndim > config.ndim else None)
        bg = res.background
        grown = grown_objects(res.regions, res.objectness, bg)
        if config.objectness == "gauss":
            soft = gaussian_soft_labels(shape, pts, cls, n_classes=k, sigma=config.gauss_sigma)
        else:
            soft = res.soft_labels(k)
    soft = soft.astype(np.float16)
    bg = bg.astype(bool)
    if path is not None:
        from pointseg_cli.io.images import atomic_output

        with atomic_output(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, soft=soft, background=bg, grown=grown)
    return soft, bg, grown


def _read_regions_dir(folder: Path, stem: str, shape: tuple[int, ...], pts: np.ndarray) -> np.ndarray:
    """``<stem>.regions.tif`` from an objectness folder, else each pixel's nearest click (Voronoi)."""
    path = folder / f"{stem}.regions.tif"
    if path.is_file():
        import tifffile

        regions = tifffile.imread(path)
        if regions.shape == shape:
            return regions
        log.warning("ignoring %s: shape %s, expected %s", path.name, regions.shape, shape)
    from scipy import ndimage as ndi

    seeds = np.zeros(shape, np.int32)
    seeds[tuple(np.asarray(pts, np.int64).T)] = np.arange(1, len(pts) + 1)
    idx = ndi.distance_transform_edt(seeds == 0, return_distances=False, return_indices=True)
    return seeds[tuple(idx)]


def read_instance_mask(path: Path, shape: tuple[int, ...], n_classes: int, *, axes: str | None = None) -> np.ndarray:
    """Instances ``(*shape)`` int32 of a mask: its ids when it holds instance ids (one class and more
    than one non-zero value, or several classes with their class map ``<stem>.classes.tif`` beside
    it), else the connected components of each class."""
    from scipy import ndimage as ndi

    data = np.asarray(read_image(path, axes=axes))
    data = np.squeeze(data, axis=-1) if data.ndim == len(shape) + 1 and data.shape[-1] == 1 else data
    if (n_classes == 1 and len(np.unique(data)) > 2) or (n_classes > 1 and class_map_beside(path) is not None):
        return data.astype(np.int32)
    out = np.zeros(data.shape, np.int32)
    for c in np.unique(data[data > 0]):
        lab, n = ndi.label(data == c)
        out[lab > 0] = lab[lab > 0] + out.max()
    return out


def _read_objectness_dir(folder: Path, stem: str, shape: tuple[int, ...], k: int) -> tuple[np.ndarray, np.ndarray]:
    import tifffile

    soft_path, bg_path = folder / f"{stem}.objectness.tif", folder / f"{stem}.background.tif"
    for p in (soft_path, bg_path):
        if not p.is_file():
            raise InputError(f"--objectness folder {folder} has no {p.name} for image '{stem}'")
    soft = tifffile.imread(soft_path)
    bg = tifffile.imread(bg_path)
    if soft.shape != (k + 1, *shape) or bg.shape != shape:
        raise InputError(
            f"objectness for '{stem}' has shapes {soft.shape} and {bg.shape}; expected {(k + 1, *shape)} and {shape}"
        )
    return soft, bg


def prepare_data(
    config: TrainConfig,
    points: PointTable,
    images: Sequence[str | Path],
    *,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> TrainingData:
    """Load, validate and precompute every training and validation image.

    Parameters
    ----------
    config : TrainConfig
        ``ndim``, ``channels`` and ``classes`` must already match the data (see
        :func:`pointseg_cli.train.loop.config_for_data`).
    points : PointTable
        Canonical points; only images with points are used.
    images : sequence of paths
        Image files, folders or globs.
    cache_dir : path, optional
        Where objectness arrays are cached (the run dir's ``cache/``; created only when the
        first array is written, so a run that fails here leaves no folder behind).

    Notes
    -----
    With a ``"stain"`` entry in ``config.normalization`` each RGB image is first stain-normalised
    to that reference (its own stains fitted on the image), then objectness and intensity
    normalisation see the normalised colours.

    Raises
    ------
    InputError
        Crop larger than an image, a mask missing or of another shape, ... (one clear line).
    """
    progress = progress or noop_progress
    paths, infos = scan_images(points, images, axes=config.axes)
    table = points.with_classes(config.classes)
    train_stems, val_stems = split_stems(table.stems, config)
    cache = Path(cache_dir) if cache_dir is not None else None  # created by the first cached file
    k = len(config.classes)
    norm = Normalization.from_dict(config.normalization)
    stain = config.normalization.get("stain")
    out: dict[str, list[ImageData]] = {"train": [], "val": []}
    stems = train_stems + val_stems
    for i, stem in enumerate(stems):
        info = infos[stem]
        small = [c for c, s in zip(config.crop or (), info.spatial_shape, strict=True) if c > s]
        if small:
            raise InputError(
                f"crop {tuple(config.crop or ())} is larger than image '{stem}' {info.spatial_shape}; "
                "use a smaller --crop"
            )
        raw = read_image(paths[stem], axes=config.axes)
        if stain is not None:
            # the stain-normalised colours feed both the objectness and the network
            raw = normalize_to_reference(raw, stain, what=f"training image '{stem}'")
        sub = table.for_image(stem)
        pts = sub.pixel_coords(config.ndim)
        cls = sub.class_ids()
        need_obj = config.supervision == "points"
        spacing = info.voxel_size if config.voxel_spacing else None
        soft, bg, grown = _objectness(config, raw, sub, pts, cls, cache, spacing) if need_obj else (None, None, None)
        if soft is not None and "obj" not in config.losses:
            soft = None
        channel_axis = -1 if raw.ndim > config.ndim else None
        img = normalize_image(raw, norm, channel_axis=channel_axis)
        img = np.moveaxis(img, -1, 0) if channel_axis is not None else img[None]
        mask = None
        if config.supervision == "masks":
            mask_path = find_mask(str(config.masks_dir), stem, exclude=paths[stem])
            mask = read_class_mask(mask_path, info.spatial_shape, k, axes=config.axes)
        center = None
        if "center" in config.losses:
            kw = {"mode": config.center_target, "sigma": config.center_sigma, "scale": config.center_scale}
            if grown is not None:
                center = point_center_target(pts, grown, **kw)
            else:
                instances = read_instance_mask(mask_path, info.spatial_shape, k, axes=config.axes)
                center = mask_center_target(instances, **kw)
            center = center.astype(np.float16)
        val_mask = None
        if stem in val_stems and config.val_masks_dir:
            val_path = find_mask(config.val_masks_dir, stem, exclude=paths[stem])
            val_mask = read_class_mask(val_path, info.spatial_shape, k, axes=config.axes)
        item = ImageData(
            stem=stem,
            image=np.ascontiguousarray(img, dtype=np.float32),
            points=pts,
            classes=cls,
            background=bg,
            soft=soft,
            mask=mask,
            val_mask=val_mask,
            center=center,
        )
        out["val" if stem in val_stems else "train"].append(item)
        progress("preparing images", i + 1, len(stems))
    log.info("prepared %d training and %d validation images", len(out["train"]), len(out["val"]))
    first = infos[stems[0]]
    return TrainingData(out["train"], out["val"], first.ndim, first.channels, config.classes)
