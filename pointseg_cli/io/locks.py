"""Per-output locks, so that two runs writing into the same folder never compute the same file.

A lock is a hidden file ``.<stem>.<task>.pointseg-lock`` in the output folder, held with an
exclusive ``flock``. The operating system releases a ``flock`` when its process ends however it
ends (a crash, ``kill -9``), so a lock can never be left stuck: the file a killed run leaves
behind is free to take, and the next run that takes it (or :func:`remove_stale_locks`) deletes
it. The holder deletes the file before it lets go; a run that locked a file which has meanwhile
been deleted sees that the inode changed and tries again, so two runs never both believe they
hold the same lock.

On platforms without ``fcntl`` (Windows) locking is a no-op and concurrent runs are not detected.

Example
-------
>>> from pointseg_cli.io.locks import try_lock
>>> lock = try_lock("seg", "a", task="segment")  # doctest: +SKIP
>>> if lock is None:  # another run is computing a's outputs
...     pass
>>> else:
...     with lock:
...         pass  # compute and write a's outputs
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_SUFFIX = ".pointseg-lock"
LOCK_PATTERN = re.compile(r"^\..+\.[a-z]+\.pointseg-lock$")
_ATTEMPTS = 8


def lock_path(folder: str | Path, stem: str, *, task: str) -> Path:
    """The lock file of ``stem``'s outputs of ``task`` (``segment``, ``objectness``) in ``folder``."""
    return Path(folder) / f".{stem}.{task}{LOCK_SUFFIX}"


class OutputLock:
    """A held lock; :meth:`release` (or leaving the ``with`` block) deletes the file and lets go."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Delete the lock file, then release the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _acquire(path: Path) -> OutputLock | None:
    """Take the lock at ``path`` without waiting; None when another process holds it."""
    if fcntl is None:  # pragma: no cover - Windows
        return OutputLock(path, None)
    for _ in range(_ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: held elsewhere
            os.close(fd)
            return None
        try:
            on_disk = os.stat(path)
        except FileNotFoundError:
            on_disk = None
        mine = os.fstat(fd)
        if on_disk is not None and (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino):
            from pointseg_cli.io.writers import host_tag

            os.ftruncate(fd, 0)
            os.write(fd, f"{host_tag()} {os.getpid()}\n".encode())
            return OutputLock(path, fd)
        os.close(fd)  # the previous holder deleted the file between our open and our flock: retry
    return None


def try_lock(folder: str | Path, stem: str, *, task: str) -> OutputLock | None:
    """Lock ``stem``'s outputs of ``task`` in ``folder`` without waiting.

    Returns
    -------
    OutputLock or None
        The held lock, or None when another live run holds it.
    """
    return _acquire(lock_path(folder, stem, task=task))


def remove_stale_locks(folder: str | Path) -> list[Path]:
    """Delete lock files in ``folder`` that no live process holds (those killed runs left)."""
    removed: list[Path] = []
    if fcntl is None:  # pragma: no cover - Windows
        return removed
    try:
        entries = [Path(e.path) for e in os.scandir(folder) if LOCK_PATTERN.match(e.name) and e.is_file()]
    except OSError:
        return removed
    for path in entries:
        try:
            lock = _acquire(path)
        except OSError:
            continue
        if lock is not None:
            lock.release()
            removed.append(path)
    if removed:
        log.info("removed %d lock file(s) left in %s by a run that is gone", len(removed), folder)
    return removed
