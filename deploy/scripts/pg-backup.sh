#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# raiox-pg-backup: dump each database with pg_dump (custom format), upload it next to its
# sha256, and delete dumps older than the retention. Run nightly by raiox-pg-backup.timer
# as the postgres user (peer authentication, nothing to store).
#
# A database whose dump, upload or pruning fails does not stop the others: each failure is
# reported ("backup: FAILED ..." on stderr), every database is tried, and the script exits 1
# at the end when any failed (the unit then shows as failed). A failed database's old dumps
# are never pruned.
#
# Settings (environment; /etc/raiox/backup.env on the db host):
#   RAIOX_BACKUP_URL              s3://BUCKET/PREFIX (s3cmd, DigitalOcean Spaces) or file:///DIR
#   RAIOX_BACKUP_DATABASES        space-separated database names
#   RAIOX_BACKUP_RETENTION_DAYS   default 30 (the bucket's lifecycle rule is the second net)
#   S3CMD_CONFIG                  s3cmd configuration with the Spaces key (s3:// only)
#   RAIOX_BACKUP_KEPT_WARN_DAYS   default 7: warn while a database a restore kept (DB_before_restore_<time>, the
#                                 replaced database, patients' data outside the retention purge) is older than this
#   PG_BIN                        folder of pg_dump (default: from PATH)
# Dumps are named DB/DB-YYYYMMDDTHHMMSSZ.dump under the URL.
set -euo pipefail

url=${RAIOX_BACKUP_URL:?set RAIOX_BACKUP_URL}
databases=${RAIOX_BACKUP_DATABASES:?set RAIOX_BACKUP_DATABASES}
retention=${RAIOX_BACKUP_RETENTION_DAYS:-30}
pg_dump=${PG_BIN:+$PG_BIN/}pg_dump
kept_warn_days=${RAIOX_BACKUP_KEPT_WARN_DAYS:-7}

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=backup-store.sh
source "$here/backup-store.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cutoff=$(date -u -d "-${retention} days" +%Y%m%dT%H%M%SZ)

backup_database() { # DB: dump, checksum, upload, then prune the dumps older than the retention
    # Called left of `||`, where set -e does not apply: each step checks its own status.
    local db=$1 name="$1-$stamp.dump" listing old old_stamp
    echo "backup: dumping $db"
    "$pg_dump" --format=custom --compress=6 --dbname="$db" --file="$work/$name" \
        || { echo "backup: FAILED $db: pg_dump failed" >&2; return 1; }
    (cd "$work" && sha256sum "$name" >"$name.sha256") || { echo "backup: FAILED $db: sha256sum" >&2; return 1; }
    { store_put "$work/$name" "$db/$name" && store_put "$work/$name.sha256" "$db/$name.sha256"; } \
        || { echo "backup: FAILED $db: upload to $url/$db/ failed" >&2; return 1; }
    echo "backup: $db -> $url/$db/$name ($(stat -c %s "$work/$name") bytes)"
    rm -f "$work/$name" "$work/$name.sha256"  # uploaded: the next database has the disk space
    listing=$(store_ls "$db") || { echo "backup: FAILED $db: listing $url/$db/ to prune it" >&2; return 1; }
    while IFS= read -r old; do
        [[ -n "$old" ]] || continue
        old_stamp=${old#"$db-"}
        old_stamp=${old_stamp%%.dump*}
        if [[ "$old_stamp" < "$cutoff" ]]; then
            echo "backup: pruning $db/$old (older than $retention days)"
            store_rm "$db/$old" || { echo "backup: FAILED $db: pruning $db/$old" >&2; return 1; }
        fi
    done <<<"$listing"
}

warn_kept_copies() { # a warning (priority warning in the journal) per kept copy older than the limit; never fails
    local copies copy age prefix=""
    [[ -n "${JOURNAL_STREAM:-}" ]] && prefix="<4>"  # systemd reads the priority from the prefix
    copies=$(for db in $databases; do "$here/pg-restore.sh" --list-kept "$db" | grep ' days$'; done) || true
    while read -r copy age _; do
        [[ -n "$copy" ]] || continue
        if ((age >= kept_warn_days)); then
            echo "${prefix}backup: WARNING: $copy, kept by a restore $age days ago, still holds the data from" \
                "before that restore (patients' data outside the retention purge): check the restore, then" \
                "raiox-pg-restore --drop-kept ${copy%_before_restore_*} --older-than $kept_warn_days" >&2
        fi
    done <<<"$copies"
}

failed=()
for db in $databases; do
    backup_database "$db" || failed+=("$db")
done
warn_kept_copies
if ((${#failed[@]})); then
    echo "backup: ${#failed[@]} of $(wc -w <<<"$databases") databases failed: ${failed[*]}" >&2
    exit 1
fi
echo "backup: all databases backed up ($databases)"
