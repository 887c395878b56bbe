"""The embedded PostgreSQL's module imports quietly where XDG_RUNTIME_DIR is unset (servers, CI)."""

import os
import subprocess
import sys


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
