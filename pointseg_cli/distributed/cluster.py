"""Connecting to Dask: a local cluster of worker processes, or an existing scheduler.

``dask.distributed`` is an optional dependency (``pip install 'pointseg[distributed]'``); nothing
here imports it at module level, so the rest of pointseg works without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pointseg_cli.errors import ConfigError, check_choice

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'pointseg[distributed]'"
#: How the work is split: one task per file, halo blocks of one volume, or chosen from the inputs.
MODES = ("auto", "files", "blocks")


class DependencyError(ConfigError):
    """An optional dependency needed by the requested mode is not installed."""


def require_distributed() -> Any:
    """Import and return ``distributed``, or raise :class:`DependencyError` with the install command."""
    try:
        import dask.array  # noqa: F401 - part of the extra; fail here rather than on a worker
        import distributed
    except ImportError as exc:
        raise DependencyError(
            f"the Dask mode needs dask[array] and distributed, which are not installed ({exc.name or exc}); "
            f"install them with: {INSTALL_HINT}"
        ) from None
    return distributed


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ClusterConfig:
    """Where and how the distributed mode runs.

    Attributes
    ----------
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``); None starts a
        local cluster of worker processes on this machine.
    workers : int, optional
        Worker processes of the local cluster (default: one per core). Not used with ``scheduler``.
    threads : int, optional
        Intra-op CPU threads of each worker's model. Default: the cores divided among the workers
        of a local cluster; onnxruntime's own default (all cores) on an existing cluster, whose
        workers should then run one task at a time (``dask worker --nthreads 1``).
    mode : {"auto", "files", "blocks"}
        ``files``: one task per input file; ``blocks``: one input volume split into halo blocks;
        ``auto``: blocks when the inputs are exactly one file, files otherwise.
    block_voxels : int
        Upper bound on the voxels of one block (its memory is about 20 bytes per voxel and class).
    chunks : tuple of int, optional
        Spatial chunk shape of the output stores (default 32 × 256 × 256, or 512 × 512 in 2D);
        blocks are made of whole chunks, so no two blocks write the same chunk.
    connect_timeout : float
        Seconds to wait for the scheduler before giving up.
    """

    scheduler: str | None = None
    workers: int | None = None
    threads: int | None = None
    mode: str = "auto"
    block_voxels: int = 1 << 25
    chunks: tuple[int, ...] | None = None
    connect_timeout: float = 3.0

    def __post_init__(self) -> None:
        check_choice("distributed mode", self.mode, MODES)
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"number of Dask workers must be >= 1; got {self.workers}")
        if self.workers is not None and self.scheduler:
            raise ConfigError(
                "the number of workers sets the size of a local cluster; an existing scheduler "
                f"({self.scheduler}) already has its workers — pass one or the other"
            )
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads per worker must be >= 1; got {self.threads}")
        if self.block_voxels < 1:
            raise ConfigError(f"block voxels must be >= 1; got {self.block_voxels}")
        if self.chunks is not None and (len(self.chunks) not in (2, 3) or any(int(c) < 1 for c in self.chunks)):
            raise ConfigError(f"chunks must be 2 or 3 positive sizes; got {self.chunks}")
        if self.connect_timeout <= 0:
            raise ConfigError(f"connect timeout must be > 0 seconds; got {self.connect_timeout}")
        if self.scheduler is not None and "://" not in self.scheduler and ":" not in self.scheduler:
            raise ConfigError(f"scheduler address must look like tcp://host:port; got {self.scheduler!r}")

    def worker_threads(self) -> int | None:
        """Intra-op threads for each worker's model (see ``threads``)."""
        if self.threads is not None:
            return self.threads
        if self.scheduler:
            return None
        return max(1, available_cores() // (self.workers or available_cores()))


@contextlib.contextmanager
def connect(config: ClusterConfig) -> Iterator[Any]:
    """Yield a ``distributed.Client`` for ``config``; a local cluster is shut down on exit.

    Raises
    ------
    DependencyError
        dask or distributed is not installed.
    ConfigError
        The scheduler cannot be reached within ``config.connect_timeout`` seconds.
    """
    dd = require_distributed()
    if config.scheduler:
        try:
            client = dd.Client(config.scheduler, timeout=config.connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ConfigError(f"cannot reach the Dask scheduler at {config.scheduler}: {reason}") from None
        with client:
            log.info("connected to %s (%d workers)", config.scheduler, len(client.scheduler_info()["workers"]))
            yield client
        return
    n = config.workers or available_cores()
    cluster = dd.LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR,
    )
    with cluster, dd.Client(cluster, set_as_default=False) as client:
        log.info("local Dask cluster: %d worker processes, %s model threads each", n, config.worker_threads())
        yield client
