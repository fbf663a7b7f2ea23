"""`pointseg export`: a training run to an ONNX model with metadata, parity-checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import typer

from pointseg_cli.cli._common import console, get_state


def command(
    run_dir: Path = typer.Argument(..., help="Training run directory (config.json + best.pt) or a .pt checkpoint."),
    out: Path = typer.Option(..., "--out", "-o", help="Destination .onnx file (written only if parity holds)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or fp16 weights and input/output."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (at most 18)."),
    tolerance: float | None = typer.Option(
        None, "--tolerance",
        help="Maximum relative parity error max|onnx-torch|/max|torch| (default 1e-4 fp32, 2e-2 fp16).",
    ),
) -> None:
    """Export a trained model to ONNX for `pointseg segment`.

    The graph has dynamic batch and spatial axes and carries the classes, normalisation, tile and
    size divisor of the run. After export, onnxruntime and PyTorch are compared on a random tile;
    above the tolerance the command fails with exit code 2 and writes no file.
    """
    from pointseg_cli.export.onnx import ExportConfig, run_export

    res = run_export(run_dir, out, config=ExportConfig(precision=precision, opset=opset, tolerance=tolerance))
    if not get_state().quiet:
        m = res.metadata
        console.print(
            f"[green]wrote[/] {res.path} ({res.size_bytes / 1e6:.2f} MB, opset {res.opset}, {m.precision}, "
            f"{m.kind}, classes {', '.join(m.classes)}, tile {'×'.join(map(str, m.tile))})"
        )
        console.print(
            f"parity vs PyTorch: max abs error {res.max_abs_error:.3g}, relative {res.max_rel_error:.3g} "
            f"(tolerance {res.tolerance:.3g})"
        )
