"""What `raiox` commands print on standard output (tables, result lines): whole lines when piped.

Rich lays a table out to the console's width, and a console that is not a terminal is 80 columns wide: piped into
a script (`raiox tokens list | grep ci`), a long name or path would be folded over several lines or cut short with
an ellipsis. `stdout_console()` gives, in a terminal, Rich's usual console (the terminal's width, colours); piped
or redirected, one with no practical width limit, so that each row of a table, and each printed line, stays one
line, whole. Table cells go in as plain text (`add_row`): a value's square brackets are printed, never read as
Rich markup (a token named `ci [prod]`, a system named `... [HE]`).
"""

from rich.console import Console
from rich.table import Table
from rich.text import Text

PIPED_WIDTH = 100_000  # columns of a console that is not a terminal: wider than any row a command prints


def stdout_console() -> Console:
    """A console on standard output: Rich's own in a terminal, PIPED_WIDTH columns wide otherwise. What counts is
    whether stdout is a terminal (a pipe with FORCE_COLOR set is still a pipe: coloured, as Rich decides, but
    not folded)."""
    console = Console()
    try:
        terminal = console.file.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed file
        terminal = False
    return console if terminal else Console(width=PIPED_WIDTH)


def add_row(table: Table, *values: object) -> None:
    """A row of VALUES as plain text (str() of each; None as "-")."""
    table.add_row(*(Text("-" if value is None else str(value)) for value in values))
