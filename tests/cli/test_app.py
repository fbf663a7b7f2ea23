from __future__ import annotations

import pytest

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


def _app_with(cmd):
    import typer

    from pointseg_cli.cli.app import PointsegGroup, root

    test_app = typer.Typer(cls=PointsegGroup)
    test_app.callback()(root)
    test_app.command("boom")(cmd)
    test_app.command("other")(lambda: None)
    return test_app


@pytest.mark.parametrize(
    "message",
    [
        "points file has 3-D coordinates but image 'a.tif' is 2-D (5, 5)",
        "class [nucleus] unknown; expected one of [bold] or [/]",  # Rich markup must not eat brackets
    ],
)
def test_pointseg_error_is_one_verbatim_line_and_exit_2(runner, message):
    from pointseg_cli.errors import InputError

    def boom() -> None:
        raise InputError(message)

    res = runner.invoke(_app_with(boom), ["boom"])
    assert res.exit_code == 2
    assert message in res.stderr
    assert "Traceback" not in res.output


def test_debug_shows_the_exception(runner):
    from pointseg_cli.errors import InputError

    def boom() -> None:
        raise InputError("bad")

    res = runner.invoke(_app_with(boom), ["--debug", "boom"])
    assert isinstance(res.exception, InputError)


def test_batch_error_exits_1(runner):
    from pointseg_cli.errors import BatchError

    def boom() -> None:
        raise BatchError(2, 5)

    res = runner.invoke(_app_with(boom), ["boom"])
    assert res.exit_code == 1
    assert "2 of 5 inputs failed" in res.stderr


def test_global_options_reach_commands_without_ctx(runner):
    from pointseg_cli.cli._common import get_state

    seen = {}

    def boom() -> None:
        seen["state"] = get_state()

    res = runner.invoke(_app_with(boom), ["--quiet", "--debug", "boom"])
    assert res.exit_code == 0
    assert seen["state"].quiet and seen["state"].debug
