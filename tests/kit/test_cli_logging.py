"""A command's log lines go to stderr in RAIOX_LOG_FORMAT from the first one: stdout carries only what the command
prints. `raiox users list` (tab-separated rows, for scripts) and `raiox db upgrade` on the embedded database had
`embedded_postgres_ready` on stdout, in structlog's default format, before anything configured logging."""

import json
import os
import subprocess
import sys


def _raiox(data_dir, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAIOX_")}
    env |= {"PYTHONPATH": os.pathsep.join(sys.path), "RAIOX_DATA_DIR": str(data_dir), "RAIOX_LOG_FORMAT": "json"}
    return subprocess.run([sys.executable, "-m", "raiox", *args], env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def test_log_lines_of_commands_on_the_embedded_database_stay_off_stdout(tmp_path):
    upgraded = _raiox(tmp_path, "db", "upgrade")
    listed = _raiox(tmp_path, "users", "list")
    assert upgraded.returncode == 0 and listed.returncode == 0, (upgraded.stderr, listed.stderr)
    assert listed.stdout == ""  # no user yet: no row, and nothing else
    assert "embedded_postgres_ready" not in upgraded.stdout
    for result in (upgraded, listed):
        events = [json.loads(line)["event"] for line in result.stderr.splitlines() if line.startswith("{")]
        assert "embedded_postgres_ready" in events, result.stderr
