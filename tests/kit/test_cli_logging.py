"""A command's log lines go to stderr in RAIOX_LOG_FORMAT from the first one: stdout carries only what the command
prints. `raiox users list` (tab-separated rows, for scripts) and `raiox db upgrade` on the embedded database had
`embedded_postgres_ready` on stdout, in structlog's default format, before anything configured logging."""

import json
import os
import re
import subprocess
import sys

from fakes.embedded import copy_data_dir


def _started(data_dir, *args: str, log_format: str = "json") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAIOX_")}
    env |= {"PYTHONPATH": os.pathsep.join(sys.path), "RAIOX_DATA_DIR": str(data_dir), "RAIOX_LOG_FORMAT": log_format}
    return subprocess.Popen([sys.executable, "-m", "raiox", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finished(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _raiox(data_dir, *args: str, log_format: str = "json") -> subprocess.CompletedProcess:
    return _finished(_started(data_dir, *args, log_format=log_format))


def test_log_lines_of_commands_on_the_embedded_database_stay_off_stdout(tmp_path, migrated_data_dir):
    copy_data_dir(migrated_data_dir, tmp_path)  # (a fresh data dir's upgrade, its alembic lines: the next test)
    upgrading, listing = _started(tmp_path, "db", "upgrade"), _started(tmp_path, "users", "list")  # at once: the
    upgraded, listed = _finished(upgrading), _finished(listing)  # second joins the embedded server the first started
    assert upgraded.returncode == 0 and listed.returncode == 0, (upgraded.stderr, listed.stderr)
    assert listed.stdout == ""  # no user yet: no row, and nothing else
    assert upgraded.stdout == "database is up to date\n"  # the command's result, and nothing else
    assert "embedded_postgres_ready" not in upgraded.stdout
    for result in (upgraded, listed):
        events = [json.loads(line)["event"] for line in result.stderr.splitlines() if line.startswith("{")]
        assert "embedded_postgres_ready" in events, result.stderr


# structlog's console line: time, [level] padded, the event (a standard-library record's logger name at its end)
_CONSOLE_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[(debug|info|warning|error|critical) *\] \S")


def test_the_standard_librarys_log_lines_come_in_the_format_of_ours(tmp_path):
    """alembic's "Running upgrade ..." (and procrastinate's, uvicorn's lines) came out as bare messages between
    structlog's lines on the console; in JSON they were JSON already. One format per stream, whichever it is."""
    console_run = _started(tmp_path / "console", "db", "upgrade", log_format="console")  # both at once: each its own
    json_run = _started(tmp_path / "json", "db", "upgrade")  # fresh data dir, each a whole initdb and upgrade
    on_console, in_json = _finished(console_run), _finished(json_run)
    assert on_console.returncode == 0 and in_json.returncode == 0, (on_console.stderr, in_json.stderr)
    assert on_console.stdout == in_json.stdout == "database is up to date\n"  # its result, never among log lines
    records = [json.loads(line) for line in in_json.stderr.splitlines()]
    assert all({"event", "level", "timestamp"} <= set(record) for record in records), records
    lines = on_console.stderr.splitlines()
    assert len([line for line in lines if _CONSOLE_LINE.match(line)]) == len(records)  # one shaped line per record
    events = "\n".join(record["event"] for record in records)  # the rest: a multi-line event's next lines
    assert [line for line in lines if not _CONSOLE_LINE.match(line) and line.rsplit(" [", 1)[0] not in events] == []
    assert any(re.search(r"\[info *\] Running upgrade .*\[alembic\.runtime\.migration\]$", line) for line in lines)
    assert any(record["event"].startswith("Running upgrade") and record["level"] == "info"
               and record["logger"] == "alembic.runtime.migration" for record in records)
