"""`pointseg demo-data`: write a small synthetic data set with ground truth."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from pointseg_cli.cli._common import RichProgress, console, get_state, progress_enabled
from pointseg_cli.demo import DIFFICULTIES, KINDS, generate_demo_data


def command(
    ctx: typer.Context,
    out_dir: Path = typer.Argument(..., help="Folder to write the images, masks, classes.txt (and points) into."),
    kind: str = typer.Option(..., "--kind", "-k", help=f"What to generate: {' | '.join(KINDS)}."),
    n: int = typer.Option(4, "--n", "-n", help="Number of images."),
    size: str | None = typer.Option(
        None,
        "--size",
        help="Spatial size in pixels, ZxYxX for 3D kinds, YxX for 2D ones; one number for every axis. "
        "Defaults: 3d-nuclei 64x256x256, 3d-sim 40x384x384, 2d-he and 2d-gray 256x256.",
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
    lymphocyte) on fibrous stroma, with per-tile stain variation. **2d-gray**: grayscale
    fluorescence nuclei (DAPI/Hoechst-like), touching, with varied brightness. **3d-sim**:
    SIM-like volumes of retinal pigment epithelium cells, voxels 0.125 x 0.04 x 0.04 µm (Z,Y,X)
    recorded in the files, hundreds of touching granules per cell in three classes
    (lipofuscin, melanolipofuscin, melanosome), with SIM artefacts and noise.

    Writes NAME.tif, NAME.masks.tif (instance ids), NAME.classes.tif (class id per pixel) and
    classes.txt (class names in id order). 2d-gray and 3d-sim also write points.csv (one click
    per object); 3d-sim also split.csv (train/val/test per cell) and points.trainval.csv (the
    clicks of the train and validation cells).
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
    if result.points is not None:
        console.print(f"points (one click per object): {result.points}")
    if result.split is not None:
        parts = [f"{name}: {', '.join(stems) or '-'}" for name, stems in result.splits.items()]
        console.print(f"split by cell ({result.split.name}): {'; '.join(parts)}")
