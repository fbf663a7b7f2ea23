"""`pointseg objectness`: grow soft labels from points (seeded region growing)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from pointseg_cli.cli._common import RichProgress, console, get_state, progress_enabled
from pointseg_cli.errors import BatchError, InputError
from pointseg_cli.io.points import parse_classes
from pointseg_cli.objectness import DEFAULT_W, ObjectnessConfig
from pointseg_cli.objectness.batch import run_objectness
from pointseg_cli.parsing import parse_floats, parse_ints
from pointseg_cli.preprocess.normalize import Normalization


def command(
    ctx: typer.Context,
    points: Path = typer.Argument(..., help="Canonical points CSV (image,z,y,x,class)."),
    images: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    w: float = typer.Option(DEFAULT_W, "--w", help="Objectness decay in exp(-w*d), intensities scaled to [0, 1]."),
    mode: str = typer.Option("paper", "--mode", help="paper (label when first reached) or geodesic (exact)."),
    cost: str = typer.Option(
        "seed", "--cost",
        help="Step cost: seed (squared difference to the seed's 3x3(x3) mean, default) or parent "
        "(to the parent pixel; needs a larger --w, about 10x).",
    ),
    connectivity: int = typer.Option(1, "--connectivity", help="1 = face neighbours ... ndim = full."),
    spacing: str = typer.Option(
        None, "--spacing", metavar="Z,Y,X",
        help="Step-cost spacing per spatial axis, e.g. 2,0.5,0.5; overrides the voxel size for growing.",
    ),
    voxel_size: str = typer.Option(
        None, "--voxel-size", metavar="Z,Y,X",
        help="Voxel size in µm, overriding the images' (one value for all axes); written into the outputs.",
    ),
    use_voxel_size: bool = typer.Option(
        True, "--use-voxel-size/--no-use-voxel-size",
        help="Grow with each image's voxel size as spacing, so anisotropic volumes are grown in µm.",
    ),
    stain_normalize: Path = typer.Option(
        None, "--stain-normalize", help="RGB target image: normalise H&E stain colours to it."
    ),
    stain_method: str = typer.Option("vahadane", "--stain-method", help="vahadane or macenko."),
    diffuse: int = typer.Option(0, "--diffuse", help="Perona-Malik diffusion iterations (0 = off)."),
    kappa: float = typer.Option(0.1, "--kappa", help="Diffusion edge threshold (normalised intensity)."),
    equalize: bool = typer.Option(False, "--equalize", help="Histogram-equalise each image first."),
    low: float = typer.Option(1.0, "--low", help="Percentile mapped to 0."),
    high: float = typer.Option(99.8, "--high", help="Percentile mapped to 1."),
    axes: str = typer.Option(None, "--axes", help="Override the images' stored axes, e.g. CZYX."),
    classes: str = typer.Option(None, "--classes", help="Class order, comma separated (default: sorted)."),
    preview: bool = typer.Option(False, "--preview", help="Also write <stem>.preview.png overlays."),
    tune: Path = typer.Option(
        None, "--tune", help="Folder of label masks: choose w and diffusion by IoU of Obj>0.5 with them."
    ),
    tune_diffusion: str = typer.Option(
        "0,5,10,20,40", "--tune-diffusion", help="Diffusion iterations tried by --tune."
    ),
    workers: int = typer.Option(1, "--workers", help="Images processed in parallel, one process each."),
) -> None:
    """Grow one region per point and write soft labels, regions and boundary background.

    For each image with points, writes <stem>.objectness.tif (float32 (K+1, ...) soft labels),
    <stem>.regions.tif, <stem>.background.tif, optionally <stem>.preview.png, and objectness.json
    (settings, class order, tuning) in the output folder.
    """
    state = get_state(ctx)  # pass ctx: typer 0.29 vendors click, so a context-less lookup finds nothing
    config = ObjectnessConfig(
        w=w,
        mode=mode,
        cost=cost,
        connectivity=connectivity,
        spacing=parse_floats(spacing, what="--spacing"),
        voxel_spacing=use_voxel_size,
        normalization=Normalization(method="percentile", low=low, high=high),
        stain_method=stain_method if stain_normalize is not None else None,
        stain_target=str(stain_normalize) if stain_normalize is not None else None,
        diffusion_iterations=diffuse,
        diffusion_kappa=kappa,
        equalize=equalize,
    )
    grid = parse_ints(tune_diffusion, what="--tune-diffusion", minimum=0) or ()
    with RichProgress(enabled=progress_enabled(state)) as bar:
        run = run_objectness(
            points, images, out, config=config, classes=parse_classes(classes), axes=axes, preview=preview,
            stain_target=stain_normalize, tune_masks=tune, diffusion_grid=grid, workers=workers, progress=bar,
            voxel_size=parse_floats(voxel_size, what="--voxel-size"), use_voxel_size=use_voxel_size,
        )
    if state.quiet and not run.failed:
        return
    if run.tuned is not None:
        t = Table(title=f"--tune: IoU(Obj > 0.5, mask) on {tune}")
        for col in ("diffusion", "best w", "IoU"):
            t.add_column(col, justify="right")
        for d, bw, iou in run.tuned.table:
            t.add_row(str(d), f"{bw:.4g}", f"{iou:.4f}")
        console.print(t)
        console.print(
            f"chosen: w = {run.tuned.w:.4g}, diffusion = {run.tuned.diffusion_iterations} "
            f"(IoU {run.tuned.iou:.4f})"
        )
    t = Table(title=f"objectness (w={run.config.w:.4g}, mode={run.config.mode}, cost={run.config.cost}) -> {out}")
    for col, just in (("image", "left"), ("seeds", "right"), ("shape", "right"), ("seconds", "right"),
                      ("status", "left")):
        t.add_column(col, justify=just)
    for o in run.outcomes:
        status = "[green]ok[/]" if o.error is None else f"[red]{escape(o.error)}[/]"
        if o.note:
            status = f"[yellow]skipped[/] ({escape(o.note)})"
        t.add_row(o.stem, str(o.seeds), "x".join(map(str, o.shape)), f"{o.seconds:.2f}", status)
    console.print(t)
    if run.skipped:
        console.print(f"{len(run.skipped)} image(s) without points skipped")
    if run.missing:
        console.print(f"[yellow]{len(run.missing)} image name(s) in the points file not found:[/] "
                      + escape(", ".join(run.missing[:5])))
    console.print(f"classes: {', '.join(run.classes)}; settings in {run.sidecar}")
    if run.failed:
        if len(run.outcomes) == 1:
            raise InputError(run.outcomes[0].error or "failed")
        raise BatchError(run.failed, len(run.outcomes))
