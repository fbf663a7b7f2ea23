from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from pathlib import Path

import pooch  # noqa: F401 - imported before any CliRunner swaps stderr (pooch binds a log handler)
import pytest

from pointseg_cli import zoo
from pointseg_cli.errors import ConfigError, ModelError

MODELS = Path(zoo.__file__).resolve().parent.parent / "models"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` over HTTP on 127.0.0.1 (pooch refuses file:// URLs); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("POINTSEG_CACHE", str(folder))
    return folder


@pytest.fixture
def good_site(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(MODELS / "test-2d-gray.onnx", site / "test-2d-gray.onnx")
    return site


@pytest.fixture
def bad_site(tmp_path):
    site = tmp_path / "bad-site"
    site.mkdir()
    shutil.copy(MODELS / "test-3d.onnx", site / "test-2d-gray.onnx")  # right name, wrong bytes
    return site


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_packaged_registry_is_valid_and_embedded_files_match():
    entries = zoo.read_registry()
    assert {e.name for e in entries} >= {"test-2d-gray", "test-2d-rgb", "test-3d", "test-2d-gray-remote"}
    for e in entries:
        if e.name.startswith("test-"):
            assert "UNTRAINED" in e.description  # test models say what they are
        else:  # a trained model has a model card
            assert (Path(str(zoo.resources.files("pointseg_cli._models"))) / f"{e.name}.md").is_file()
        if e.embedded:
            assert zoo.sha256_of(zoo.fetch(e.name)) == e.sha256


def test_fetch_downloads_into_cache_and_reuses_it_offline(cache, good_site, monkeypatch):
    with serve(good_site) as url:
        monkeypatch.setenv("POINTSEG_MODELS_URL", url)
        path = zoo.fetch("test-2d-gray-remote")
    assert path.parent == cache and path.is_file()
    assert zoo.sha256_of(path) == zoo.get_entry("test-2d-gray-remote").sha256
    # server gone: the cached copy is used without any network access
    monkeypatch.setenv("POINTSEG_MODELS_URL", "http://127.0.0.1:9/")
    assert zoo.fetch("test-2d-gray-remote") == path
    assert zoo.cached_path(zoo.get_entry("test-2d-gray-remote")) == path


def test_wrong_hash_fails_and_leaves_nothing_in_cache(cache, bad_site, monkeypatch):
    with serve(bad_site) as url:
        monkeypatch.setenv("POINTSEG_MODELS_URL", url)
        with pytest.raises(ModelError, match="failed its sha256 check"):
            zoo.fetch("test-2d-gray-remote")
    assert _files(cache) == []


def test_unreachable_server_is_a_model_error(cache, monkeypatch):
    with serve(cache.parent) as url:
        monkeypatch.setenv("POINTSEG_MODELS_URL", url + "nothing-here/")
        with pytest.raises(ModelError, match="cannot download model 'test-2d-gray-remote'"):
            zoo.fetch("test-2d-gray-remote")
    assert _files(cache) == []


def test_resolve_model(tmp_path, monkeypatch):
    assert zoo.resolve_model("test-3d", kind="3d").name == "test-3d.onnx"
    f = tmp_path / "mine.onnx"
    f.write_bytes(b"x")
    assert zoo.resolve_model(str(f), kind="3d") == f
    with pytest.raises(ModelError, match="not found"):
        zoo.resolve_model(str(tmp_path / "nope.onnx"), kind="3d")
    with pytest.raises(ModelError, match=r"unknown model 'nope': expected a file path or one of .*test-3d"):
        zoo.resolve_model("nope", kind="3d")
    monkeypatch.setattr(zoo, "read_defaults", lambda: {"2d-gray": "test-2d-gray"})
    assert zoo.resolve_model(None, kind="2d-gray").name == "test-2d-gray.onnx"
    with pytest.raises(ModelError, match="no default model for 3d inputs"):
        zoo.resolve_model(None, kind="3d")
    with pytest.raises(ConfigError, match="kind must be one of 2d-gray, 2d-rgb, 3d"):
        zoo.resolve_model(None, kind="4d")


@pytest.mark.parametrize("text, message", [
    ("a\tb\tc\n", "expected 6 tab-separated columns"),
    ("m\t" + "0" * 64 + "\tm.onnx\t3d\tmaybe\td\n", "embedded must be yes or no"),
    ("m\t" + "0" * 63 + "\tm.onnx\t3d\tno\td\n", "sha256 must be 64"),
    ("m\t" + "0" * 64 + "\t../m.onnx\t3d\tno\td\n", "bare .onnx/.pt name"),
    ("m\t" + "0" * 64 + "\tm.onnx\t4d\tno\td\n", "kind of registry entry 'm' must be one of"),
    (("m\t" + "0" * 64 + "\tm.onnx\t3d\tno\td\n") * 2, "lists m more than once"),
])
def test_registry_errors(text, message):
    with pytest.raises((ModelError, ConfigError), match=message):
        zoo.parse_registry(text)


def test_env_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("POINTSEG_MODELS_URL", "http://example.org/m")
    monkeypatch.setenv("POINTSEG_CACHE", str(tmp_path))
    assert zoo.models_url() == "http://example.org/m/" and zoo.cache_dir() == tmp_path
    monkeypatch.delenv("POINTSEG_MODELS_URL")
    assert zoo.models_url() == zoo.DEFAULT_MODELS_URL


def test_packaged_defaults_name_registered_models_of_their_kind():
    registry = {e.name: e for e in zoo.read_registry()}
    for kind, name in zoo.read_defaults().items():
        assert name in registry, f"defaults.txt names {name!r}, which is not in registry.txt"
        assert registry[name].kind == kind
        assert zoo.fetch(name).is_file()


def test_model_backend_from_names_and_suffixes(tmp_path, monkeypatch):
    assert zoo.model_backend(None) == "onnxruntime"  # the packaged defaults are ONNX models
    assert zoo.model_backend("test-3d") == zoo.model_backend(tmp_path / "m.onnx") == "onnxruntime"
    assert zoo.model_backend(tmp_path / "run") == zoo.model_backend("best.pt") == "torch"
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        zoo.model_backend("nope")
    monkeypatch.setattr(zoo, "read_defaults", lambda: {"3d": "nuclei-3d", "2d-gray": "missing"})
    assert zoo.model_backend(None) == "onnxruntime"
