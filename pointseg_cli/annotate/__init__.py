"""Point annotations into the canonical points table: the library behind ``pointseg annotate-import``.

Two ideas, one module each:

- :mod:`~pointseg_cli.annotate.points`: read points files (CSV, napari, QuPath, Cell Counter),
  assign them to images and classes, validate them against the image shapes;
- :mod:`~pointseg_cli.annotate.from_masks`: make one point per labelled instance of label images
  (the simulated annotator of the experiments).

:func:`~pointseg_cli.annotate.run.run_annotate_import` runs either from an
:class:`~pointseg_cli.annotate.run.AnnotateImportConfig` and writes the CSV.
"""

from pointseg_cli.annotate.common import ImportResult, image_infos
from pointseg_cli.annotate.from_masks import instance_points, points_from_masks
from pointseg_cli.annotate.points import import_points
from pointseg_cli.annotate.run import AnnotateImportConfig, run_annotate_import

__all__ = [
    "AnnotateImportConfig",
    "ImportResult",
    "image_infos",
    "import_points",
    "instance_points",
    "points_from_masks",
    "run_annotate_import",
]
