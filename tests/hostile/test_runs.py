"""Killed and concurrent runs: real `pointseg segment` processes, SIGKILL, two runs on one folder.

A killed run leaves a temporary file and a lock file; the next run removes them (and only them),
and its output equals an uninterrupted run's. Two runs on the same folder compute every output
exactly once and both exit 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pointseg_cli.infer.batch import PredictorCache, SegmentConfig, run_segment, segment_one
from pointseg_cli.io.locks import lock_path, try_lock
from pointseg_cli.io.writers import host_tag
from tests.hostile.conftest import IMAGE, invoke, leftovers

pytestmark = pytest.mark.skipif(os.name != "posix", reason="kill and flock semantics of POSIX")

#: Generous upper bound for a subprocess step on a loaded machine; the tests never wait for it to pass.
DEADLINE_S = 300


def _pointseg(*args: object) -> list[str]:
    return [sys.executable, "-m", "pointseg_cli", *map(str, args)]


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "250", "PYTHONUNBUFFERED": "1"}


def _volume(path: Path, shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    tifffile.imwrite(path, rng.integers(0, 255, shape, dtype=np.uint8), photometric="minisblack")


def _statuses(stdout: str) -> dict[str, str]:
    """File name -> status cell of a `segment` summary table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) >= 7 and cells[1].endswith(".tif"):
            rows[cells[1]] = cells[5]
    return rows


def _wait_for_temporary(proc: subprocess.Popen, out: Path, prefix: str) -> Path:
    """Poll until the running process has created its temporary output (i.e. is mid-run)."""
    start = time.monotonic()
    while time.monotonic() - start < DEADLINE_S:
        found = [p for p in out.glob(f".{prefix}*") if ".tmp-" in p.name] if out.exists() else []
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"segment ended (exit {proc.returncode}) before it was killed: {proc.stdout.read()}")
        time.sleep(0.01)
    pytest.fail("segment never started writing")


