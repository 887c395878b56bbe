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


class LineProgress:
    """Progress for a console that is not interactive (a deploy's log file, a CI job, a pipe), where Rich's bar would
    show only once the work is done: a line when a task starts, then one at most every `every` seconds and one when
    it ends, each with the count, the percentage, the time elapsed and an estimate of the time left. The subset of
    `rich.progress.Progress` the commands use: a context manager with `add_task` and `advance`."""

    def __init__(self, console: Console, every: float = 15.0) -> None:
        import time

        self.console, self.every, self._clock = console, every, time.monotonic
        self._tasks: list[dict] = []

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        for task in self._tasks:
            if task["printed"] != task["done"]:
                self._line(task)

    def add_task(self, description: str, total: float | None = None) -> int:
        now = self._clock()
        self._tasks.append({"description": description, "total": total, "done": 0, "start": now, "last": now,
                            "printed": None})
        self._line(self._tasks[-1])
        return len(self._tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        task = self._tasks[task_id]
        task["done"] += advance
        now = self._clock()
        if now - task["last"] >= self.every or (task["total"] is not None and task["done"] >= task["total"]):
            task["last"] = now
            self._line(task)

    def _line(self, task: dict) -> None:
        from datetime import timedelta

        done, total = task["done"], task["total"]
        elapsed = self._clock() - task["start"]
        parts = [f"{done:g}/{total:g}" if total is not None else f"{done:g}"]
        if total:
            parts.append(f"{min(done / total, 1):.0%}")
        parts.append(f"{timedelta(seconds=round(elapsed))} elapsed")
        if total and 0 < done < total:
            parts.append(f"about {timedelta(seconds=round(elapsed * (total - done) / done))} left")
        task["printed"] = done
        self.console.print(f"{task['description']}: {', '.join(parts)}", markup=False, highlight=False,
                           soft_wrap=True)
