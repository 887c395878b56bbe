"""`raiox GROUP --help` lists each command with its docstring's first paragraph on one row: Rich's markup mode kept
the docstrings' source line breaks, which cut rows mid-sentence (`... --embedder), from` / `its stored fixture box`)."""

import inspect

import pytest
import typer
import typer.rich_utils
from typer.testing import CliRunner

from raiox.cli import app


def _groups(typer_app: typer.Typer, path: tuple[str, ...] = ()):
    yield path, typer_app
    for group in typer_app.registered_groups:
        yield from _groups(group.typer_instance, (*path, group.name))


@pytest.mark.parametrize("path", [path for path, _ in _groups(app)], ids=lambda p: " ".join(p) or "raiox")
def test_every_listed_command_has_its_first_paragraph_on_one_row(path, monkeypatch):
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 2000)  # wide enough for any paragraph on one row
    typer_app = dict(_groups(app))[path]
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()
    assert typer_app.registered_commands
    for info in typer_app.registered_commands:
        first = " ".join(inspect.getdoc(info.callback).split("\n\n")[0].split())
        assert any(first in row for row in rows), (info.callback.__name__, first, result.output)
