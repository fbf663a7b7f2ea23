"""Model metadata: ONNX metadata_props round trip, validation, foreign and broken files."""

from __future__ import annotations

import pytest
import torch

from pointseg_cli.errors import ModelError
from pointseg_cli.model.metadata import ModelMetadata, read_model_metadata

META2D = ModelMetadata(classes=("cell",), ndim=2, channels=1, normalization={"method": "none"}, tile=(32, 32),
                       divisor=8)


def _tiny2d(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)).eval()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_reading_metadata_of_foreign_or_broken_files(tmp_path):
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(_tiny2d(), (torch.zeros(1, 1, 8, 8),), str(plain), dynamo=False)
    with pytest.raises(ModelError, match="lacks pointseg metadata pointseg.classes"):
        read_model_metadata(plain)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        read_model_metadata(junk)
    with pytest.raises(ModelError, match="not found"):
        read_model_metadata(tmp_path / "missing.onnx")


def test_metadata_round_trip_and_validation():
    meta = ModelMetadata(classes=("a",), ndim=3, channels=2, normalization={"method": "fixed", "low": 0, "high": 9},
                         tile=(8, 16, 16), divisor=8)
    assert ModelMetadata.from_props(meta.to_props()) == meta
    assert meta.kind == "3d" and META2D.kind == "2d-gray" and meta.n_outputs == 2
    with pytest.raises(ModelError, match="tile must have 2 positive sizes"):
        ModelMetadata(classes=("a",), ndim=2, channels=1, tile=(8, 8, 8))
    with pytest.raises(ModelError, match="malformed"):
        ModelMetadata.from_props({**meta.to_props(), "pointseg.tile": "[oops"})


def test_precision_is_named_against_the_choices():
    with pytest.raises(ModelError, match="precision must be one of fp32, fp16; got 'int8'"):
        ModelMetadata(classes=("a",), ndim=2, channels=1, tile=(8, 8), precision="int8")


def test_outputs_round_trip_and_default_to_logits_for_older_models():
    meta = ModelMetadata(classes=("a",), ndim=2, channels=1, tile=(8, 8), outputs=("logits", "centers"))
    props = meta.to_props()
    assert props["pointseg.outputs"] == '["logits", "centers"]'
    assert ModelMetadata.from_props(props) == meta and meta.has_centers
    older = {k: v for k, v in props.items() if k != "pointseg.outputs"}  # exported before the key existed
    assert ModelMetadata.from_props(older).outputs == ("logits",)
    with pytest.raises(ModelError, match=r"outputs must be \['logits'\] or \['logits', 'centers'\]; got \['centers'\]"):
        ModelMetadata(classes=("a",), ndim=2, channels=1, tile=(8, 8), outputs=("centers",))
