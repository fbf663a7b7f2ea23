"""`pointseg segment` on hostile inputs: one bad file costs one file, usage errors cost nothing."""

from __future__ import annotations

import os

import pytest
import tifffile

from tests.hostile.conftest import (
    BROKEN,
    IMAGE,
    assert_batch_failure,
    assert_usage_error,
    invoke,
    leftovers,
)

MODEL = ("--model", "test-2d-gray")


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_file_in_a_batch_fails_alone(runner, good_folder, tmp_path, kind):
    name, make, words = BROKEN[kind]
    make(good_folder / name)
    out = tmp_path / "out"
    res = invoke(runner, "segment", good_folder, "--out-dir", out, *MODEL)
    assert_batch_failure(res, name, *words)
    assert "1 of 2 inputs failed" in res.output
    # nothing for the bad file
    assert sorted(p.name for p in out.iterdir()) == ["a.instances.tif", "a.labels.tif", "a.objects.csv"]
    assert leftovers(out) == []


@pytest.mark.parametrize("kind", ["truncated-pages", "nan", "corrupt-strip"])
def test_broken_file_alone_exits_1_not_a_wrong_result(runner, tmp_path, kind):
    name, make, words = BROKEN[kind]
    make(tmp_path / name)
    out = tmp_path / "out"
    res = invoke(runner, "segment", tmp_path / name, "--out-dir", out, *MODEL, "--preview")
    assert_batch_failure(res, name, *words)
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


def test_same_stem_is_a_usage_error_before_any_work(runner, tmp_path):
    tifffile.imwrite(tmp_path / "x.tif", IMAGE)
    tifffile.imwrite(tmp_path / "x.ome.tif", IMAGE, ome=True)
    out = tmp_path / "out"
    line = assert_usage_error(invoke(runner, "segment", tmp_path, "--out-dir", out, *MODEL), "share the stem 'x'")
    assert "x.tif" in line and "x.ome.tif" in line
    assert not out.exists()


def test_same_stem_in_two_folders(runner, tmp_path):
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
        tifffile.imwrite(tmp_path / sub / "x.tif", IMAGE)
    out = tmp_path / "out"
    assert_usage_error(invoke(runner, "segment", tmp_path / "one", tmp_path / "two", "--out-dir", out, *MODEL),
                       "share the stem 'x'")
    assert not out.exists()


def test_own_outputs_are_never_inputs_even_from_an_unquoted_glob(runner, good_folder):
    res = invoke(runner, "segment", good_folder, "--out-dir", good_folder, *MODEL, "--preview")
    assert res.exit_code == 0, res.output
    expanded = sorted(good_folder.iterdir())  # what the shell makes of in/*
    assert {p.name for p in expanded} == {"a.tif", "a.labels.tif", "a.instances.tif", "a.objects.csv", "a.preview.png"}
    res = invoke(runner, "segment", *expanded, "--out-dir", good_folder, *MODEL, "--overwrite")
    assert res.exit_code == 0, res.output
    res = invoke(runner, "segment", f"{good_folder}/*", "--out-dir", good_folder, *MODEL, "--overwrite")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in good_folder.iterdir()) == [
        "a.instances.tif", "a.labels.tif", "a.objects.csv", "a.preview.png", "a.tif",
    ]


def test_fifo_in_input_folder_is_skipped_never_opened(runner, good_folder, tmp_path):
    os.mkfifo(good_folder / "pipe.tif")
    out = tmp_path / "out"
    res = invoke(runner, "segment", good_folder, "--out-dir", out, *MODEL)
    assert res.exit_code == 0, res.output
    assert "FIFO" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["a.instances.tif", "a.labels.tif", "a.objects.csv"]


def test_symlink_loop_is_one_line(runner, tmp_path):
    os.symlink(tmp_path / "l2.tif", tmp_path / "l1.tif")
    os.symlink(tmp_path / "l1.tif", tmp_path / "l2.tif")
    out = tmp_path / "out"
    assert_usage_error(invoke(runner, "segment", tmp_path / "l1.tif", "--out-dir", out, *MODEL),
                       "symbolic link loop")
    assert not out.exists()
