"""``pointseg annotate-import`` as a library call: settings in, canonical points CSV and a result out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pointseg_cli.annotate.common import ImportResult, match_class, rename_class
from pointseg_cli.annotate.from_masks import points_from_masks
from pointseg_cli.annotate.points import import_points
from pointseg_cli.errors import ConfigError, InputError, check_choice
from pointseg_cli.io.point_formats import FORMATS
from pointseg_cli.io.points import write_points_csv
from pointseg_cli.progress import ProgressCallback


@dataclass(frozen=True)
class AnnotateImportConfig:
    """Settings of an import.

    Attributes
    ----------
    fmt : ``auto``, ``csv``, ``napari``, ``qupath`` or ``cellcounter``.
    image : assign every point to this image (name or stem).
    classes : class order (ids 1..K), matched to the files' class names without regard to case.
    class_map : renames classes before that match, ``(("old", "new"), ...)`` (a dict is accepted).
    default_class : class of points whose file gives none (renamed by ``class_map`` as well).
    drop_invalid : drop out-of-bounds and duplicate points instead of failing.
    axes : axes override for the images (and masks).
    mask_class, jitter, seed : with masks: the class of every point, the click jitter in pixels
        and its random seed (see :func:`~pointseg_cli.annotate.from_masks.points_from_masks`).
    """

    fmt: str = "auto"
    image: str | None = None
    classes: tuple[str, ...] | None = None
    class_map: tuple[tuple[str, str], ...] = ()
    default_class: str = "object"
    drop_invalid: bool = False
    axes: str | None = None
    mask_class: str = "nucleus"
    jitter: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("--format", self.fmt, FORMATS)
        classes = tuple(self.classes) if self.classes else None
        if classes is not None and len({c.casefold() for c in classes}) != len(classes):
            raise ConfigError(f"--classes names a class twice (case is ignored): {list(classes)}")
        object.__setattr__(self, "classes", classes)
        pairs = self.class_map.items() if isinstance(self.class_map, Mapping) else self.class_map
        pairs = tuple((str(old), str(new)) for old, new in pairs)
        keys = [old.casefold() for old, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"--class-map maps a class twice (case is ignored): {dict(pairs)}")
        object.__setattr__(self, "class_map", pairs)
        if not self.default_class.strip():
            raise ConfigError("--default-class must not be empty")
        if not self.mask_class.strip():
            raise ConfigError("--mask-class must not be empty")
        if not (math.isfinite(self.jitter) and self.jitter >= 0):
            raise ConfigError(f"--jitter must be >= 0 pixels and finite; got {self.jitter}")

    @property
    def class_mapping(self) -> dict[str, str]:
        """``class_map`` as a dict."""
        return dict(self.class_map)


def _mask_class(config: AnnotateImportConfig) -> str:
    name = rename_class(config.mask_class, config.class_mapping)
    if config.classes is None:
        return name
    matched = match_class(name, config.classes)
    if len(config.classes) != 1 or matched is None:
        raise InputError(
            f"masks give every point the class '{name}' (--mask-class) but --classes is {list(config.classes)}"
        )
    return matched


def run_annotate_import(
    inputs: Sequence[str | Path] = (),
    *,
    out: str | Path,
    images: str | Path | Sequence[str | Path] | None = None,
    from_masks: str | Path | Sequence[str | Path] | None = None,
    config: AnnotateImportConfig | None = None,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import points files (or make points from instance masks) and write the canonical points CSV.

    Parameters
    ----------
    inputs : points files (any mix of supported formats with ``fmt="auto"``).
    out : canonical points CSV to write (atomically; an existing file is replaced only on success).
    images : image folder (or files / globs); required for points files, optional with masks.
    from_masks : folder (or files / globs) of instance label images, instead of ``inputs``.
    config : the settings; defaults to :class:`AnnotateImportConfig` ``()``.
    progress : optional ``progress(task, done, total)`` callback.

    Returns
    -------
    ImportResult
        With ``out`` set to the file written.

    Raises
    ------
    InputError, PointsError
        Both or neither of points files and masks, no images for points files, and every invalid
        point file, mask or point (see :func:`~pointseg_cli.annotate.points.import_points`).
    """
    config = config or AnnotateImportConfig()
    if from_masks is not None:
        if inputs:
            raise InputError("give either points files or --from-masks, not both")
        result = points_from_masks(
            from_masks, images=images, mask_class=_mask_class(config), jitter=config.jitter, seed=config.seed,
            axes=config.axes, progress=progress,
        )
    else:
        if images is None:
            raise InputError("--images is required: the folder of the images the points belong to")
        result = import_points(
            list(inputs), images=images, fmt=config.fmt, image=config.image, classes=config.classes,
            drop_invalid=config.drop_invalid, axes=config.axes, default_class=config.default_class,
            class_map=config.class_mapping, progress=progress,
        )
    return replace(result, out=write_points_csv(out, result.table))
