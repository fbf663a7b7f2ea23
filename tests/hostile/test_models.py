"""Broken models and runs: an ONNX model whose metadata disagrees with its graph, corrupt checkpoints,
hand-edited configs, a corrupted model cache. One line each, or a silent repair where one is possible."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import onnx
import pytest
import tifffile
import torch

from pointseg_cli.train.config import TrainConfig
from pointseg_cli.zoo import get_entry, sha256_of
from tests.hostile.conftest import IMAGE, invoke, only_line
from tests.test_zoo import MODELS, serve

REMOTE = "test-2d-gray-remote"  # a registered model that is downloaded, not embedded


@pytest.fixture
def image(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", IMAGE)
    return tmp_path / "a.tif"


def _edited_model(tmp_path, **props: str):
    model = onnx.load(str(MODELS / "test-2d-gray.onnx"))
    for prop in model.metadata_props:
        key = prop.key.removeprefix("pointseg.")
        if key in props:
            prop.value = props[key]
    path = tmp_path / "edited.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    "props, needles",
    [
        ({"channels": "3"}, ("3 channels", "input 'image' has 1")),
        ({"ndim": "3", "tile": "[8, 64, 64]"}, ("3-D (rank 5)", "rank 4")),
        ({"classes": '["a", "b", "c"]'}, ("4 classes + background", "output 'logits' has 2")),
        ({"precision": "fp16"}, ("fp16", "fp32")),
    ],
)
def test_onnx_metadata_that_disagrees_with_the_graph(runner, image, tmp_path, props, needles):
    model = _edited_model(tmp_path, **props)
    out = tmp_path / "out"
    only_line(invoke(runner, "segment", image, "--out-dir", out, "--model", model),
              "model edited.onnx is inconsistent:", *needles)
    assert not out.exists()


@pytest.mark.parametrize(
    "props, needle",
    [
        ({"classes": '"nucleus"'}, "pointseg.classes must be a JSON list"),
        ({"ndim": "two"}, "malformed pointseg metadata"),
        ({"tile": "{"}, "malformed pointseg metadata"),
    ],
)
def test_onnx_metadata_of_the_wrong_type(runner, image, tmp_path, props, needle):
    model = _edited_model(tmp_path, **props)
    only_line(invoke(runner, "segment", image, "--out-dir", tmp_path / "out", "--model", model), needle)


class _Code:
    def __reduce__(self):  # noqa: ANN204 - a pickle that would run code when loaded
        return (os.system, ("true",))


def _random(path):
    path.write_bytes(os.urandom(4096))


def _empty(path):
    path.write_bytes(b"")


def _text(path):
    path.write_text("hello, not a checkpoint\n")


def _truncated(path):
    torch.save({"format": "pointseg.checkpoint/1", "model": {"w": torch.zeros(1000)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _code(path):
    torch.save({"x": _Code()}, path)


def _pickle(path):
    path.write_bytes(pickle.dumps({"format": "x"}, protocol=2))


def _zip(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"not a pickle")


@pytest.mark.parametrize("make", [_random, _empty, _text, _truncated, _code, _pickle, _zip])
@pytest.mark.parametrize("command", ["segment", "export"])
def test_corrupt_checkpoint_is_one_line_without_torch_advice(runner, image, tmp_path, make, command):
    ckpt = tmp_path / "best.pt"
    make(ckpt)
    if command == "segment":
        res = invoke(runner, "segment", image, "--out-dir", tmp_path / "out", "--model", ckpt)
    else:
        res = invoke(runner, "export", ckpt, "--out", tmp_path / "m.onnx")
    line = only_line(res, "best.pt")
    assert "weights_only" not in line and "PyTorch 2.6" not in line and len(line) < 300, line
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "out").exists()


def _config(**changes):
    data = TrainConfig(ndim=2, channels=1, classes=("cell",), arch="fpn", encoder="resnet18").to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("epochs", "10", "must be an integer"),
        ("lr", "fast", "must be a number"),
        ("classes", "cell", "must be a list of texts"),
        ("amp", "yes", "must be true or false"),
        ("crop", [128, "x"], "must be a list of integers or null"),
        ("lambdas", [1, 1], "must be a list of 3 numbers"),
        ("normalization", [1, 99], "must be an object"),
    ],
)
def test_hand_edited_config_json_names_the_key(runner, image, tmp_path, key, value, needle):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(_config(**{key: value})))
    points = tmp_path / "points.csv"
    points.write_text("image,z,y,x,class\na,,20,30,cell\n")
    before = sorted(p.name for p in run.iterdir())
    only_line(invoke(runner, "train", points, image.parent, "--out", run, "--resume"), "config.json", repr(key), needle)
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.parametrize("key, value", [("classes", "cell"), ("base_filters", "64"), ("channels", 1.5)])
def test_checkpoint_config_of_the_wrong_type_names_the_key(runner, tmp_path, key, value):
    ckpt = tmp_path / "best.pt"
    torch.save({"format": "pointseg.checkpoint/1", "config": _config(**{key: value}), "model": {}}, ckpt)
    only_line(invoke(runner, "export", ckpt, "--out", tmp_path / "m.onnx"), repr(key))


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / get_entry(REMOTE).file).write_bytes((MODELS / "test-2d-gray.onnx").read_bytes())
    return folder


def test_corrupt_cached_model_is_detected_and_fetched_again(runner, site, tmp_path, monkeypatch, image):
    cache = tmp_path / "cache"
    monkeypatch.setenv("POINTSEG_CACHE", str(cache))
    entry = get_entry(REMOTE)
    with serve(site) as url:
        monkeypatch.setenv("POINTSEG_MODELS_URL", url)
        assert invoke(runner, "models", "fetch", REMOTE).exit_code == 0
        cached = cache / entry.file
        data = bytearray(cached.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte: a bad disk, an interrupted copy
        cached.write_bytes(bytes(data))
        res = invoke(runner, "segment", image, "--out-dir", tmp_path / "out", "--model", REMOTE)
        assert res.exit_code == 0, res.output
    assert sha256_of(cached) == entry.sha256
    assert sorted(p.name for p in cache.iterdir()) == [entry.file]


def test_corrupt_cached_model_without_network_is_one_line_and_removed(runner, tmp_path, monkeypatch, image):
    cache = tmp_path / "cache"
    cache.mkdir()
    entry = get_entry(REMOTE)
    (cache / entry.file).write_bytes(b"garbage")
    monkeypatch.setenv("POINTSEG_CACHE", str(cache))
    with serve(tmp_path / "nothing-served") as url:  # the server answers 404
        monkeypatch.setenv("POINTSEG_MODELS_URL", url)
        res = invoke(runner, "segment", image, "--out-dir", tmp_path / "out", "--model", REMOTE)
    only_line(res, f"the cached copy of '{REMOTE}' was corrupt and has been removed", "cannot download")
    assert list(cache.iterdir()) == []
