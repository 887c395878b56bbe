#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# raiox-pg-restore: restore a nightly dump made by raiox-pg-backup.
#
#   raiox-pg-restore --list DATABASE
#   raiox-pg-restore DATABASE [DUMP_NAME|latest] [--into TARGET_DB]
#   raiox-pg-restore --list-kept DATABASE
#   raiox-pg-restore --drop-kept DATABASE [--older-than DAYS]
#
# --list-kept lists the databases earlier restores kept (DATABASE_before_restore_<time>: the replaced database, with
# its patients' data, outside the retention purge), with their age in days; --drop-kept drops them (those older than
# DAYS only, when given). Only names of exactly that form are touched, never DATABASE itself; a copy someone is
# connected to is not dropped (named, exit 1). The nightly backup warns while a copy older than
# RAIOX_BACKUP_KEPT_WARN_DAYS exists, and records their count and the oldest's age for Prometheus
# (raiox_backup_kept.prom).
#
# Downloads the dump and checks its sha256. The dump is always restored into an empty database, never over the
# objects of an existing one: a restore over the live database (pg_restore --clean) left the tables a later
# migration had created, and the dump brought back the older alembic_version, so the next `raiox db upgrade` failed
# ("already exists"), when --clean itself did not fail on them. So:
#   - TARGET (DATABASE itself, or --into TARGET_DB) does not exist: it is created (from template0) and the dump
#     restored into it; a failed restore drops it again. This is how a restore is rehearsed (--into raiox_verify).
#   - TARGET exists (the real restore, over the live database): the dump goes into a new database,
#     TARGET_restore_<time>, created with TARGET's owner, encoding and locale, in one transaction (a damaged dump
#     changes nothing and the new database is dropped). It is checked (every table of the dump is there; the
#     alembic revision is printed), gets TARGET's database-level settings (who may connect: the app role's CONNECT,
#     PUBLIC's revoke; connection limit; ALTER DATABASE ... SET), then the two are swapped in one transaction
#     (ALTER DATABASE ... RENAME): TARGET is the dump's, the replaced one is kept as TARGET_before_restore_<time>
#     (drop it once the restore is checked). The swap needs nobody connected to TARGET: stop the raiox services
#     that use it first (and hold the deploy lock on their hosts: docs/operations.md); with a session still
#     connected the script names it and changes nothing.
# Objects are restored with their owners and their grants (the app role's table grants and the owner's default
# privileges are in the dump). Same settings as raiox-pg-backup (RAIOX_BACKUP_URL, S3CMD_CONFIG, PG_BIN). Runs
# as a superuser (postgres): the swap renames databases, the restore creates the vector extension.
set -euo pipefail

usage() {
    echo "usage: $0 --list DATABASE | $0 DATABASE [DUMP_NAME|latest] [--into TARGET_DB]" \
        "| $0 --list-kept DATABASE | $0 --drop-kept DATABASE [--older-than DAYS]" >&2
    exit 64
}

bin=${PG_BIN:+$PG_BIN/}

kept_copies() { # DATABASE MIN_DAYS: "name age_days" of its kept copies at least MIN_DAYS old, oldest first
    # the age is the restore's time in the name (UTC); only DATABASE_before_restore_ + 14 digits match
    "${bin}psql" -X --quiet --set=ON_ERROR_STOP=1 --dbname=postgres --tuples-only --no-align --field-separator=' ' \
        --set=db="$1" --set=days="$2" <<'SQL'
SELECT datname, floor(extract(epoch FROM now() - to_timestamp(right(datname, 14), 'YYYYMMDDHH24MISS')::timestamp
        AT TIME ZONE 'UTC') / 86400)::int AS age
    FROM pg_database
    WHERE datname ~ ('^' || :'db' || '_before_restore_[0-9]{14}$') AND datname <> :'db'
      AND now() - (to_timestamp(right(datname, 14), 'YYYYMMDDHH24MISS')::timestamp AT TIME ZONE 'UTC')
          >= make_interval(days => :'days'::int)
    ORDER BY right(datname, 14)
SQL
}

