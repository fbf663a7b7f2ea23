"""Networks: output shapes, the factory, and ONNX export with dynamic spatial axes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointseg_cli.errors import ConfigError
from pointseg_cli.model import NetConfig, build_model
from pointseg_cli.nets import FPN, UNet3D, forward_heads
from pointseg_cli.nets.fpn import ResNetEncoder


@pytest.mark.parametrize("encoder", ["resnet18", "resnet34", "resnet50"])
def test_fpn_output_at_input_resolution(encoder: str) -> None:
    torch.manual_seed(0)
    net = FPN(3, 4, encoder=encoder, base_filters=4).eval()
    with torch.no_grad():
        y = net(torch.randn(2, 3, 64, 96))
    assert y.shape == (2, 4, 64, 96)
    assert torch.isfinite(y).all()


def test_resnet_strides_and_widths() -> None:
    enc = ResNetEncoder(1, name="resnet50", width=8)
    feats = enc(torch.randn(1, 1, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    assert [f.shape[1] for f in feats] == [32, 64, 128, 256]  # bottleneck expansion 4


@pytest.mark.parametrize("growth", [1, 2])
def test_unet3d_shapes(growth: int) -> None:
    net = UNet3D(2, 3, base_filters=4, filter_growth=growth).eval()
    with torch.no_grad():
        y = net(torch.randn(1, 2, 8, 16, 24))
    assert y.shape == (1, 3, 8, 16, 24)
    widths = [m.out_channels for m in net.up]
    assert widths == ([4, 4, 4] if growth == 1 else [16, 8, 4])


def _export_and_compare(net: torch.nn.Module, example: torch.Tensor, other: torch.Tensor, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    net.eval()
    path = tmp_path / "m.onnx"
    spatial = {i: f"s{i}" for i in range(2, example.ndim)}
    torch.onnx.export(
        net,
        (example,),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "n", **spatial}, "logits": {0: "n", **spatial}},
        opset_version=17,
        dynamo=False,
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for x in (example, other):  # the second input has other spatial sizes: axes are dynamic
        with torch.no_grad():
            ref = net(x).numpy()
        got = sess.run(None, {"image": x.numpy()})[0]
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4)


def test_fpn_onnx_export_dynamic_axes(tmp_path) -> None:
    torch.manual_seed(0)
    net = FPN(1, 3, encoder="resnet18", base_filters=4)
    _export_and_compare(net, torch.randn(1, 1, 64, 64), torch.randn(2, 1, 96, 32), tmp_path)


def test_unet3d_onnx_export_dynamic_axes(tmp_path) -> None:
    torch.manual_seed(0)
    net = UNet3D(1, 2, base_filters=4, filter_growth=2)
    _export_and_compare(net, torch.randn(1, 1, 8, 16, 16), torch.randn(1, 1, 16, 8, 24), tmp_path)


def test_unet3d_rejects_bad_filter_growth() -> None:
    with pytest.raises(ConfigError, match="filter_growth"):
        UNet3D(1, 2, filter_growth=3)


@pytest.mark.parametrize(
    ("net", "x"),
    [
        (FPN(1, 3, encoder="resnet18", base_filters=4, center_head=True), torch.randn(2, 1, 64, 32)),
        (UNet3D(1, 3, base_filters=4, filter_growth=2, center_head=True), torch.randn(2, 1, 8, 16, 24)),
    ],
)
def test_center_head_outputs_a_map_in_unit_range(net: torch.nn.Module, x: torch.Tensor) -> None:
    net.eval()
    with torch.no_grad():
        out = forward_heads(net, x)
        logits = net(x)
    assert net.output_names == ("logits", "centers")
    assert out["centers"].shape == (x.shape[0], 1, *x.shape[2:])
    assert ((out["centers"] >= 0) & (out["centers"] <= 1)).all()
    torch.testing.assert_close(out["logits"], logits)  # forward() stays the class logits


def test_center_head_follows_the_losses_and_old_weights_still_load() -> None:
    old = {"arch": "unet3d", "classes": ["a"], "channels": 1, "base_filters": 4, "losses": ["pce", "img", "obj"]}
    new = {**old, "losses": ["pce", "img", "obj", "center"]}
    assert not NetConfig.from_mapping(old).center_head and NetConfig.from_mapping(new).center_head
    assert NetConfig.from_mapping(new).output_names == ("logits", "centers")
    assert not NetConfig.from_mapping({"arch": "fpn", "classes": ["a"], "channels": 1}).center_head  # no losses
    plain, headed = build_model(old), build_model(new)
    assert plain.center is None and plain.output_names == ("logits",)
    assert set(forward_heads(plain.eval(), torch.randn(1, 1, 8, 8, 8))) == {"logits"}
    # a checkpoint saved without the head loads into a network built from its (old) config
    build_model(old).load_state_dict(plain.state_dict())
    missing = headed.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("center.") for k in missing)
