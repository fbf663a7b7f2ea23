"""`pointseg segment`: tiled, overlap-blended inference on images and volumes, streamed to disk."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from pointseg_cli.cli._common import RichProgress, console, err_console, get_state
from pointseg_cli.errors import BatchError, ConfigError, PointsegError, check_choice

log = logging.getLogger(__name__)


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


def _kind_of(info) -> str:  # noqa: ANN001 - ImageInfo
    if info.ndim == 3:
        return "3d"
    return "2d-gray" if info.channels == 1 else "2d-rgb"


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
    from pointseg_cli.infer.predictors import DEVICE_CHOICES, PRECISION_CHOICES, make_predictor
    from pointseg_cli.infer.segment import SegmentOptions, output_paths, segment_file
    from pointseg_cli.io.images import find_images, read_info
    from pointseg_cli.zoo import resolve_model

    check_choice("device", device, DEVICE_CHOICES)
    check_choice("precision", precision, PRECISION_CHOICES)
    options = SegmentOptions(
        tile=_parse_tile(tile), overlap=overlap, blend=blend, batch_size=batch_size,
        probabilities=probabilities, preview=preview, stain=not no_stain_normalize,
    )
    paths = find_images(inputs)
    state = get_state()
    predictors: dict[str, object] = {}

    def predictor_for(kind: str):  # noqa: ANN202
        # A model path/name is resolved once; defaults may differ by input kind.
        key = model or kind
        if key not in predictors:
            model_path = resolve_model(model, kind=kind)
            predictors[key] = make_predictor(model_path, device=device, precision=precision)
            pred = predictors[key]
            log.info("model %s runs on %s", model_path, pred.provider)  # type: ignore[attr-defined]
            stain = pred.metadata.normalization.get("stain")  # type: ignore[attr-defined]
            if stain:
                log.info("stain normalisation to %s (%s) %s", stain.get("target", "the training target"),
                         stain.get("method"), "skipped (--no-stain-normalize)" if no_stain_normalize else "on")
        return predictors[key]

    if model is not None:
        predictor_for("3d")  # check --model, --device and --precision before touching the output folder
    out_dir.mkdir(parents=True, exist_ok=True)

    rows: list[tuple[str, str, str, str, str, str]] = []
    failures: list[str] = []
    failed = 0
    with RichProgress() as progress:
        for i, path in enumerate(paths):
            progress("all files", i, len(paths))
            try:
                info = read_info(path, axes=axes)
            except PointsegError as exc:
                failed += 1
                failures.append(f"{path}: {exc}")
                rows.append((path.name, "?", "", "", "[red]failed[/]", ""))
                continue
            shape = "×".join(map(str, info.shape))
            targets = output_paths(out_dir, info.stem, options)
            if not overwrite and all(p.exists() for p in targets.values()):
                rows.append((path.name, shape, "", "", "[yellow]skipped[/] (outputs exist)", ""))
                continue
            # A bad --model or --device, or no default model for this kind: a usage error (exit 2).
            pred = predictor_for(_kind_of(info))
            try:
                res = segment_file(path, out_dir, pred, options=options, axes=axes, progress=progress)
            except PointsegError as exc:
                failed += 1
                failures.append(f"{path}: {exc}")
                rows.append((path.name, shape, "", "", "[red]failed[/]", pred.provider))
                log.debug("segment failed for %s", path, exc_info=True)
                continue
            except MemoryError:
                failed += 1
                failures.append(f"{path}: out of host memory (try a smaller --tile or --batch-size)")
                rows.append((path.name, shape, "", "", "[red]failed[/]", pred.provider))
                continue
            rows.append((
                path.name, shape, f"{res.seconds:.2f} s", f"{res.voxels_per_second / 1e6:.2f} M",
                "[green]ok[/]", res.provider,
            ))
        progress("all files", len(paths), len(paths))

    if not state.quiet or failed:
        table = Table(title=f"pointseg segment → {out_dir}")
        table.add_column("file", overflow="fold")
        for col in ("shape", "time", "voxels/s", "status"):
            table.add_column(col, no_wrap=True)
        table.add_column("provider", overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for line in failures:
        err_console.print(f"[red]failed:[/] {escape(line)}", soft_wrap=True, highlight=False)
    if failed:
        raise BatchError(failed, len(paths))
