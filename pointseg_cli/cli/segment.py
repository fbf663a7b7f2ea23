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
    from pointseg_cli.infer.batch import FileResult, SegmentBatchResult, SegmentConfig


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
    inputs: list[str] = typer.Argument(
        ..., help="Image files, folders or glob patterns (TIFF, OME-TIFF, OME-Zarr, PNG).", show_default=False
    ),
    out_dir: Path | None = typer.Option(
        None, "--out-dir", "-o", metavar="FOLDER",
        help="Folder for the outputs (default: beside each input).", show_default=False,
    ),
    model: str | None = typer.Option(
        None, "--model", "-m",
        help="Registered model name (see 'pointseg models list'), .onnx file, or training run dir / .pt. "
        "Default: the default model for the input's kind.",
    ),
    tile: str | None = typer.Option(
        None, "--tile", metavar="SIZES",
        help="Tile size, e.g. 256,256 or 32,128,128 (default: the model's, grown up to 4x its voxels where "
        "larger tiles compute fewer overlapping voxels).",
    ),
    overlap: float = typer.Option(
        0.125, "--overlap",
        help="Minimum tile overlap, fraction of the tile in [0, 1) (without --tile: of the model's tile). The "
        "default agrees with one whole-volume pass on >= 99.9% of voxels (docs/segment.md)."),
    blend: str = typer.Option("gaussian", "--blend", help="Blend window: gaussian, linear or constant."),
    batch_size: int = typer.Option(4, "--batch-size", help="Tiles per model call."),
    precision: str = typer.Option(
        "auto", "--precision", help="auto, fp32 or fp16 (ONNX models: must match the exported precision)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (cuda fails if no GPU can be used)."),
    probabilities: str | None = typer.Option(
        None, "--probabilities", metavar="tif|zarr",
        help="Also write float16 class probabilities as a TIFF or an OME-Zarr image.",
    ),
    preview: bool = typer.Option(
        False, "--preview", help="Also write a PNG: object outlines over the image (orthogonal views of a volume)."
    ),
    instances: str = typer.Option(
        "auto", "--instances", metavar="auto|centers|distance|components|none",
        help="Object instances written as <stem>.instances.tif and <stem>.objects.csv: 'centers' splits touching "
        "objects at the peaks of the model's centre output, 'distance' at the peaks of the distance to the "
        "boundary, 'components' keeps connected regions whole; 'auto' is 'centers' when the model has a centre "
        "output, else 'distance'; 'none' writes no instances.",
    ),
    min_distance: float = typer.Option(
        3.0, "--min-distance", metavar="PIXELS",
        help="Instances: markers closer than this (in pixels of the finest axis) are one object; raise it if "
        "objects are split in two, lower it if touching objects are merged.",
    ),
    peak_threshold: float | None = typer.Option(
        None, "--peak-threshold", metavar="NUMBER",
        help="Instances: smallest marker value, the centre map for 'centers' (0..1) [0.3] or the distance to "
        "the background in pixels for 'distance' [0].",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo inputs whose outputs already exist."),
    axes: str | None = typer.Option(None, "--axes", help="Override the stored axes, e.g. ZYX, CZYX, YXC."),
    voxel_size: str | None = typer.Option(
        None, "--voxel-size", metavar="Z,Y,X",
        help="Voxel size in µm, overriding the image's (e.g. 2,0.5,0.5; one value for all axes). "
        "Written into every output.",
    ),
    no_stain_normalize: bool = typer.Option(
        False, "--no-stain-normalize",
        help="Skip the model's H&E stain normalisation (for images already normalised to its target).",
    ),
    dask: bool = typer.Option(
        False, "--dask", help="Run on a local Dask cluster, one worker process per core (needs pointseg[distributed]). "
        "Several inputs run as one task each; a single input is split into blocks and written as <stem>.labels.zarr.",
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Run on an existing Dask cluster instead, e.g. tcp://host:8786."
    ),
    dask_workers: int | None = typer.Option(
        None, "--dask-workers", help="Worker processes of a local Dask cluster (default: one per core); implies --dask."
    ),
) -> None:
    """Segment images and volumes with a trained model; writes `<stem>.labels.tif` (class ids),
    `<stem>.instances.tif` (object ids) and `<stem>.objects.csv` (one row per object).

    Outputs go beside each input, or into --out-dir. Without --model each input gets the default
    model of its kind (2D grayscale, volume); the model used is printed, and every output records
    it (name, sha256), the pointseg version, the options and the voxel size.

    Inputs are processed one by one: a file whose outputs exist is skipped (unless --overwrite), a
    file that fails is reported and the batch goes on; the exit code is 1 if any file failed.
    Outputs are written atomically, so an interrupted run leaves no partial files.
    A model trained with --stain-normalize maps each RGB input's stain colours onto its training
    target first (no target image needed; --no-stain-normalize switches this off).
    """
    from pointseg_cli.devices import resolve_device
    from pointseg_cli.infer.batch import SegmentConfig, run_segment
    from pointseg_cli.parsing import parse_floats
    from pointseg_cli.zoo import model_backend

    config = SegmentConfig(
        tile=_parse_tile(tile), overlap=overlap, blend=blend, batch_size=batch_size, precision=precision,
        probabilities=probabilities, preview=preview, overwrite=overwrite, axes=axes, stain=not no_stain_normalize,
        voxel_size=parse_floats(voxel_size, what="--voxel-size"), instances=instances,
        min_distance=min_distance, peak_threshold=peak_threshold,
    )
    if dask or scheduler or dask_workers is not None:
        result = _run_dask(inputs, config, out_dir=out_dir, model=model, device=device, scheduler=scheduler,
                           workers=dask_workers)
    else:
        resolved = resolve_device(device, backend=model_backend(model))
        with RichProgress() as progress:
            result = run_segment(inputs, config, out_dir=out_dir, model=model, device=resolved, progress=progress)
    _render(result)
    if result.n_failed:
        raise BatchError(result.n_failed, len(result.files))


