"""`pointseg models`: list registered models and fetch downloadable ones into the cache."""

from __future__ import annotations

import typer
from rich.table import Table

from pointseg_cli.cli._common import TidyCommand, TidyGroup, command_help, console

app = typer.Typer(
    help=command_help("List and fetch pretrained models.", "models"),
    no_args_is_help=True,
    cls=TidyGroup,
    rich_markup_mode="markdown",
)


@app.command("list", cls=TidyCommand, help=command_help(
    "List registered models: name, kind, where it lives (embedded / cached / not downloaded).", "models list"))
def list_models() -> None:
    """List registered models: name, kind, where it lives (embedded / cached / not downloaded)."""
    from pointseg_cli import zoo

    table = Table(title="pointseg models")
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("description", overflow="fold")
    for entry in zoo.read_registry():
        if entry.embedded:
            status = "[green]embedded[/]"
        elif zoo.cached_path(entry) is not None:
            status = "[green]cached[/]"
        else:
            status = "[yellow]not downloaded[/]"
        table.add_row(entry.name, entry.kind, status, entry.description)
    console.print(table)
    console.print(f"cache: {zoo.cache_dir()}  ·  download base: {zoo.models_url()}")


@app.command("fetch", cls=TidyCommand, help=command_help(
    "Download a registered model into the cache (sha256-checked) and print its path.", "models fetch"))
def fetch_model(
    name: str = typer.Argument(..., help="Registered model name (see 'pointseg models list')."),
) -> None:
    """Download a registered model into the cache (sha256-checked) and print its path."""
    from pointseg_cli import zoo

    path = zoo.fetch(name)
    console.print(str(path), soft_wrap=True)