if [[ "${1:-}" == "--list-kept" || "${1:-}" == "--drop-kept" ]]; then
    mode=$1 older=0
    [[ $# -eq 2 || ($# -eq 4 && "$mode" == "--drop-kept" && "$3" == "--older-than") ]] || usage
    db=$2
    [[ $# -eq 4 ]] && older=$4
    [[ "$db" =~ ^[a-z_][a-z0-9_]{0,32}$ ]] \
        || { echo "restore: database name '$db': lower-case letters, digits and _ only" >&2; exit 64; }
    [[ "$older" =~ ^[0-9]{1,5}$ ]] || { echo "restore: --older-than takes a number of days" >&2; exit 64; }
    copies=$(kept_copies "$db" "$older")
    if [[ -z "$copies" ]]; then
        echo "restore: no kept copy of $db${4:+ older than $older days}"
        exit 0
    fi
    failed=0
    while read -r copy age; do
        [[ -n "$copy" && "$copy" != "$db" ]] || continue  # never the live database (the pattern excludes it too)
        if [[ "$mode" == "--list-kept" ]]; then
            echo "$copy $age days"
        elif "${bin}dropdb" "$copy"; then
            echo "restore: dropped $copy (kept by a restore $age days ago)"
        else
            echo "restore: FAILED to drop $copy (someone connected to it? see pg_stat_activity)" >&2
            failed=1
        fi
    done <<<"$copies"
    exit $failed
fi

url=${RAIOX_BACKUP_URL:?set RAIOX_BACKUP_URL}
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=backup-store.sh
source "$here/backup-store.sh"

[[ $# -ge 1 ]] || usage
if [[ "$1" == "--list" ]]; then
    [[ $# -eq 2 ]] || usage
    store_ls "$2" | grep '\.dump$'
    exit 0
fi

db=$1
dump=${2:-latest}
target=$db
if [[ $# -ge 3 ]]; then
    [[ "$3" == "--into" && $# -eq 4 ]] || usage
    target=$4
fi
# the names built from TARGET stay plain identifiers (no quoting needed) of at most 63 bytes
[[ "$target" =~ ^[a-z_][a-z0-9_]{0,32}$ ]] \
    || { echo "restore: target database name '$target': lower-case letters, digits and _ only, at most 33" >&2; exit 64; }

psql_at() { # DB ARG...: rows unaligned, no headers; stops at the first error
    local on=$1
    shift
    "${bin}psql" -X --quiet --set=ON_ERROR_STOP=1 --dbname="$on" --tuples-only --no-align "$@"
}

sessions_on() { # DB: the other sessions connected to it, one line each
    psql_at postgres --command="SELECT format('pid %s: %s from %s (%s), %s', pid, usename,
        coalesce(host(client_addr), 'local'), coalesce(nullif(application_name, ''), '?'), state)
        FROM pg_stat_activity WHERE datname = '$1' AND pid <> pg_backend_pid()"
}

refuse_sessions() { # DB: fail, naming them, while anyone is connected to it
    local who line
    who=$(sessions_on "$1")
    if [[ -n "$who" ]]; then
        echo "restore: FAILED: database $1 is in use; stop the services that use it (docs/operations.md," \
            "Backups and restore) and run the restore again. Connected now:" >&2
        while IFS= read -r line; do echo "restore:   $line" >&2; done <<<"$who"
        return 1
    fi
}

exists=$(psql_at postgres --command="SELECT 1 FROM pg_database WHERE datname = '$target'")
stamp=$(date -u +%Y%m%d%H%M%S)
if [[ "$exists" == "1" ]]; then
    fresh="${target}_restore_$stamp"
    replaced="${target}_before_restore_$stamp"
    refuse_sessions "$target" || exit 1  # before the download; checked again at the swap
else
    fresh=$target
    replaced=""
fi

if [[ "$dump" == "latest" ]]; then
    dump=$(store_ls "$db" | grep '\.dump$' | tail -n 1 || true)
    [[ -n "$dump" ]] || { echo "restore: no dump of $db under $url" >&2; exit 1; }
fi

work=$(mktemp -d)
created=""
cleanup() {
    rm -rf "$work"
    if [[ -n "$created" ]]; then  # a restore that did not finish: its new database goes
        echo "restore: dropping the unfinished database $created" >&2
        "${bin}dropdb" --if-exists "$created" || true
    fi
}
trap cleanup EXIT
echo "restore: fetching $db/$dump"
store_get "$db/$dump" "$work/$dump"
store_get "$db/$dump.sha256" "$work/$dump.sha256"
(cd "$work" && sha256sum --check --quiet "$dump.sha256")

if [[ -n "$replaced" ]]; then
    # the same owner, encoding and locale as the database it replaces
    create=$(psql_at postgres --command="SELECT format('CREATE DATABASE %I TEMPLATE template0 OWNER %I ENCODING %L
        LC_COLLATE %L LC_CTYPE %L', '$fresh', pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate,
        datctype) FROM pg_database WHERE datname = '$target'")
else
    create="CREATE DATABASE $fresh TEMPLATE template0"
fi
echo "restore: creating database $fresh"
psql_at postgres --command="$create"
created=$fresh

echo "restore: $dump -> database $fresh"
"${bin}pg_restore" --single-transaction --exit-on-error --dbname="$fresh" "$work/$dump"

# check: every table of the dump is in the new database
missing=0
while IFS= read -r table; do
    [[ -n "$table" ]] || continue
    found=$(psql_at "$fresh" --command="SELECT to_regclass('$table') IS NOT NULL")
    [[ "$found" == "t" ]] || { echo "restore: FAILED: table $table of the dump is missing" >&2; missing=1; }
done < <("${bin}pg_restore" --list "$work/$dump" | awk '$4 == "TABLE" && $5 != "DATA" {print $5 "." $6}')
((missing == 0)) || exit 1
tables=$(psql_at "$fresh" --command="SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
revision=none
if [[ $(psql_at "$fresh" --command="SELECT to_regclass('public.alembic_version') IS NOT NULL") == "t" ]]; then
    revision=$(psql_at "$fresh" --command="SELECT string_agg(version_num, ',') FROM public.alembic_version")
fi
echo "restore: $fresh holds $tables tables of the dump, alembic revision $revision"

if [[ -z "$replaced" ]]; then
    created=""
    echo "restore: done ($target is the dump's)"
    exit 0
fi

# What pg_dump does not carry (it dumps a database's contents, not the database itself), taken from the one it
# replaces: who may connect (db.yml: PUBLIC revoked, the app role's CONNECT), the connection limit, the
# database's ALTER DATABASE / ALTER ROLE ... IN DATABASE settings.
echo "restore: giving $fresh the connection grants and settings of $target"
psql_at postgres <<SQL
BEGIN;
SELECT format('ALTER DATABASE %I CONNECTION LIMIT %s', '$fresh', datconnlimit)
    FROM pg_database WHERE datname = '$target' \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', '$fresh')
    FROM pg_database WHERE datname = '$target' AND datacl IS NOT NULL \gexec
SELECT format('GRANT %s ON DATABASE %I TO %s%s', a.privilege_type, '$fresh',
        CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
        CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = '$target' \gexec
SELECT CASE WHEN s.setrole = 0 THEN format('ALTER DATABASE %I SET %s TO %L', '$fresh', split_part(c, '=', 1),
            substr(c, strpos(c, '=') + 1))
        ELSE format('ALTER ROLE %I IN DATABASE %I SET %s TO %L', pg_get_userbyid(s.setrole), '$fresh',
            split_part(c, '=', 1), substr(c, strpos(c, '=') + 1)) END
    FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) c
    WHERE d.datname = '$target' \gexec
COMMIT;
SQL

echo "restore: swapping: $target -> $replaced, $fresh -> $target"
refuse_sessions "$target" || exit 1
# one transaction: both renames or neither (a session connected meanwhile makes the first one fail)
if ! psql_at postgres --command="BEGIN" --command="ALTER DATABASE $target RENAME TO $replaced" \
    --command="ALTER DATABASE $fresh RENAME TO $target" --command="COMMIT"; then
    refuse_sessions "$target" || true
    echo "restore: FAILED: the swap did not happen; $target is as it was" >&2
    exit 1
fi
created=""
echo "restore: done: $target is the dump's ($dump); the replaced database is kept as $replaced:" \
    "check the restore, then drop it: $0 --drop-kept $target (or dropdb $replaced)"