def _run_dask(inputs: list[str], config: SegmentConfig, *, out_dir: Path, model: str | None, device: str,
              scheduler: str | None, workers: int | None) -> SegmentBatchResult:
    """The same batch on Dask; the device is resolved on each worker, for its own hardware."""
    import logging

    from pointseg_cli.distributed import ClusterConfig, require_distributed, run_segment_distributed

    cluster = ClusterConfig(scheduler=scheduler, workers=workers)
    require_distributed()  # exit 2 with the install command when missing
    # Dask logs every connection at INFO; show its warnings only, unless debugging.
    logging.getLogger("distributed").setLevel(logging.DEBUG if get_state().debug else logging.WARNING)
    with RichProgress() as progress:
        return run_segment_distributed(inputs, config, out_dir=out_dir, model=model, device=device, cluster=cluster,
                                       progress=progress)


def _row(res: FileResult) -> tuple[str, str, str, str, str, str]:
    shape = "×".join(map(str, res.shape)) if res.shape is not None else "?"
    if res.status == "ok":
        speed = (res.voxels_per_second or 0.0) / 1e6
        return res.path.name, shape, f"{res.seconds:.2f} s", f"{speed:.2f} M", "[green]ok[/]", res.provider
    status = "[red]failed[/]" if res.status == "failed" else f"[yellow]skipped[/] ({escape(res.message)})"
    return res.path.name, shape, "", "", status, res.provider


def _where(result: SegmentBatchResult) -> str:
    """Where the outputs went: the output folder, or the input folders they were written beside."""
    if result.out_dir is not None:
        return f"outputs in {result.out_dir}"
    written = [p for f in result.files for p in f.outputs.values()]
    if len(written) <= 4:
        return "wrote " + ", ".join(str(p) for p in written)
    folders = sorted({str(p.parent) for p in written})
    return "outputs beside the inputs in " + ", ".join(folders[:3]) + (" ..." if len(folders) > 3 else "")


def _render(result: SegmentBatchResult) -> None:
    """Model line, summary table and where the outputs are (unless --quiet), one line per failed file."""
    quiet = get_state().quiet
    if not quiet:
        for m in result.models:
            sha = f"sha256 {m.sha256[:12]}" if m.sha256 else "in memory"
            console.print(escape(f"model: {m.name} ({sha})"), soft_wrap=True, highlight=False)
    if not quiet or result.n_failed:
        title = f"pointseg segment → {result.out_dir}" if result.out_dir is not None else "pointseg segment"
        table = Table(title=title)
        table.add_column("file", overflow="fold")
        for col in ("shape", "time", "voxels/s", "status"):
            table.add_column(col, no_wrap=True)
        table.add_column("provider", overflow="fold")
        for res in result.files:
            table.add_row(*_row(res))
        console.print(table)
    if not quiet and result.n_ok:
        console.print(escape(_where(result)), soft_wrap=True, highlight=False)
    for res in result.failures:
        err_console.print(f"[red]failed:[/] {escape(f'{res.path}: {res.message}')}", soft_wrap=True, highlight=False)
