"""What both ways of making points share: the result, image metadata and class-name matching."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pointseg_cli.errors import InputError
from pointseg_cli.io.images import ImageInfo, find_images, read_info
from pointseg_cli.io.points import PointTable


@dataclass(frozen=True)
class ImportResult:
    """The imported points and what happened on the way.

    Attributes
    ----------
    table : the canonical points (rows grouped by image, input order within an image).
    images : stem → spatial shape of every image that received points.
    images_without_points : stems of images in the image folder that received none.
    dropped_out_of_bounds, dropped_duplicates : points removed by ``drop_invalid``.
    sources : the files read.
    out : the canonical points CSV written, if any.
    """

    table: PointTable
    images: dict[str, tuple[int, ...]]
    images_without_points: tuple[str, ...] = ()
    dropped_out_of_bounds: int = 0
    dropped_duplicates: int = 0
    sources: tuple[Path, ...] = field(default=())
    out: Path | None = None

    def __post_init__(self) -> None:
        if self.dropped_out_of_bounds < 0 or self.dropped_duplicates < 0:
            raise ValueError("dropped counts must be >= 0")

    def counts(self) -> dict[str, dict[str, int]]:
        """Points per image and class, ``{stem: {class: n}}``."""
        return self.table.counts()


def image_infos(images: str | Path | Sequence[str | Path], *, axes: str | None = None) -> dict[str, ImageInfo]:
    """Metadata of every image in a folder (or list), keyed by stem; pixels are not read."""
    items = [images] if isinstance(images, str | Path) else list(images)
    infos: dict[str, ImageInfo] = {}
    for path in find_images(items):
        info = read_info(path, axes=axes)
        if info.stem in infos:
            raise InputError(
                f"two images share the stem '{info.stem}': '{infos[info.stem].path.name}' and '{path.name}'"
            )
        infos[info.stem] = info
    return infos


def listing(names: Sequence[str] | Mapping[str, object], limit: int = 5) -> str:
    """``a, b, c, … (12 in all)``: a short sorted listing for error messages."""
    stems = sorted(names)
    more = f", … ({len(stems)} in all)" if len(stems) > limit else ""
    return ", ".join(stems[:limit]) + more if stems else "(no images)"


def rename_class(name: str, class_map: Mapping[str, str]) -> str:
    """``class_map[name]``, the keys compared without regard to case; ``name`` when it is not mapped."""
    folded = name.casefold()
    for old, new in class_map.items():
        if old.casefold() == folded:
            return new
    return name


def match_class(name: str, classes: Sequence[str]) -> str | None:
    """The entry of ``classes`` equal to ``name`` without regard to case (its spelling wins), else ``None``."""
    folded = name.casefold()
    return next((c for c in classes if c.casefold() == folded), None)
