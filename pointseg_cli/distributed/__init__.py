"""Scale ``pointseg segment`` out on Dask (``pip install 'pointseg[distributed]'``).

Two shapes of work, both on ``dask.distributed`` (a local cluster of processes, or an existing
scheduler such as one started by dask-jobqueue on SLURM):

* many files: one task per input (:mod:`~pointseg_cli.distributed.files`), the one-process
  batch's skip/resume, per-file failure and summary semantics;
* one large volume: halo blocks on the whole image's tile grid, written in parallel into an
  OME-Zarr store (:mod:`~pointseg_cli.distributed.volume`); the labels equal the one-process
  labels voxel for voxel.

Importing this package does not import dask; :func:`run_segment_distributed` raises a
:class:`~pointseg_cli.errors.ConfigError` with the install command when it is missing.
"""

from __future__ import annotations

from pointseg_cli.distributed.cluster import INSTALL_HINT, ClusterConfig, DependencyError, require_distributed
from pointseg_cli.distributed.run import run_segment_distributed

__all__ = ["INSTALL_HINT", "ClusterConfig", "DependencyError", "require_distributed", "run_segment_distributed"]
