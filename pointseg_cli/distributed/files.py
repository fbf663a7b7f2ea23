"""Many files on a Dask cluster: one task per input, the one-process batch's semantics.

Each task is :func:`~pointseg_cli.infer.batch.segment_one` on a worker, so skipping (outputs
exist), per-file failures and the outputs written are exactly those of
:func:`~pointseg_cli.infer.batch.run_segment`. A worker that dies while segmenting a file (killed,
out of memory) is replaced by Dask and the file retried; a file that keeps killing workers is
reported as failed and the batch goes on. Outputs are written atomically by the workers, so a
re-run resumes where a broken run stopped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pointseg_cli.distributed.worker import ModelSpec, segment_file_task
from pointseg_cli.errors import PointsegError
from pointseg_cli.infer.batch import FileResult, SegmentConfig
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)


def worker_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the task's worker died (rather than the task raising)."""
    return type(exc).__name__ == "KilledWorker"


def run_files(
    client: Any,
    paths: Sequence[Path],
    config: SegmentConfig,
    *,
    out_dir: Path,
    spec: ModelSpec,
    progress: ProgressCallback | None = None,
) -> list[FileResult]:
    """Segment ``paths`` as one task each on ``client``'s cluster; results in input order.

    Raises
    ------
    PointsegError
        An error of the batch rather than of one file (no model for an input's kind, a bad device),
        raised by any task; the other tasks are cancelled.
    """
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:8]
    keys = [f"pointseg-file-{run_id}-{i}" for i in range(len(paths))]
    futures = client.map(segment_file_task, [str(p) for p in paths], key=keys, config=config,
                         out_dir=str(out_dir), spec=spec)
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[FileResult | None] = [None] * len(paths)
    done = 0
    if progress is not None:
        progress("all files", 0, len(paths))
    try:
        for fut in as_completed(futures, loop=client.loop):
            i = index[fut.key]
            if fut.status == "error":
                exc = fut.exception()
                if worker_lost(exc):
                    results[i] = FileResult(paths[i], "failed", "the Dask worker died while segmenting it "
                                            "(killed, or out of memory: try a smaller --tile or --batch-size)")
                elif isinstance(exc, PointsegError):
                    raise exc
                else:
                    fut.result()  # re-raises with the worker's traceback
            else:
                results[i] = fut.result()
            # Forget the finished task: were its worker to die now, Dask would otherwise run it again.
            fut.release()
            done += 1
            if progress is not None:
                progress("all files", done, len(paths))
    finally:
        client.cancel([f for f in futures if not f.done()])
    return [r for r in results if r is not None]
