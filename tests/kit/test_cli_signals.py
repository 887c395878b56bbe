"""SIGTERM to a `raiox` command that is not a server (`raiox db upgrade`, `raiox catalog demo`, ...) is its Ctrl+C: the
transaction rolled back, the embedded PostgreSQL stopped, one line and exit 143 (the servers': tests/kit/test_serve.py).
Before, Python's default killed the process outright and left the embedded PostgreSQL running."""

import json
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import psutil
import psycopg
import pytest
from pgserver.utils import PostmasterInfo

from fakes.embedded import copy_data_dir, embedded_env, postgres_processes


def _raiox(data_dir, *args: str) -> subprocess.Popen:
    """`raiox ARGS` on the embedded database of DATA_DIR, its stderr to a file (`_stderr`): no pipe to fill."""
    with (data_dir / f"stderr-{time.monotonic_ns()}.log").open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "raiox", *args], env=embedded_env(data_dir),
                                stdout=subprocess.DEVNULL, stderr=sink)
    proc.stderr_path = sink.name
    return proc


def _stderr(proc: subprocess.Popen) -> str:
    return Path(proc.stderr_path).read_text()


def _until(condition, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"exited {proc.returncode} before {what}: {_stderr(proc)}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.02)


def _terminated(proc: subprocess.Popen, pgdata) -> str:
    """PROC sent SIGTERM says so in one line, exits 143 and leaves no PostgreSQL of PGDATA running; its stderr."""
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    err = _stderr(proc)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "terminated (SIGTERM)" and "Traceback" not in err, err
    psutil.wait_procs(postgres_processes(pgdata), timeout=10)
    assert postgres_processes(pgdata) == [], err
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []  # its handle given back, not left for the next
    return err


def _ready(pgdata) -> bool:
    """The embedded server of PGDATA accepts connections to the `raiox` database."""
    pid_file = pgdata / "postmaster.pid"
    lines = pid_file.read_text().splitlines() if pid_file.exists() else []
    if len(lines) < 8 or lines[7].strip() != "ready":
        return False
    try:
        psycopg.connect(PostmasterInfo(lines).get_uri(database="raiox")).close()
        return True
    except psycopg.OperationalError:
        return False


@pytest.fixture
def stops_its_postgres(tmp_path):
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for leftover in postgres_processes((tmp_path / "pg").resolve()):
        leftover.kill()


def test_sigterm_while_db_upgrade_starts_the_database_leaves_it_stopped_and_unmigrated(tmp_path, stops_its_postgres):
    """The signal comes while the embedded server is created (initdb, pg_ctl: never cut, `kit.db._signals_deferred`):
    once it runs, the command stops it, migrates nothing, and the next `raiox db upgrade` starts from the first
    migration on a sound data dir."""
    pgdata = (tmp_path / "pg").resolve()
    proc = _raiox(tmp_path, "db", "upgrade")
    stops_its_postgres.append(proc)
    _until(lambda: (pgdata / "postmaster.pid").exists(), proc, "booted the embedded server")
    err = _terminated(proc, pgdata)
    assert "Running upgrade" not in err

    again = _raiox(tmp_path, "db", "upgrade")
    stops_its_postgres.append(again)
    again.wait(timeout=120)
    err = _stderr(again)
    assert again.returncode == 0 and "Running upgrade  -> 0001" in err, err
    assert postgres_processes(pgdata) == []


def test_sigterm_during_catalog_demo_rolls_its_batch_back_and_stops_the_embedded_postgres(
        tmp_path, migrated_data_dir, stops_its_postgres):
    """`raiox catalog demo` commits a batch at a time (catalog.runner). SIGTERM while a batch's transaction is open
    (its references and embeddings written, its audit update held by this test's lock on the run's entry): that batch
    is rolled back, the committed ones stay, the run's audit entry says what they did, and the database stops."""
    copy_data_dir(migrated_data_dir, tmp_path)
    pgdata = (tmp_path / "pg").resolve()
    systems = ",".join(f"demo-00{n}" for n in range(1, 7))  # 6 batches: the test holds one of the first ones
    proc = _raiox(tmp_path, "catalog", "demo", "--systems", systems, "--refs", "2", "--restored", "0",
                  "--batch-size", "2")
    stops_its_postgres.append(proc)
    _until(lambda: _ready(pgdata), proc, "started the embedded server")
    url = PostmasterInfo.read_from_pgdata(pgdata).get_uri(database="raiox")
    with closing(psycopg.connect(url, autocommit=True)) as watch, closing(psycopg.connect(url)) as holder:
        entry = []
        _until(lambda: entry.extend(watch.execute("SELECT id FROM audit_log WHERE action = 'catalog.import'")) or entry,
               proc, "committed its first batch")
        holder.execute("SELECT 1 FROM audit_log WHERE id = %s FOR UPDATE", entry[0])  # the next batch waits here
        _until(lambda: watch.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                     "AND datname = 'raiox'").fetchone()[0], proc, "waited on the audit entry")
        committed = watch.execute("SELECT count(*) FROM reference_images").fetchone()[0]
        _terminated(proc, pgdata)  # (its fast shutdown ends these two connections too)
    assert committed in (2, 4, 6, 8, 10)

    found = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import asyncio, json
        from sqlalchemy import text
        from raiox.kit.db import session_scope
        async def main():
            async with session_scope() as session:
                found = {}
                for name, query in [("references", "SELECT count(*) FROM reference_images"),
                                    ("embeddings", "SELECT count(*) FROM reference_embeddings"),
                                    ("audit", "SELECT json_agg(details) FROM audit_log "
                                              "WHERE action = 'catalog.import'")]:
                    found[name] = (await session.execute(text(query))).scalar()
                print(json.dumps(found))
        asyncio.run(main())
        """)], env=embedded_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    found = json.loads(found.stdout.strip().splitlines()[-1])
    assert found["references"] == found["embeddings"] == committed, found
    [details] = found["audit"]
    assert details["added"] == committed and details["batches"] == committed // 2 and details["complete"] is False
    assert postgres_processes(pgdata) == []
