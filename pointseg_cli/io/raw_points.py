"""Points as read from another tool's file (:class:`RawPoints`), shared by every format reader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointseg_cli.errors import PointsError


@dataclass(frozen=True)
class RawPoints:
    """Points as read from one file, before they are matched to images.

    Attributes
    ----------
    source : the file read.
    format : the format it was read as (one of :data:`FORMATS` except ``auto``).
    coords : numpy.ndarray, shape (N, 3), float64
        ``z, y, x`` in pixel index space; z is NaN where the file has none.
    class_name : numpy.ndarray, shape (N,), str
        Class names; ``""`` where the file gives none.
    image : numpy.ndarray, shape (N,), str
        Image stems named by the file; ``""`` where it names none.
    z_is_stack_position : bool
        True for Cell Counter files: z is a 0-based ImageJ stack position, not yet a z index.
    """

    source: Path
    format: str
    coords: np.ndarray
    class_name: np.ndarray
    image: np.ndarray
    z_is_stack_position: bool = False

    def __post_init__(self) -> None:
        coords = np.asarray(self.coords, dtype=np.float64).reshape(-1, 3)
        n = coords.shape[0]
        if np.asarray(self.class_name).shape != (n,) or np.asarray(self.image).shape != (n,):
            raise PointsError(f"'{self.source.name}': point columns differ in length")
        object.__setattr__(self, "coords", coords)

    def __len__(self) -> int:
        return int(self.coords.shape[0])


def stem_of(value: str) -> str:
    from pointseg_cli.io.images import image_stem

    value = value.strip().replace("\\", "/")
    return image_stem(Path(value).name) if value else ""


def str_array(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=str) if values else np.empty(0, dtype="<U1")