def test_killed_run_leaves_nothing_after_the_next_run_and_its_output_is_unchanged(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _volume(src / "big.tif", (48, 192, 192), seed=1)  # about 60 tiles of 8x64x64 at one per call
    options = ("--model", "test-3d", "--tile", "8,64,64", "--batch-size", "1", "--probabilities", "zarr")
    out = tmp_path / "out"
    proc = subprocess.Popen(_pointseg("segment", src, "--out-dir", out, *options), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_temporary(proc, out, "big.labels.tif")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    left = leftovers(out)
    assert any(".tmp-" in name for name in left) and any(name.endswith(".pointseg-lock") for name in left), left
    assert not (out / "big.labels.tif").exists()

    # what must survive the clean-up: a live process's temporary, another host's, and files not ours
    alive = out / f".x.labels.tif.tmp-{host_tag()}-{os.getpid()}-0123abcd"
    other_host = out / ".x.labels.tif.tmp-some-other-host-1-89abcdef"
    mine = out / ".keep"
    for p in (alive, other_host, mine):
        p.write_text("")

    rerun = subprocess.run(_pointseg("segment", src, "--out-dir", out, *options), env=_env(),
                           capture_output=True, text=True, timeout=DEADLINE_S)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _statuses(rerun.stdout) == {"big.tif": "ok"}, rerun.stdout
    assert sorted(leftovers(out)) == sorted([alive.name, other_host.name, mine.name])

    reference = tmp_path / "reference"
    config = SegmentConfig(tile=(8, 64, 64), batch_size=1, probabilities="zarr")
    assert run_segment([src], config, out_dir=reference, model="test-3d").n_ok == 1
    np.testing.assert_array_equal(tifffile.imread(out / "big.labels.tif"),
                                  tifffile.imread(reference / "big.labels.tif"))
    import zarr

    np.testing.assert_array_equal(zarr.open_group(str(out / "big.probabilities.zarr"), mode="r")["0"][:],
                                  zarr.open_group(str(reference / "big.probabilities.zarr"), mode="r")["0"][:])


def test_terminated_run_cleans_up_at_once(tmp_path):
    """SIGTERM (a scheduler's time limit) unwinds the run: temporary files and the lock go with it."""
    src = tmp_path / "in"
    src.mkdir()
    _volume(src / "big.tif", (48, 192, 192), seed=2)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _pointseg("segment", src, "--out-dir", out, "--model", "test-3d", "--tile", "8,64,64", "--batch-size", "1"),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_temporary(proc, out, "big.labels.tif")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=DEADLINE_S)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == 128 + signal.SIGTERM
    assert list(out.iterdir()) == []


def test_two_concurrent_runs_compute_each_output_once(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    names = [f"v{i}.tif" for i in range(6)]
    for i, name in enumerate(names):
        _volume(src / name, (16, 96, 96), seed=10 + i)
    out = tmp_path / "out"
    args = _pointseg("segment", src, "--out-dir", out, "--model", "test-3d", "--tile", "8,64,64")
    procs = [subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=DEADLINE_S)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    statuses = [_statuses(o) for o in outputs]
    for name in names:
        seen = sorted(s[name] for s in statuses)
        # exactly one run computed it; the other found it locked or already written
        assert seen[0] == "ok" and seen[1] in ("skipped (locked by another run)", "skipped (outputs exist)"), outputs
    assert leftovers(out) == []
    reference = tmp_path / "reference"
    run_segment([src], SegmentConfig(tile=(8, 64, 64)), out_dir=reference, model="test-3d")
    for name in names:
        stem = name.removesuffix(".tif")
        np.testing.assert_array_equal(tifffile.imread(out / f"{stem}.labels.tif"),
                                      tifffile.imread(reference / f"{stem}.labels.tif"))


@pytest.fixture
def two(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", IMAGE)
    tifffile.imwrite(folder / "b.tif", IMAGE[:40])
    return folder


def test_input_locked_by_another_run_is_skipped(runner, two, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lock = try_lock(out, "a", task="segment")  # what a run busy with a.tif holds
    assert lock is not None
    with lock:
        res = invoke(runner, "segment", two, "--out-dir", out, "--model", "test-2d-gray")
        assert res.exit_code == 0, res.output
        assert _statuses(res.output) == {"a.tif": "skipped (locked by another run)", "b.tif": "ok"}
        assert sorted(p.name for p in out.iterdir()) == [".a.segment.pointseg-lock", "b.instances.tif",
                                                         "b.labels.tif", "b.objects.csv"]
    assert leftovers(out) == []  # the holder removes its lock file when it lets go
    res = invoke(runner, "segment", two, "--out-dir", out, "--model", "test-2d-gray")
    assert _statuses(res.output) == {"a.tif": "ok", "b.tif": "skipped (outputs exist)"}


def test_lock_file_of_a_dead_run_is_free_and_removed(runner, two, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lock_path(out, "a", task="segment").write_text("somehost 1\n")  # left by a killed run: nobody holds it
    res = invoke(runner, "segment", two, "--out-dir", out, "--model", "test-2d-gray")
    assert res.exit_code == 0 and _statuses(res.output) == {"a.tif": "ok", "b.tif": "ok"}, res.output
    assert leftovers(out) == []


def test_overwrite_does_not_redo_what_a_concurrent_run_just_wrote(two, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    predictors = PredictorCache("test-2d-gray", device="cpu")
    config = SegmentConfig(overwrite=True)
    assert segment_one(two / "a.tif", config=config, out_dir=out, predictors=predictors).status == "ok"
    # a batch that started before those outputs were written leaves them alone ...
    res = segment_one(two / "a.tif", config=config, out_dir=out, predictors=predictors, since=0.0)
    assert (res.status, res.message) == ("skipped", "written by another run")
    # ... a batch started after them redoes them, as --overwrite asks
    res = segment_one(two / "a.tif", config=config, out_dir=out, predictors=predictors, since=time.time() + 1)
    assert res.status == "ok"


def test_objectness_image_locked_by_another_run_is_skipped(runner, two, tmp_path):
    points = tmp_path / "points.csv"
    points.write_text("image,z,y,x,class\na,,20,30,cell\nb,,20,30,cell\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / f".a.regions.tif.tmp-{host_tag()}-999999999-0123abcd").write_text("")  # a dead run's temporary
    lock = try_lock(out, "b", task="objectness")
    with lock:
        res = invoke(runner, "objectness", points, two, "--out", out)
    assert res.exit_code == 0, res.output
    assert "locked by another run" in res.output
    assert sorted(p.name for p in out.iterdir()) == [
        "a.background.tif", "a.objectness.tif", "a.regions.tif", "objectness.json"]
