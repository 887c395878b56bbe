"""`raiox.kit.cli_output`: what a command prints on stdout is laid out as before in a terminal and whole when piped;
progress in a log (not a terminal) comes as lines while the work goes on."""

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


def test_line_progress_prints_a_line_at_the_start_every_interval_and_at_the_end():
    """A deploy's log shows a reindex of minutes going on: Rich's bar, not interactive there, would print only once
    it is over."""
    from rich.console import Console

    from raiox.kit.cli_output import LineProgress

    out = io.StringIO()
    now = [100.0]
    progress = LineProgress(Console(file=out, width=200), every=15)
    progress._clock = lambda: now[0]
    with progress:
        task = progress.add_task("reindexing (raiox-v12)", total=3000)
        for _ in range(30):  # 100 references every 2 s: a line each 15 s, not each batch
            now[0] += 2
            progress.advance(task, 100)
    lines = out.getvalue().splitlines()
    assert lines[0] == "reindexing (raiox-v12): 0/3000, 0%, 0:00:00 elapsed"
    assert lines[1] == "reindexing (raiox-v12): 800/3000, 27%, 0:00:16 elapsed, about 0:00:44 left"
    assert lines[-1] == "reindexing (raiox-v12): 3000/3000, 100%, 0:01:00 elapsed"
    assert len(lines) == 5  # at the start, at 16, 32 and 48 s, and at the end

    out.truncate(0)
    out.seek(0)
    with LineProgress(Console(file=out, width=200)) as quick:  # over before the first interval: its end is printed
        quick.advance(quick.add_task("importing [x]", total=2), 1)
    assert out.getvalue().splitlines()[-1].startswith("importing [x]: 1/2, 50%, 0:00:00 elapsed")
