#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# raiox-pg-restore: restore a nightly dump made by raiox-pg-backup.
#
#   raiox-pg-restore --list DATABASE
#   raiox-pg-restore DATABASE [DUMP_NAME|latest] [--into TARGET_DB]
#
# Downloads the dump, checks its sha256, and restores it with pg_restore in one transaction
# (--clean --if-exists: objects in the dump replace their current version). With --into, the
# dump goes into another database (created when missing), which is how a restore is rehearsed
# without touching the live one. Same settings as raiox-pg-backup (RAIOX_BACKUP_URL, S3CMD_CONFIG,
# PG_BIN). Stop the raiox services that use DATABASE before restoring over it.
set -euo pipefail

usage() {
    echo "usage: $0 --list DATABASE | $0 DATABASE [DUMP_NAME|latest] [--into TARGET_DB]" >&2
    exit 64
}

url=${RAIOX_BACKUP_URL:?set RAIOX_BACKUP_URL}
bin=${PG_BIN:+$PG_BIN/}
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

if [[ "$dump" == "latest" ]]; then
    dump=$(store_ls "$db" | grep '\.dump$' | tail -n 1 || true)
    [[ -n "$dump" ]] || { echo "restore: no dump of $db under $url" >&2; exit 1; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "restore: fetching $db/$dump"
store_get "$db/$dump" "$work/$dump"
store_get "$db/$dump.sha256" "$work/$dump.sha256"
(cd "$work" && sha256sum --check --quiet "$dump.sha256")

exists=$("${bin}psql" --dbname=postgres --tuples-only --no-align \
    --command="SELECT 1 FROM pg_database WHERE datname = '$target'")
if [[ "$exists" != "1" ]]; then
    echo "restore: creating database $target"
    "${bin}createdb" "$target"
fi
echo "restore: $dump -> database $target"
"${bin}pg_restore" --clean --if-exists --single-transaction --exit-on-error \
    --dbname="$target" "$work/$dump"
echo "restore: done"
