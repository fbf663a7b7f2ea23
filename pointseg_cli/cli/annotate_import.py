"""`pointseg annotate-import`: point annotations (or instance masks) → canonical points CSV."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from pointseg_cli.annotate import AnnotateImportConfig, ImportResult, run_annotate_import
from pointseg_cli.cli._common import RichProgress, console, get_state, progress_enabled
from pointseg_cli.io.point_formats import FORMATS
from pointseg_cli.io.points import parse_classes
from pointseg_cli.parsing import parse_mapping


def command(
    ctx: typer.Context,
    inputs: list[Path] = typer.Argument(
        None,
        help="Points files: CSV, napari points CSV, QuPath GeoJSON or Fiji Cell Counter XML.",
        show_default=False,
    ),
    images: Path | None = typer.Option(
        None, "--images", "-i", help="Folder of the images the points belong to (shapes read from metadata)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Canonical points CSV to write (image,z,y,x,class)."),
    fmt: str = typer.Option("auto", "--format", "-f", help=f"Input format: {', '.join(FORMATS)}."),
    image: str | None = typer.Option(None, "--image", help="Assign every point to this image (name or stem)."),
    classes: str | None = typer.Option(
        None, "--classes",
        help="Object classes in id order, comma-separated (default: sorted names); matched to the files' "
        "class names without regard to case.",
    ),
    class_map: str | None = typer.Option(
        None, "--class-map", help="Rename classes first, e.g. 'Tumor=tumour,Type 1=nucleus' (case is ignored)."
    ),
    default_class: str = typer.Option(
        "object", "--default-class", help="Class of points whose file gives no class."
    ),
    drop_invalid: bool = typer.Option(
        False, "--drop-invalid", help="Drop points outside the image and duplicates (counted) instead of failing."
    ),
    axes: str | None = typer.Option(None, "--axes", help="Override the images' axes, e.g. ZCYX."),
    from_masks: Path | None = typer.Option(
        None, "--from-masks", help="Make one point per instance of the label images in this folder instead."
    ),
    mask_class: str = typer.Option("nucleus", "--mask-class", help="Class name of points made from masks."),
    jitter: float = typer.Option(0.0, "--jitter", help="With --from-masks: random offset up to PX pixels."),
    seed: int = typer.Option(0, "--seed", help="Random seed for --jitter."),
) -> None:
    """Import point annotations into the canonical points CSV (image,z,y,x,class).

    Formats: plain CSV, napari points CSV, QuPath GeoJSON, Fiji Cell Counter XML (--format auto detects them).

    Points go to images by an image column, by the points file's name (= image stem), or by --image.

    They are checked against the image shapes (metadata only) and written atomically.

    Class names are renamed by --class-map, then matched to --classes without regard to case.

    With --from-masks, one point per labelled instance is placed instead (interior pixel nearest the centroid).
    """
    state = get_state(ctx)  # pass ctx: typer 0.29 vendors click, so a context-less lookup finds nothing
    renames = parse_mapping(class_map, what="--class-map", example="Tumor=tumour,Type 1=nucleus")
    config = AnnotateImportConfig(
        fmt=fmt, image=image, classes=parse_classes(classes), class_map=tuple(renames.items()),
        default_class=default_class, drop_invalid=drop_invalid, axes=axes, mask_class=mask_class, jitter=jitter,
        seed=seed,
    )
    with RichProgress(enabled=progress_enabled(state), transient=True) as progress:
        result = run_annotate_import(inputs or [], out=out, images=images, from_masks=from_masks, config=config,
                                     progress=progress)
    if not state.quiet:
        _render(result)


def _render(result: ImportResult) -> None:
    names = result.table.class_names
    table = Table(title=f"{len(result.table)} points → {result.out}", title_justify="left")
    table.add_column("image")
    table.add_column("shape")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right")
    counts = result.counts()
    for stem, per_class in counts.items():
        table.add_row(stem, "×".join(map(str, result.images[stem])), *(str(per_class[c]) for c in names),
                      str(sum(per_class.values())))
    totals = [sum(c[n] for c in counts.values()) for n in names]
    table.add_section()
    table.add_row(f"{len(counts)} image(s)", "", *map(str, totals), str(sum(totals)), style="bold")
    console.print(table)
    if result.dropped_out_of_bounds or result.dropped_duplicates:
        console.print(
            f"dropped {result.dropped_out_of_bounds} point(s) outside the image and "
            f"{result.dropped_duplicates} duplicate(s)"
        )
    if result.images_without_points:
        shown = ", ".join(result.images_without_points[:5])
        more = " …" if len(result.images_without_points) > 5 else ""
        console.print(f"{len(result.images_without_points)} image(s) without points: {shown}{more}")
