from __future__ import annotations

from pointseg_cli import __version__
from pointseg_cli.cli.app import app

COMMANDS = ["annotate-import", "objectness", "train", "export", "segment", "evaluate", "models", "demo-data"]


def test_version(runner):
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert __version__ in res.output


def test_help_lists_every_command(runner):
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for name in COMMANDS:
        assert name in res.output


def test_every_command_help_has_an_example(runner):
    for name in COMMANDS:
        if name == "models":
            continue
        res = runner.invoke(app, [name, "--help"], terminal_width=200)
        assert res.exit_code == 0, (name, res.output)
        assert "Example" in res.output and f"pointseg {name} " in res.output, f"{name} --help shows no example"
