"""`raiox.kit.cli_output`: what a command prints on stdout is laid out as before in a terminal and whole when piped."""

import io
import sys

from rich.table import Table


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_keeps_richs_console_and_a_pipe_gets_no_width_limit(monkeypatch, capsys):
    from raiox.kit.cli_output import PIPED_WIDTH, add_row, stdout_console

    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("FORCE_COLOR", "1")  # colours forced do not make a pipe a terminal
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", _Terminal())  # a terminal 60 columns wide
        assert stdout_console().width == 60
    piped = stdout_console()  # pytest's captured stdout is no terminal, as a pipe
    assert piped.width == PIPED_WIDTH

    table = Table()
    table.add_column("name")
    table.add_column("scopes")
    add_row(table, "Strong SW [HE] " + "y" * 100, None)
    monkeypatch.delenv("FORCE_COLOR")
    stdout_console().print(table)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if "Strong SW [HE] " + "y" * 100 in line and " - " in line], lines
