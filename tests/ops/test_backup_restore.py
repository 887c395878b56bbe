"""Nightly backup and documented restore (deploy/scripts/pg-backup.sh, pg-restore.sh) against a real
PostgreSQL with pgvector (embedded, pgserver's binaries), with a file:// bucket standing for Spaces:
dump, checksum, retention pruning, restore into a scratch database (the rehearsal the runbook asks
for) and over the damaged live one."""

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from .tooling import REPO

SCRIPTS = REPO / "deploy" / "scripts"


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    import pgserver

    root = tmp_path_factory.mktemp("backup")
    server = pgserver.get_server(str(root / "pg"))
    server.psql("CREATE DATABASE raiox_bk;")
    bin_dir = Path(pgserver.__file__).parent / "pginstall" / "bin"
    env = {**os.environ, "PGHOST": str(root / "pg"), "PGUSER": "postgres", "PG_BIN": str(bin_dir),
           "RAIOX_BACKUP_URL": f"file://{root / 'bucket'}", "RAIOX_BACKUP_DATABASES": "raiox_bk",
           "RAIOX_BACKUP_RETENTION_DAYS": "30"}
    yield {"root": root, "env": env, "bin": bin_dir}
    server.cleanup()


def _sql(pg, sql: str, db: str = "raiox_bk") -> str:
    out = subprocess.run([str(pg["bin"] / "psql"), "-X", "-At", "-d", db, "-c", sql], env=pg["env"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _run(pg, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPTS / script), *args], env=pg["env"], capture_output=True, text=True,
                          timeout=120)


def test_backup_prune_and_restore(pg):
    _sql(pg, "CREATE EXTENSION IF NOT EXISTS vector")
    _sql(pg, "CREATE TABLE refs (id int PRIMARY KEY, name text, emb vector(3))")
    _sql(pg, "INSERT INTO refs SELECT i, 'system ' || i, ARRAY[i, i, i]::vector FROM generate_series(1, 50) i")
    bucket = pg["root"] / "bucket" / "raiox_bk"
    bucket.mkdir(parents=True)
    old = (datetime.now(timezone.utc) - timedelta(days=40)).strftime("%Y%m%dT%H%M%SZ")
    recent = (datetime.now(timezone.utc) - timedelta(days=2)).strftime("%Y%m%dT%H%M%SZ")
    for stamp in (old, recent):
        (bucket / f"raiox_bk-{stamp}.dump").write_text("stale")
        (bucket / f"raiox_bk-{stamp}.dump.sha256").write_text("stale")

    result = _run(pg, "pg-backup.sh")
    assert result.returncode == 0, result.stdout + result.stderr
    dumps = sorted(p.name for p in bucket.glob("*.dump"))
    assert f"raiox_bk-{old}.dump" not in dumps, "older than the retention: pruned"
    assert not (bucket / f"raiox_bk-{old}.dump.sha256").exists()
    assert dumps[0] == f"raiox_bk-{recent}.dump" and len(dumps) == 2
    newest = dumps[-1]
    assert (bucket / f"{newest}.sha256").read_text().split()[1] == newest

    listing = _run(pg, "pg-restore.sh", "--list", "raiox_bk")
    assert listing.stdout.split() == dumps

    # the runbook's rehearsal: restore into a scratch database, live data untouched
    scratch = _run(pg, "pg-restore.sh", "raiox_bk", "latest", "--into", "raiox_bk_verify")
    assert scratch.returncode == 0, scratch.stdout + scratch.stderr
    assert _sql(pg, "SELECT count(*), (SELECT emb::text FROM refs WHERE id = 50) FROM refs",
                db="raiox_bk_verify") == "50|[50,50,50]"

    # disaster: rows lost and a table dropped; restore the latest dump over the live database
    _sql(pg, "DELETE FROM refs WHERE id > 10")
    _sql(pg, "CREATE TABLE junk (x int)")
    restored = _run(pg, "pg-restore.sh", "raiox_bk")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert _sql(pg, "SELECT count(*) FROM refs") == "50"
    assert _sql(pg, "SELECT name FROM refs ORDER BY emb <-> '[7,7,7]' LIMIT 1") == "system 7"
    assert _sql(pg, "SELECT to_regclass('junk') IS NULL") == "f", "objects not in the dump are left alone"


def test_restore_refuses_a_corrupted_dump(pg):
    bucket = pg["root"] / "bucket" / "raiox_bk"
    newest = sorted(bucket.glob("*.dump"))[-1]
    data = newest.read_bytes()
    newest.write_bytes(data[:-10] + b"corrupted!")
    try:
        result = _run(pg, "pg-restore.sh", "raiox_bk", newest.name, "--into", "raiox_bk_bad")
    finally:
        newest.write_bytes(data)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr
    assert _sql(pg, "SELECT count(*) FROM pg_database WHERE datname = 'raiox_bk_bad'", db="postgres") == "0"


def test_restore_of_a_missing_database_fails_clearly(pg):
    result = _run(pg, "pg-restore.sh", "nope")
    assert result.returncode == 1 and "no dump of nope" in result.stderr


def test_a_failing_database_does_not_stop_the_others(tmp_path):
    """pg_dump failing for one database (and the upload failing for another) used to end the night's backup at that
    database: every database is tried now, each failure is reported, and the script fails at the end."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pg_dump"
    # the real pg_dump's arguments as pg-backup.sh passes them: --dbname=DB --file=PATH
    fake.write_text('#!/bin/bash\nfor a in "$@"; do case $a in --dbname=*) db=${a#*=} ;; --file=*) out=${a#*=} ;; '
                    'esac; done\n[[ $db == broken ]] && { echo "pg_dump: error: connection failed" >&2; exit 1; }\n'
                    'echo "dump of $db" >"$out"\n')
    fake.chmod(0o755)
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "unwritable").write_text("a file where the database's folder should be: the upload fails")
    env = {"PATH": os.environ["PATH"], "PG_BIN": str(bin_dir), "RAIOX_BACKUP_URL": f"file://{bucket}",
           "RAIOX_BACKUP_DATABASES": "first broken unwritable last", "RAIOX_BACKUP_RETENTION_DAYS": "30"}
    result = subprocess.run(["bash", str(SCRIPTS / "pg-backup.sh")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    for db in ("first", "last"):  # before and after the failures: backed up, checksum alongside
        dumps = list((bucket / db).glob(f"{db}-*.dump"))
        assert len(dumps) == 1 and dumps[0].read_text() == f"dump of {db}\n"
        assert (bucket / db / f"{dumps[0].name}.sha256").read_text().split()[1] == dumps[0].name
    assert not (bucket / "broken").exists()
    assert "backup: FAILED broken: pg_dump failed" in result.stderr
    assert "backup: FAILED unwritable: upload" in result.stderr
    assert "2 of 4 databases failed: broken unwritable" in result.stderr


def test_a_backup_where_every_database_succeeds_exits_0(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pg_dump").write_text('#!/bin/sh\nfor a; do case $a in --file=*) echo dump >"${a#*=}" ;; esac; done\n')
    (bin_dir / "pg_dump").chmod(0o755)
    env = {"PATH": os.environ["PATH"], "PG_BIN": str(bin_dir), "RAIOX_BACKUP_URL": f"file://{tmp_path / 'bucket'}",
           "RAIOX_BACKUP_DATABASES": "one two"}
    result = subprocess.run(["bash", str(SCRIPTS / "pg-backup.sh")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stderr and "all databases backed up (one two)" in result.stdout
