"""Nightly backup and documented restore (deploy/scripts/pg-backup.sh, pg-restore.sh) against a real
PostgreSQL with pgvector (embedded, pgserver's binaries), with a file:// bucket standing for Spaces:
dump, checksum, retention pruning, restore into a scratch database (the rehearsal the runbook asks
for) and over the damaged live one."""

import os
import time
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


def _run(pg, script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPTS / script), *args], env={**pg["env"], **(env or {})},
                          capture_output=True, text=True, timeout=120)


def _databases(pg, like: str) -> list[str]:
    found = _sql(pg, f"SELECT datname FROM pg_database WHERE datname LIKE '{like}' ORDER BY 1", db="postgres")
    return found.split()


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

    # disaster: rows lost and a table added since; restore the latest dump over the live database
    _sql(pg, "DELETE FROM refs WHERE id > 10")
    _sql(pg, "CREATE TABLE junk (x int)")
    restored = _run(pg, "pg-restore.sh", "raiox_bk")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert _sql(pg, "SELECT count(*) FROM refs") == "50"
    assert _sql(pg, "SELECT name FROM refs ORDER BY emb <-> '[7,7,7]' LIMIT 1") == "system 7"
    # the database is the dump's, nothing else: a table created after the dump is not in it
    assert _sql(pg, "SELECT to_regclass('junk') IS NULL") == "t", "the live database holds only the dump's objects"
    # the replaced database is kept, as it was, until the operator drops it
    replaced = _databases(pg, "raiox_bk_before_restore_%")
    assert len(replaced) == 1 and f"kept as {replaced[0]}" in restored.stdout
    assert "pg-restore.sh --drop-kept raiox_bk " in restored.stdout, "the end says how to drop it"
    assert _sql(pg, "SELECT count(*), to_regclass('junk') IS NOT NULL FROM refs", db=replaced[0]) == "10|t"
    assert not _databases(pg, "raiox_bk_restore_%")
    _sql(pg, f"DROP DATABASE {replaced[0]}", db="postgres")


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


def test_a_dump_pg_restore_cannot_read_changes_nothing(pg):
    """Its checksum matches (damaged before it was summed): pg_restore fails on it. The live database stays as it was
    and the new database the restore had created is dropped again."""
    bucket = pg["root"] / "bucket" / "raiox_bk"
    name = "raiox_bk-29991231T000000Z.dump"  # the newest: what `latest` picks
    (bucket / name).write_bytes(b"PGDMP not really a dump")
    subprocess.run(["sha256sum", name], cwd=bucket, stdout=(bucket / f"{name}.sha256").open("w"), check=True)
    try:
        before = _sql(pg, "SELECT count(*) FROM refs")
        result = _run(pg, "pg-restore.sh", "raiox_bk", "latest")
        fresh = _run(pg, "pg-restore.sh", "raiox_bk", "latest", "--into", "raiox_bk_new")
    finally:
        (bucket / name).unlink()
        (bucket / f"{name}.sha256").unlink()
    assert result.returncode != 0 and fresh.returncode != 0
    assert "dropping the unfinished database raiox_bk_restore_" in result.stderr
    assert _sql(pg, "SELECT count(*) FROM refs") == before
    assert not _databases(pg, "raiox_bk_restore_%") and not _databases(pg, "raiox_bk_before_restore_%")
    assert not _databases(pg, "raiox_bk_new")


def test_restore_refuses_a_target_name_it_cannot_build_on(pg):
    result = _run(pg, "pg-restore.sh", "raiox_bk", "latest", "--into", "Raiox-Verify")
    assert result.returncode == 64 and "lower-case letters, digits and _ only" in result.stderr


def test_restore_of_a_missing_database_fails_clearly(pg):
    result = _run(pg, "pg-restore.sh", "nope")
    assert result.returncode == 1 and "no dump of nope" in result.stderr


