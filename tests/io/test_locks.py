"""Temporary names, the removal of killed runs' temporaries, per-output locks, output-folder checks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pointseg_cli.errors import OutputError
from pointseg_cli.io.locks import lock_path, remove_stale_locks, try_lock
from pointseg_cli.io.writers import (
    TEMP_PATTERN,
    atomic_output,
    host_tag,
    is_stale_temporary,
    prepare_output_dir,
    remove_stale_temporaries,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX process ids and flock")


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_names_carry_host_and_pid(tmp_path):
    with atomic_output(tmp_path / "a.labels.tif") as tmp:
        match = TEMP_PATTERN.match(tmp.name)
        assert match is not None and match["name"] == "a.labels.tif"
        assert (match["host"], int(match["pid"])) == (host_tag(), os.getpid())
        tmp.write_text("x")
        assert not is_stale_temporary(tmp)  # this process is alive
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.labels.tif"]


@pytest.mark.parametrize("folder", [False, True])
def test_a_failure_removes_the_temporary(tmp_path, folder):
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "x.zarr") as tmp:
        if folder:
            (tmp / "0").mkdir(parents=True)
        else:
            tmp.write_text("partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_only_dead_local_temporaries_are_removed(tmp_path):
    dead = _dead_pid()
    host = host_tag()
    stale_file = tmp_path / f".a.labels.tif.tmp-{host}-{dead}-0123abcd"
    stale_dir = tmp_path / f".a.probabilities.zarr.tmp-{host}-{dead}-89abcdef"
    keep = [
        tmp_path / f".b.labels.tif.tmp-{host}-{os.getpid()}-0123abcd",  # alive
        tmp_path / f".b.labels.tif.tmp-not-{host}-{dead}-0123abcd",  # another host: cannot tell
        tmp_path / f".b.labels.tif.tmp-{dead}-0123abcd",  # not our pattern
        tmp_path / ".hidden",
        tmp_path / f"c.labels.tif.tmp-{host}-{dead}-0123abcd",  # not hidden: not ours
    ]
    stale_file.write_text("")
    (stale_dir / "0").mkdir(parents=True)
    for p in keep:
        p.write_text("")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_dir])
    assert sorted(tmp_path.iterdir()) == sorted(keep)


def test_lock_is_exclusive_and_leaves_no_file(tmp_path):
    first = try_lock(tmp_path, "a", task="segment")
    assert first is not None and first.held
    assert try_lock(tmp_path, "a", task="segment") is None  # a second open file description
    other = try_lock(tmp_path, "a", task="objectness")  # another command's outputs: independent
    assert other is not None
    other.release()
    assert lock_path(tmp_path, "a", task="segment").read_text() == f"{host_tag()} {os.getpid()}\n"
    first.release()
    first.release()  # idempotent
    assert list(tmp_path.iterdir()) == []
    with try_lock(tmp_path, "a", task="segment") as again:
        assert again.held
    assert list(tmp_path.iterdir()) == []


def test_lock_held_by_another_process_and_freed_by_its_death(tmp_path):
    path = lock_path(tmp_path, "a", task="segment")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pointseg_cli.io.locks import try_lock; lock = try_lock(sys.argv[1], 'a', task='segment');"
         " print('held' if lock else 'busy', flush=True); sys.stdin.read()", str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert try_lock(tmp_path, "a", task="segment") is None
        assert remove_stale_locks(tmp_path) == [] and path.exists()  # a live holder's lock stays
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()
    assert path.exists()  # killed: the file stays, but the lock is free
    assert remove_stale_locks(tmp_path) == [path]
    assert list(tmp_path.iterdir()) == []


def test_prepare_output_dir(tmp_path):
    out = prepare_output_dir(tmp_path / "new" / "deeper")
    assert out.is_dir() and list(out.iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file"):
        prepare_output_dir(tmp_path / "file")
    with pytest.raises(OutputError, match="is a file"):
        prepare_output_dir(tmp_path / "file" / "sub")
    assert not (tmp_path / "file").is_dir()
