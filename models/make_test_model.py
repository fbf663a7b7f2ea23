"""Build the tiny, UNTRAINED test models registered in ``registry.txt`` and print their registry rows.

These models exist so that ``pointseg segment`` and ``pointseg models`` can be exercised end to
end before real default models are trained (issue 6). Their weights are random (fixed seed):
their labels mean nothing. Run from the repository root::

    python models/make_test_model.py            # writes models/test-*.onnx, prints registry rows

The output is deterministic for a given torch version, but ONNX bytes can change across torch
releases; the registry's sha256 must be updated whenever the files are rebuilt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from pointseg_cli.export.onnx import export_module
from pointseg_cli.model.metadata import ModelMetadata
from pointseg_cli.zoo import sha256_of

HERE = Path(__file__).resolve().parent
NORM = {"method": "percentile", "low": 1.0, "high": 99.8, "per_channel": True, "clip": True}


def tiny_net(ndim: int, channels: int, n_outputs: int, *, width: int = 4) -> nn.Module:
    """Two convolutions (receptive field 5 voxels): cheap on any CPU."""
    conv = nn.Conv3d if ndim == 3 else nn.Conv2d
    return nn.Sequential(conv(channels, width, 3, padding=1), nn.ReLU(), conv(width, width, 3, padding=1),
                         nn.ReLU(), conv(width, n_outputs, 1))


SPECS = {
    # name: (kind, ndim, channels, tile, embedded)
    "test-2d-gray": ("2d-gray", 2, 1, (256, 256), True),
    "test-2d-rgb": ("2d-rgb", 2, 3, (256, 256), True),
    "test-3d": ("3d", 3, 1, (32, 128, 128), True),
}
DESCRIPTION = (
    "UNTRAINED test model (random weights, 2 tiny convs): for testing the pipeline only, labels are meaningless"
)


def build(name: str, out_dir: Path = HERE) -> Path:
    kind, ndim, channels, tile, _ = SPECS[name]
    torch.manual_seed(sum(map(ord, name)))
    net = tiny_net(ndim, channels, 2).eval()
    meta = ModelMetadata(classes=("object",), ndim=ndim, channels=channels, normalization=NORM, tile=tile,
                         divisor=8)
    return export_module(net, meta, out_dir / f"{name}.onnx").path


def main() -> int:
    rows = []
    for name, (kind, *_rest, embedded) in SPECS.items():
        path = build(name)
        rows.append("\t".join([name, sha256_of(path), path.name, kind, "yes" if embedded else "no", DESCRIPTION]))
    # The same 2D file is also registered as a *downloadable* model, to test fetching.
    gray = HERE / "test-2d-gray.onnx"
    rows.append("\t".join(["test-2d-gray-remote", sha256_of(gray), gray.name, "2d-gray", "no",
                           "UNTRAINED test model served from the release page, for testing downloads only"]))
    sys.stdout.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
