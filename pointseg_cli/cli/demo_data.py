"""`pointseg demo-data`: write a small synthetic data set with ground truth."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from pointseg_cli.cli._common import RichProgress, console, get_state, progress_enabled
from pointseg_cli.demo import DIFFICULTIES, KINDS, generate_demo_data


def command(
    ctx: typer.Context,
    out_dir: Path = typer.Argument(..., help="Folder to write the images, masks and classes.txt into."),
    kind: str = typer.Option(..., "--kind", "-k", help=f"What to generate: {' | '.join(KINDS)}."),
    n: int = typer.Option(4, "--n", "-n", help="Number of images."),
    size: str | None = typer.Option(
        None,
        "--size",
        help="Spatial size, e.g. 64x256x256 (Z,Y,X) for 3d-nuclei (default) or 256x256 (Y,X) for 2d-he "
        "(default); one number for every axis.",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed; image i depends only on (seed, i)."),
    difficulty: str = typer.Option(
        "medium", "--difficulty", help=f"{' | '.join(DIFFICULTIES)}: crowding, noise, blur, stain variation."
    ),
) -> None:
    """Generate synthetic microscopy with ground truth, to try every command in minutes.

    **3d-nuclei**: uint16 fluorescence volumes (Z,Y,X) of clustered, touching nuclei with
    texture, anisotropic blur, uneven illumination and Poisson + Gaussian noise (in the spirit of
    BBBC024). **2d-he**: RGB H&E-like tiles with three nucleus classes (epithelial, fibroblast,
    lymphocyte) on fibrous stroma, with per-tile stain variation.

    Writes NAME.tif, NAME.labels.tif (instance ids), NAME.classes.tif (class id per pixel) and
    classes.txt (class names in id order).

    Example:

        pointseg demo-data demo3d --kind 3d-nuclei --n 4 --size 32x128x128

        pointseg demo-data demo_he --kind 2d-he --n 8 --difficulty hard --seed 1
    """
    # get_state() without ctx finds no context (typer 0.29 vendors its own click), so pass it.
    state = get_state(ctx)
    with RichProgress(enabled=progress_enabled(state)) as progress:
        result = generate_demo_data(
            out_dir, kind=kind, n=n, size=size, seed=seed, difficulty=difficulty, progress=progress
        )
    if state.quiet:
        return
    table = Table(title=f"{result.kind}: {len(result.images)} images in {result.out_dir}")
    table.add_column("image")
    table.add_column("objects", justify="right")
    for path, count in zip(result.images, result.n_objects, strict=True):
        table.add_row(path.name, str(count))
    console.print(table)
    console.print(f"classes (ids 1..{len(result.class_names)}): {', '.join(result.class_names)}")