def _restore_stamp(days_ago: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days_ago, minutes=5)).strftime("%Y%m%d%H%M%S")


def test_kept_copies_are_listed_warned_about_nightly_and_dropped_never_the_live_one(pg, tmp_path):
    """A restore keeps the replaced database as <db>_before_restore_<time>: patients' data outside the retention purge,
    kept until someone drops it, and nothing reminded anyone. Now the nightly backup warns while one older than
    RAIOX_BACKUP_KEPT_WARN_DAYS exists, and `--drop-kept DB [--older-than DAYS]` drops them: names of that form
    only, never the live database nor another database's copies, nor a copy someone is connected to."""
    old, recent = f"raiox_bk_before_restore_{_restore_stamp(40)}", f"raiox_bk_before_restore_{_restore_stamp(2)}"
    others = [f"raiox_bk2_before_restore_{_restore_stamp(40)}", "raiox_bk_before_restore_manual"]
    # the live database's own data, this test's (it runs alone too): still there after every drop
    _sql(pg, "CREATE TABLE live_rows AS SELECT i AS id FROM generate_series(1, 7) i")
    for name in (old, recent, *others):
        _sql(pg, f"CREATE DATABASE {name}", db="postgres")
    try:
        listed = _run(pg, "pg-restore.sh", "--list-kept", "raiox_bk")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines() == [f"{old} 40 days", f"{recent} 2 days"]

        nightly = _run(pg, "pg-backup.sh", env={"RAIOX_BACKUP_URL": f"file://{tmp_path / 'bucket'}",
                                                "RAIOX_BACKUP_KEPT_WARN_DAYS": "7", "JOURNAL_STREAM": "8:1"})
        assert nightly.returncode == 0, nightly.stdout + nightly.stderr
        warnings = [line for line in nightly.stderr.splitlines() if "WARNING" in line]
        assert len(warnings) == 1, nightly.stderr
        assert warnings[0].startswith(f"<4>backup: WARNING: {old}, kept by a restore 40 days ago")  # journal priority
        assert "raiox-pg-restore --drop-kept raiox_bk --older-than 7" in warnings[0]

        # someone still reading the old copy: it is not dropped, and the failure says so
        reader = subprocess.Popen([str(pg["bin"] / "psql"), "-X", "-d", old], env=pg["env"], text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(50):
                if _sql(pg, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{old}'", db="postgres") != "0":
                    break
                time.sleep(0.1)
            busy = _run(pg, "pg-restore.sh", "--drop-kept", "raiox_bk", "--older-than", "7")
            assert busy.returncode == 1 and f"FAILED to drop {old}" in busy.stderr
            assert old in _databases(pg, "raiox_bk_before_restore_%")
        finally:
            reader.communicate("\\q\n", timeout=10)

        dropped = _run(pg, "pg-restore.sh", "--drop-kept", "raiox_bk", "--older-than", "7")
        assert dropped.returncode == 0, dropped.stderr
        assert dropped.stdout.splitlines() == [f"restore: dropped {old} (kept by a restore 40 days ago)"]
        assert _databases(pg, "raiox_bk_before_restore_%") == sorted([recent, others[1]])
        assert _run(pg, "pg-restore.sh", "--drop-kept", "raiox_bk").returncode == 0
        assert _databases(pg, "raiox_bk_before_restore_%") == [others[1]], "a name of another form is not a copy"
        assert _databases(pg, "raiox_bk") == ["raiox_bk"] and _sql(pg, "SELECT count(*) FROM live_rows") == "7"
        assert others[0] in _databases(pg, "raiox_bk2_%"), "another database's copies are its own"
        assert "no kept copy of raiox_bk" in _run(pg, "pg-restore.sh", "--list-kept", "raiox_bk").stdout

        for bad in (["--drop-kept", "raiox_bk'; DROP DATABASE raiox_bk; --"],
                    ["--drop-kept", "raiox_bk", "--older-than", "7; x"],
                    ["--list-kept", "raiox_bk", "--older-than", "7"], ["--drop-kept"]):
            refused = _run(pg, "pg-restore.sh", *bad)
            assert refused.returncode == 64, (bad, refused.stderr)
        assert _databases(pg, "raiox_bk") == ["raiox_bk"]
        assert _sql(pg, "SELECT count(*) FROM live_rows") == "7"
    finally:
        for name in (old, recent, *others):
            _sql(pg, f"DROP DATABASE IF EXISTS {name}", db="postgres")
        _sql(pg, "DROP TABLE IF EXISTS live_rows")


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


# The roles and grants of deploy/roles/postgres (db.yml) for one environment: the owner migrates, the app role reads
# and writes rows, nobody else connects.
DB_YML_GRANTS = """
CREATE ROLE rh_owner LOGIN;
CREATE ROLE rh_app LOGIN;
CREATE ROLE rh_other LOGIN;
CREATE DATABASE raiox_rh OWNER rh_owner ENCODING 'UTF8' TEMPLATE template0;
\\c raiox_rh
CREATE EXTENSION vector;
ALTER SCHEMA public OWNER TO rh_owner;
REVOKE CONNECT, TEMPORARY ON DATABASE raiox_rh FROM PUBLIC;
GRANT CONNECT ON DATABASE raiox_rh TO rh_app;
GRANT USAGE ON SCHEMA public TO rh_app;
ALTER DEFAULT PRIVILEGES FOR ROLE rh_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO rh_app;
ALTER DEFAULT PRIVILEGES FOR ROLE rh_owner IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO rh_app;
ALTER DEFAULT PRIVILEGES FOR ROLE rh_owner IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO rh_app;
ALTER DATABASE raiox_rh SET work_mem TO '8MB';
ALTER ROLE rh_app IN DATABASE raiox_rh SET statement_timeout TO '7s';
"""


def _raiox(pg, role: str, *code_or_args: str, migrate_to: str | None = None) -> subprocess.CompletedProcess:
    """This checkout's raiox as `role` on raiox_rh (as the deploy runs `raiox db upgrade` with migrate.env)."""
    import sys

    env = {k: v for k, v in pg["env"].items() if not k.startswith("RAIOX_")}
    env.update({"PYTHONPATH": str(REPO / "src"), "RAIOX_ENV": "development", "RAIOX_LOG_FORMAT": "json",
                "RAIOX_DATA_DIR": str(pg["root"] / "data"),
                "RAIOX_DATABASE_URL": f"postgresql://{role}@/raiox_rh?host={pg['env']['PGHOST']}"})
    if migrate_to:  # `raiox db upgrade` goes to head; a rehearsal of an older release stops at its revision
        cmd = [sys.executable, "-c", f"from raiox.kit.migrate import upgrade; upgrade(revision={migrate_to!r})"]
    else:
        cmd = [sys.executable, "-m", "raiox", *code_or_args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=pg["root"])


def _as(pg, role: str, sql: str, db: str = "raiox_rh") -> subprocess.CompletedProcess:
    return subprocess.run([str(pg["bin"] / "psql"), "-X", "-At", "-U", role, "-d", db, "-v", "ON_ERROR_STOP=1",
                           "-c", sql], env=pg["env"], capture_output=True, text=True)


def test_restore_after_a_later_migration_then_upgrade_works(pg):
    """The release after the dump migrated (0012 creates login_locks) and went wrong: the operator rolls the code back
    and restores the dump taken before it. The database is then exactly the dump's (revision 0011, no login_locks,
    the dump's rows), the app role keeps its grants (database CONNECT, table rights, settings) and nobody else
    connects, and the next `raiox db upgrade` (the fixed release's deploy) migrates it to head. Restoring over it with
    pg_restore --clean, as before, left login_locks behind under revision 0011: that upgrade failed with "relation
    login_locks already exists"."""
    setup = subprocess.run([str(pg["bin"] / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"],
                           input=DB_YML_GRANTS, env=pg["env"], capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr
    older = _raiox(pg, "rh_owner", migrate_to="0011")
    assert older.returncode == 0, older.stderr
    users = ("INSERT INTO users (id, email, password_hash, role, active, failed_logins) VALUES "
             "(gen_random_uuid(), '{}@example.com', 'x', 'admin', true, 0)")
    for name in ("ana", "bia"):
        assert _as(pg, "rh_app", users.format(name)).returncode == 0
    backup = _run(pg, "pg-backup.sh", env={"RAIOX_BACKUP_DATABASES": "raiox_rh"})
    assert backup.returncode == 0, backup.stdout + backup.stderr

    # the later release: its migrations (login_locks among them), then rows written under it
    upgraded = _raiox(pg, "rh_owner", "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    head = _sql(pg, "SELECT version_num FROM alembic_version", db="raiox_rh")
    assert head > "0012"
    assert _as(pg, "rh_app", users.format("cris")).returncode == 0

    # a service still connected: the restore names it and changes nothing
    holder = subprocess.Popen([str(pg["bin"] / "psql"), "-X", "-U", "rh_app", "-d", "raiox_rh", "-c",
                               "SELECT pg_sleep(60)"], env=pg["env"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if _sql(pg, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'raiox_rh'", db="postgres") != "0":
                break
            time.sleep(0.1)
        busy = _run(pg, "pg-restore.sh", "raiox_rh")
    finally:
        holder.kill()
        holder.wait()
    assert busy.returncode == 1, busy.stdout + busy.stderr
    assert "database raiox_rh is in use; stop the services" in busy.stderr and "rh_app from local" in busy.stderr
    assert _sql(pg, "SELECT version_num FROM alembic_version", db="raiox_rh") == head
    assert not _databases(pg, "raiox_rh_%restore%")

    for _ in range(100):  # the killed psql's session ends
        if _sql(pg, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'raiox_rh'", db="postgres") == "0":
            break
        time.sleep(0.1)
    restored = _run(pg, "pg-restore.sh", "raiox_rh")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "alembic revision 0011" in restored.stdout
    assert _sql(pg, "SELECT version_num FROM alembic_version", db="raiox_rh") == "0011"
    assert _sql(pg, "SELECT to_regclass('login_locks') IS NULL", db="raiox_rh") == "t"
    assert _sql(pg, "SELECT string_agg(email, ',' ORDER BY email) FROM users", db="raiox_rh") == \
        "ana@example.com,bia@example.com"
    # the database-level grants and settings of the one it replaced, which pg_dump does not carry
    assert _as(pg, "rh_app", "SELECT count(*) FROM users").stdout.strip() == "2"
    assert _as(pg, "rh_app", "SHOW statement_timeout").stdout.strip() == "7s"
    assert _as(pg, "rh_app", "SHOW work_mem").stdout.strip() == "8MB"
    refused = _as(pg, "rh_other", "SELECT 1")
    assert refused.returncode != 0 and "permission denied for database" in refused.stderr
    assert _sql(pg, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'raiox_rh'",
                db="postgres") == "rh_owner"
    replaced = _databases(pg, "raiox_rh_before_restore_%")
    assert len(replaced) == 1
    assert _sql(pg, "SELECT count(*), max(version_num) FROM users, alembic_version", db=replaced[0]) == f"3|{head}"

    # the fixed release's deploy migrates the restored database, and the app role may use what it creates
    again = _raiox(pg, "rh_owner", "db", "upgrade")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _sql(pg, "SELECT version_num FROM alembic_version", db="raiox_rh") == head
    locked = _as(pg, "rh_app", "INSERT INTO login_locks (user_id, source, failures, updated_at) "
                 "SELECT id, '198.51.100.0', 1, now() FROM users WHERE email = 'ana@example.com'")
    assert locked.returncode == 0, locked.stderr


def _unit_lines(name: str) -> dict[str, str]:
    from .rendering import render

    text = render("pg_backup", f"{name}.j2", {"postgres_databases": [], "postgres_version": 16,
                                              "vault_backup_spaces_access_key": "k",
                                              "vault_backup_spaces_secret_key": "s"})
    return {k: v for k, _, v in (line.partition("=") for line in text.splitlines() if "=" in line
                                 and not line.startswith("#"))}


def _as_systemd_runs(pg, state: Path, databases: str,
                     env: dict | None = None) -> tuple[subprocess.CompletedProcess, str]:
    """One night of raiox-pg-backup.service as systemd runs it, from the rendered units: ExecStart; then its
    ExecStartPost when that exited 0, else the OnFailure= unit's ExecStart; StateDirectory= as STATE_DIRECTORY."""
    backup = _unit_lines("raiox-pg-backup.service")
    env = {**pg["env"], "RAIOX_BACKUP_DATABASES": databases, "STATE_DIRECTORY": str(state), **(env or {})}

    def run(command: str) -> subprocess.CompletedProcess:
        argv = command.removeprefix("-").replace("/usr/local/lib/raiox/", f"{SCRIPTS}/").split()
        return subprocess.run(["bash", *argv], env=env, capture_output=True, text=True, timeout=120)

    night = run(backup["ExecStart"])
    if night.returncode == 0:
        after = run(backup["ExecStartPost"])
    else:
        after = run(_unit_lines(backup["OnFailure"])["ExecStart"])
    assert after.returncode == 0, after.stderr
    return night, after.stdout


def _recorded(state: Path) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = (state / "raiox_backup.prom").read_text()
    assert (state / "raiox_backup.prom").stat().st_mode & 0o777 == 0o644  # node-exporter's user reads it
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_failed_backup_is_recorded_for_monitoring_and_logged_at_crit(pg, tmp_path):
    """Backups failing raised nothing anyone would see. Now a failed night (a database that cannot be dumped) runs the
    OnFailure= unit: raiox_backup_failed 1 and the failure's time in the textfile node-exporter reads, a line at
    priority crit for the journal; the next night that succeeds clears the flag and keeps the failure's time."""
    state = tmp_path / "state"
    state.mkdir()
    night, said = _as_systemd_runs(pg, state, "raiox_bk")
    assert night.returncode == 0, night.stderr
    first = _recorded(state)
    assert first["raiox_backup_failed"] == 0 and first["raiox_backup_last_failure_timestamp_seconds"] == 0
    assert abs(first["raiox_backup_last_success_timestamp_seconds"] - time.time()) < 120

    night, said = _as_systemd_runs(pg, state, "raiox_bk no_such_database")
    assert night.returncode == 1 and "backup: FAILED no_such_database: pg_dump failed" in night.stderr
    failed = _recorded(state)
    assert failed["raiox_backup_failed"] == 1
    assert failed["raiox_backup_last_success_timestamp_seconds"] == first["raiox_backup_last_success_timestamp_seconds"]
    assert failed["raiox_backup_last_failure_timestamp_seconds"] >= first["raiox_backup_last_success_timestamp_seconds"]
    assert said.startswith("<2>raiox-pg-backup FAILED on ")  # journald: priority 2, crit

    night, said = _as_systemd_runs(pg, state, "raiox_bk")
    assert night.returncode == 0 and not said.startswith("<")
    again = _recorded(state)
    assert again["raiox_backup_failed"] == 0
    assert again["raiox_backup_last_failure_timestamp_seconds"] == failed["raiox_backup_last_failure_timestamp_seconds"]


def _kept_recorded(state: Path) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    path = state / "raiox_backup_kept.prom"
    assert path.stat().st_mode & 0o777 == 0o644  # node-exporter's user reads it
    families = list(text_string_to_metric_families(path.read_text()))
    assert {f.name: f.type for f in families} == {"raiox_backup_kept_copies": "gauge",
                                                   "raiox_backup_kept_oldest_age_seconds": "gauge",
                                                   "raiox_backup_kept_warn_age_seconds": "gauge"}
    return {(s.name, s.labels["database"]): s.value for family in families for s in family.samples}


def _kept_alert_fires(kept: dict[tuple[str, str], float], db: str) -> bool:
    """The runbook's alert on kept copies, evaluated on one night's figures: `A > B`, both metrics the night records
    (a number written into the rule would drift from pg_backup_kept_warn_days)."""
    import re

    runbook = (REPO / "docs" / "operations.md").read_text()
    rule = re.search(r"alert on `(raiox_backup_kept_oldest_age_seconds > [^`]+)`", " ".join(runbook.split()))
    assert rule, "the runbook gives the alert on kept copies"
    left, right = (side.strip() for side in rule.group(1).split(" > "))
    assert (left, db) in kept and (right, db) in kept, f"{rule.group(1)}: both sides are recorded metrics"
    return kept[(left, db)] > kept[(right, db)]


def test_kept_copies_are_recorded_for_monitoring_each_night(pg, tmp_path):
    """The copies a restore kept had a warning in the journal and nothing Prometheus could alert on. Each night now
    records, next to raiox_backup.prom, how many copies of each database are kept and the age of the oldest (from the
    restore's time in its name); once they are dropped the next night records 0 and 0."""
    state = tmp_path / "state"
    state.mkdir()
    old, recent = f"raiox_bk_before_restore_{_restore_stamp(40)}", f"raiox_bk_before_restore_{_restore_stamp(2)}"
    others = [f"raiox_bk2_before_restore_{_restore_stamp(90)}", "raiox_bk_before_restore_manual"]
    for name in (old, recent, *others):
        _sql(pg, f"CREATE DATABASE {name}", db="postgres")
    try:
        # "08": eight days (bash would read it as a bad octal number)
        night, _ = _as_systemd_runs(pg, state, "raiox_bk", env={"RAIOX_BACKUP_KEPT_WARN_DAYS": "08"})
        assert night.returncode == 0, night.stderr
        assert [w for w in night.stderr.splitlines() if "WARNING" in w] == [
            line for line in night.stderr.splitlines() if line.startswith(f"backup: WARNING: {old},")]
        assert "--older-than 8" in night.stderr
        kept = _kept_recorded(state)
        assert kept[("raiox_backup_kept_copies", "raiox_bk")] == 2, "another form, another database: not counted"
        age = kept[("raiox_backup_kept_oldest_age_seconds", "raiox_bk")]
        assert abs(age - (40 * 86400 + 300)) < 120, age
        assert kept[("raiox_backup_kept_warn_age_seconds", "raiox_bk")] == 8 * 86400, "the setting, for the alert"
        assert _kept_alert_fires(kept, "raiox_bk"), "40 days > 8 days"
        assert set(kept) == {("raiox_backup_kept_copies", "raiox_bk"),
                             ("raiox_backup_kept_oldest_age_seconds", "raiox_bk"),
                             ("raiox_backup_kept_warn_age_seconds", "raiox_bk")}
        assert _recorded(state)["raiox_backup_failed"] == 0, "the backup's own file is still there"

        assert _run(pg, "pg-restore.sh", "--drop-kept", "raiox_bk", "--older-than", "7").returncode == 0
        night, _ = _as_systemd_runs(pg, state, "raiox_bk")
        assert night.returncode == 0, night.stderr
        kept = _kept_recorded(state)
        assert kept[("raiox_backup_kept_copies", "raiox_bk")] == 1
        assert abs(kept[("raiox_backup_kept_oldest_age_seconds", "raiox_bk")] - (2 * 86400 + 300)) < 120
        assert not _kept_alert_fires(kept, "raiox_bk"), "2 days < 7 days"
        night, _ = _as_systemd_runs(pg, state, "raiox_bk", env={"RAIOX_BACKUP_KEPT_WARN_DAYS": "1"})
        assert _kept_alert_fires(_kept_recorded(state), "raiox_bk"), "the alert follows the setting: 2 days > 1 day"

        assert _run(pg, "pg-restore.sh", "--drop-kept", "raiox_bk").returncode == 0
        night, _ = _as_systemd_runs(pg, state, "raiox_bk")
        assert night.returncode == 0, night.stderr
        assert _kept_recorded(state) == {("raiox_backup_kept_copies", "raiox_bk"): 0,
                                         ("raiox_backup_kept_oldest_age_seconds", "raiox_bk"): 0,
                                         ("raiox_backup_kept_warn_age_seconds", "raiox_bk"): 7 * 86400}
        assert not list(state.glob(".raiox_backup_kept.prom.*")), "no temporary file left behind"
    finally:
        for name in (old, recent, *others):
            _sql(pg, f"DROP DATABASE IF EXISTS {name}", db="postgres")


def _night_with(tmp_path, **settings) -> tuple[subprocess.CompletedProcess, Path]:
    """pg-backup.sh's night for one database with SETTINGS, its pg_dump a stand-in that writes a file; (the run, the
    bucket folder)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pg_dump").write_text('#!/bin/sh\nfor a; do case $a in --file=*) echo dump >"${a#*=}" ;; esac; done\n')
    (bin_dir / "pg_dump").chmod(0o755)
    bucket = tmp_path / "bucket"
    env = {"PATH": os.environ["PATH"], "PG_BIN": str(bin_dir), "RAIOX_BACKUP_URL": f"file://{bucket}",
           "RAIOX_BACKUP_DATABASES": "one", **settings}
    result = subprocess.run(["bash", str(SCRIPTS / "pg-backup.sh")], env=env, capture_output=True, text=True,
                            timeout=60)
    return result, bucket


@pytest.mark.parametrize("value", ["seven", "-1", "7.5", "1e3", " 7", "7d", "123456"])
def test_a_kept_warn_days_that_is_not_a_number_of_days_is_refused_before_anything_runs(tmp_path, value):
    """RAIOX_BACKUP_KEPT_WARN_DAYS was used unchecked: "seven" or "7.5" ended the night in a shell arithmetic error
    after the dumps, "-1" warned about every copy. Now such a value is one clear line and exit 2, before any dump."""
    result, bucket = _night_with(tmp_path, RAIOX_BACKUP_KEPT_WARN_DAYS=value)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"backup: RAIOX_BACKUP_KEPT_WARN_DAYS must be a whole number of days (0 to 99999), not '{value}'"]
    assert not bucket.exists(), "nothing was dumped"


@pytest.mark.parametrize("value", ["thirty", "0", "00", "-1", "7.5", "1e3", " 30", "30d", "123456", "08"])
def test_a_retention_that_is_not_a_number_of_days_is_refused_before_anything_runs(tmp_path, value):
    """RAIOX_BACKUP_RETENTION_DAYS was used unchecked: "thirty" made `date -d` fail only after the settings were read,
    "0" pruned every older dump. Now such a value is one clear line and exit 2, before any dump (as KEPT_WARN_DAYS)."""
    result, bucket = _night_with(tmp_path, RAIOX_BACKUP_RETENTION_DAYS=value)
    if value == "08":  # a whole number of days (not a bad octal number): the night runs
        assert "RAIOX_BACKUP_RETENTION_DAYS" not in result.stderr, result.stderr
        assert [p.name for p in (bucket / "one").glob("*.dump")], result.stdout + result.stderr
        return
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"backup: RAIOX_BACKUP_RETENTION_DAYS must be a whole number of days (1 to 99999), not '{value}'"]
    assert not bucket.exists(), "nothing was dumped"
