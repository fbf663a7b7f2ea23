"""`pointseg segment`: tiled, overlap-blended inference on images and volumes, streamed to disk."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from pointseg_cli.cli._common import RichProgress, console, err_console, get_state
from pointseg_cli.errors import BatchError, ConfigError

if TYPE_CHECKING:
    from pointseg_cli.infer.batch import FileResult, SegmentBatchResult


def _parse_tile(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        tile = tuple(int(p) for p in text.lower().replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise ConfigError(f"--tile must be sizes like 256,256 or 32,128,128; got {text!r}") from None
    if len(tile) not in (2, 3) or any(t < 1 for t in tile):
        raise ConfigError(f"--tile must have 2 or 3 positive sizes; got {text!r}")
    return tile


def command(
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns (TIFF, OME-TIFF, zarr)."),
    out_dir: Path = typer.Option(..., "--out-dir", "-o", help="Folder for <stem>.labels.tif and other outputs."),
    model: str | None = typer.Option(
        None, "--model", "-m",
        help="Registered model name (see 'pointseg models list'), .onnx file, or training run dir / .pt. "
        "Default: the default model for the input's kind.",
    ),
    tile: str | None = typer.Option(
        None, "--tile", help="Tile size, e.g. 256,256 or 32,128,128 (default: the model's)."
    ),
    overlap: float = typer.Option(0.25, "--overlap", help="Minimum tile overlap, fraction of the tile in [0, 1)."),
    blend: str = typer.Option("gaussian", "--blend", help="Blend window: gaussian, linear or constant."),
    batch_size: int = typer.Option(4, "--batch-size", help="Tiles per model call."),
    precision: str = typer.Option(
        "auto", "--precision", help="auto, fp32 or fp16 (ONNX models: must match the exported precision)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (cuda fails if no GPU can be used)."),
    probabilities: str | None = typer.Option(
        None, "--probabilities", help="Also write float16 class probabilities as 'tif' or 'zarr'."
    ),
    preview: bool = typer.Option(False, "--preview", help="Also write <stem>.preview.png (overlay on a slice)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo inputs whose outputs already exist."),
    axes: str | None = typer.Option(None, "--axes", help="Override the stored axes, e.g. ZYX, CZYX, YXC."),
    no_stain_normalize: bool = typer.Option(
        False, "--no-stain-normalize",
        help="Skip the model's H&E stain normalisation (for images already normalised to its target).",
    ),
) -> None:
    """Segment images and volumes with a trained model; writes <stem>.labels.tif (uint8 class ids).

    Inputs are processed one by one: a file whose outputs exist is skipped (unless --overwrite), a
    file that fails is reported and the batch goes on; the exit code is 1 if any file failed.
    Outputs are written atomically, so an interrupted run leaves no partial files.
    A model trained with --stain-normalize maps each RGB input's stain colours onto its training
    target first (no target image needed; --no-stain-normalize switches this off).

    Example
    -------
    pointseg segment volumes/*.tif --out-dir seg --model test-3d --probabilities zarr --preview
    """
    from pointseg_cli.devices import resolve_device
    from pointseg_cli.infer.batch import SegmentConfig, run_segment
    from pointseg_cli.zoo import model_backend

    config = SegmentConfig(
        tile=_parse_tile(tile), overlap=overlap, blend=blend, batch_size=batch_size, precision=precision,
        probabilities=probabilities, preview=preview, overwrite=overwrite, axes=axes, stain=not no_stain_normalize,
    )
    resolved = resolve_device(device, backend=model_backend(model))
    with RichProgress() as progress:
        result = run_segment(inputs, config, out_dir=out_dir, model=model, device=resolved, progress=progress)
    _render(result)
    if result.n_failed:
        raise BatchError(result.n_failed, len(result.files))


def _row(res: FileResult) -> tuple[str, str, str, str, str, str]:
    shape = "×".join(map(str, res.shape)) if res.shape is not None else "?"
    if res.status == "ok":
        speed = (res.voxels_per_second or 0.0) / 1e6
        return res.path.name, shape, f"{res.seconds:.2f} s", f"{speed:.2f} M", "[green]ok[/]", res.provider
    status = "[red]failed[/]" if res.status == "failed" else f"[yellow]skipped[/] ({escape(res.message)})"
    return res.path.name, shape, "", "", status, res.provider


def _render(result: SegmentBatchResult) -> None:
    """The summary table (unless --quiet and nothing failed), then one line per failed file."""
    if not get_state().quiet or result.n_failed:
        table = Table(title=f"pointseg segment → {result.out_dir}")
        table.add_column("file", overflow="fold")
        for col in ("shape", "time", "voxels/s", "status"):
            table.add_column(col, no_wrap=True)
        table.add_column("provider", overflow="fold")
        for res in result.files:
            table.add_row(*_row(res))
        console.print(table)
    for res in result.failures:
        err_console.print(f"[red]failed:[/] {escape(f'{res.path}: {res.message}')}", soft_wrap=True, highlight=False)
