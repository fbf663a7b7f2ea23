"""Synthetic demo data with ground truth: one module per kind, a registry, and a writer.

Kinds (``pointseg demo-data --kind``):

``3d-nuclei`` (:mod:`.nuclei3d`)
    uint16 ``(Z, Y, X)`` fluorescence volumes of clustered, touching nuclei (BBBC024-like).
``2d-he`` (:mod:`.he`)
    uint8 RGB ``(Y, X, 3)`` H&E-like tiles with three nucleus classes.
``2d-gray`` (:mod:`.gray2d`)
    uint16 ``(Y, X)`` fluorescence nuclei (DAPI/Hoechst-like), touching, varied intensity.
``3d-sim`` (:mod:`.sim`)
    uint16 ``(Z, Y, X)`` SIM-like volumes of retinal pigment epithelium cells with three granule
    classes, anisotropic voxels recorded in the files, and a split by cell.

Layout written by :func:`generate_demo_data`::

    DIR/<name>.tif            image (OME axes; 3d-sim also PhysicalSizeX/Y/Z in µm)
    DIR/<name>.masks.tif      uint16 instance ids, 0 background
    DIR/<name>.classes.tif    uint8 class id per pixel (0 background, 1..K = classes.txt)
    DIR/classes.txt           object class names in id order, one per line
    DIR/points.csv            2d-gray, 3d-sim: one click per object (canonical points CSV)
    DIR/split.csv             3d-sim: one row per cell with its split and granule counts
    DIR/points.trainval.csv   3d-sim: the clicks of the train and validation cells
"""

from pointseg_cli.demo._common import DemoSample
from pointseg_cli.demo.gray2d import GRAY_CLASSES, make_gray_nuclei
from pointseg_cli.demo.he import HE_CLASSES, make_he_tile
from pointseg_cli.demo.nuclei3d import NUCLEI_CLASSES, make_nuclei_volume
from pointseg_cli.demo.registry import DEFAULT_SIZE, DIFFICULTIES, KINDS, SPECS, KindSpec, get_kind, parse_size
from pointseg_cli.demo.sim import SIM_CLASSES, SIM_VOXEL_SIZE, make_sim_volume
from pointseg_cli.demo.write import DemoDataset, assign_splits, generate_demo_data, object_clicks

__all__ = [
    "DEFAULT_SIZE", "DIFFICULTIES", "GRAY_CLASSES", "HE_CLASSES", "KINDS", "NUCLEI_CLASSES", "SIM_CLASSES",
    "SIM_VOXEL_SIZE", "SPECS", "DemoDataset", "DemoSample", "KindSpec", "assign_splits", "generate_demo_data",
    "get_kind", "make_gray_nuclei", "make_he_tile", "make_nuclei_volume", "make_sim_volume", "object_clicks",
    "parse_size",
]
