"""The embedded PostgreSQL (`raiox.kit.db`): imported quietly where XDG_RUNTIME_DIR is unset (servers, CI), its handle
given back cleanly, its start and stop never cut by a signal."""

import json
import os
import subprocess
import sys

import pytest


def test_pgserver_imports_without_the_runtime_dir_warning():
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    code = "import raiox.kit.db as db; print(db._pgserver().__name__)"
    plain = subprocess.run([sys.executable, "-W", "default", "-c", "import pgserver"], env=env,
                           capture_output=True, text=True, timeout=120)
    ours = subprocess.run([sys.executable, "-W", "default", "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert "XDG_RUNTIME_DIR" in plain.stderr  # the library warns on such a machine ...
    assert ours.returncode == 0 and ours.stdout.strip() == "pgserver"
    assert "XDG_RUNTIME_DIR" not in ours.stderr  # ... and raiox keeps it out of every command's output


RELEASE_THEN_WAIT = """
import sys

import pytest
from pathlib import Path
from raiox.kit import db

db.embedded_url(Path(sys.argv[1]))
db.stop_embedded()
print("released", flush=True)
sys.stdin.readline()
"""


def test_a_process_that_gave_its_handle_back_exits_without_pgservers_machine_wide_lock(tmp_path, migrated_data_dir):
    """pgserver's exit hook, left registered after `stop_embedded`, took the one lock of every embedded server of the
    machine again at exit, only to find the handle already given back: each `raiox` process's exit waited on any
    other's start, stop or exit. Given back, the process exits while another holds that lock."""
    import fasteners
    import psutil

    from fakes.embedded import copy_data_dir, embedded_env, postgres_processes
    from raiox.kit.db import _pgserver

    copy_data_dir(migrated_data_dir, tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", RELEASE_THEN_WAIT, str(tmp_path)], env=embedded_env(tmp_path),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = fasteners.InterProcessLock(_pgserver().postgres_server.PostgresServer.lock_path)
    try:
        lines = iter(proc.stdout.readline, "")  # (its log lines first: logging not configured, on stdout)
        assert "released" in (line.strip() for line in lines), proc.stderr.read()
        assert postgres_processes((tmp_path / "pg").resolve()) == []  # the last holder's give-back stopped it
        assert lock.acquire(timeout=30)
        try:
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.wait(timeout=15) == 0  # before: blocked in its exit hook until the lock was released
        finally:
            lock.release()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        psutil.wait_procs(postgres_processes((tmp_path / "pg").resolve()), timeout=10)


def test_signals_during_a_deferred_block_are_delivered_after_it_or_dropped():
    """`_signals_deferred` holds SIGINT and SIGTERM back until its block ends, then delivers them to the handlers it
    found (Python's own: KeyboardInterrupt); with drop=True (an interrupted process's own stop) they are dropped."""
    import signal

    from raiox.kit.db import _signals_deferred

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    went_on = []
    try:
        with _signals_deferred():
            signal.raise_signal(signal.SIGINT)
            went_on.append("deferred")  # not cut in the middle ...
    except KeyboardInterrupt:
        went_on.append("delivered")  # ... but delivered once it ends
    try:
        with _signals_deferred(drop=True):
            signal.raise_signal(signal.SIGINT)
            went_on.append("dropping")
        went_on.append("dropped")
    except KeyboardInterrupt:
        went_on.append("delivered anyway")
    assert went_on == ["deferred", "delivered", "dropping", "dropped"]
    assert {sig: signal.getsignal(sig) for sig in before} == before


STOP_SIGNALLED_TWICE = """
import signal, sys
from pathlib import Path
from raiox import cli
from raiox.kit import db

def interrupted():
    db.embedded_url(Path(sys.argv[1]))
    [server] = db._servers.values()
    cleanup = server.cleanup

    def signalled_meanwhile():  # the second (and third) stop arrives while pgserver's clean-up runs
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        cleanup()

    server.cleanup = signalled_meanwhile
    raise KeyboardInterrupt

if sys.argv[2] == "command":
    @cli.app.command("interrupted")
    def command():
        interrupted()
    cli.app(["interrupted"])
else:
    try:
        with cli.stopping_cleanly():
            interrupted()
    except cli.typer.Exit as done:
        print("stopped cleanly, exit", done.exit_code, flush=True)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
"""


@pytest.mark.parametrize(("path", "code", "stream", "last_line"), [
    ("command", 130, "stderr", "interrupted"), ("stopping_cleanly", 0, "stdout", "stopped cleanly, exit 0")])
def test_a_second_stop_while_an_interrupted_process_stops_the_embedded_postgres_is_dropped(
        tmp_path, migrated_data_dir, path, code, stream, last_line):
    """A command interrupted (`cli.RaioxGroup`: "interrupted", exit 130) or a server's start-up (`cli.stopping_cleanly`:
    exit 0) stops the embedded PostgreSQL with a second SIGTERM or Ctrl+C dropped meanwhile
    (`stop_embedded(drop_signals=True)`): delivered after the stop, it turned the command's end into a traceback."""
    import psutil

    from fakes.embedded import copy_data_dir, embedded_env, postgres_processes

    copy_data_dir(migrated_data_dir, tmp_path)
    pgdata = (tmp_path / "pg").resolve()
    done = subprocess.run([sys.executable, "-c", STOP_SIGNALLED_TWICE, str(tmp_path), path],
                          env=embedded_env(tmp_path), capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == code and "Traceback" not in out, out
    assert getattr(done, stream).strip().splitlines()[-1:] == [last_line], out
    psutil.wait_procs(postgres_processes(pgdata), timeout=10)
    assert postgres_processes(pgdata) == [], out
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
