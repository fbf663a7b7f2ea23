from __future__ import annotations

import pooch  # noqa: F401 - imported before any CliRunner swaps stderr (pooch binds a log handler)
import pytest

from pointseg_cli.cli.app import app
from tests.test_zoo import MODELS, serve


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("POINTSEG_CACHE", str(folder))
    return folder


def test_list_shows_every_model_and_where_it_lives(runner, cache):
    res = runner.invoke(app, ["models", "list"], terminal_width=250)
    assert res.exit_code == 0, res.output
    for name in ("test-2d-gray", "test-2d-rgb", "test-3d", "test-2d-gray-remote"):
        assert name in res.output
    assert "embedded" in res.output and "not downloaded" in res.output and "UNTRAINED" in res.output


def test_fetch_then_list_then_offline_reuse(runner, cache, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "test-2d-gray.onnx").write_bytes((MODELS / "test-2d-gray.onnx").read_bytes())
    with serve(site) as url:
        monkeypatch.setenv("POINTSEG_MODELS_URL", url)
        res = runner.invoke(app, ["models", "fetch", "test-2d-gray-remote"], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert (cache / "test-2d-gray.onnx").is_file() and str(cache) in res.output
    monkeypatch.setenv("POINTSEG_MODELS_URL", "http://127.0.0.1:9/")  # nothing listens there
    res = runner.invoke(app, ["models", "fetch", "test-2d-gray-remote"], terminal_width=250)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["models", "list"], terminal_width=250)
    assert "cached" in res.output


def test_wrong_hash_exit_2_and_cache_empty(runner, cache, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "test-2d-gray.onnx").write_bytes(b"tampered")
    with serve(site) as url:
        monkeypatch.setenv("POINTSEG_MODELS_URL", url)
        res = runner.invoke(app, ["models", "fetch", "test-2d-gray-remote"], terminal_width=250)
    assert res.exit_code == 2, res.output
    assert "sha256" in res.output and "Traceback" not in res.output
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]


def test_unknown_name_exit_2(runner, cache):
    res = runner.invoke(app, ["models", "fetch", "nope"], terminal_width=250)
    assert res.exit_code == 2 and "unknown model 'nope'" in res.output


def test_help_mentions_examples(runner):
    for sub in ("list", "fetch"):
        res = runner.invoke(app, ["models", sub, "--help"], terminal_width=200)
        assert res.exit_code == 0 and "Example" in res.output and f"pointseg models {sub}" in res.output
