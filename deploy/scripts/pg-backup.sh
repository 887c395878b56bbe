#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# raiox-pg-backup: dump each database with pg_dump (custom format), upload it next to its
# sha256, and delete dumps older than the retention. Run nightly by raiox-pg-backup.timer
# as the postgres user (peer authentication, nothing to store).
#
# Settings (environment; /etc/raiox/backup.env on the db host):
#   RAIOX_BACKUP_URL              s3://BUCKET/PREFIX (s3cmd, DigitalOcean Spaces) or file:///DIR
#   RAIOX_BACKUP_DATABASES        space-separated database names
#   RAIOX_BACKUP_RETENTION_DAYS   default 30 (the bucket's lifecycle rule is the second net)
#   S3CMD_CONFIG                  s3cmd configuration with the Spaces key (s3:// only)
#   PG_BIN                        folder of pg_dump (default: from PATH)
# Dumps are named DB/DB-YYYYMMDDTHHMMSSZ.dump under the URL.
set -euo pipefail

url=${RAIOX_BACKUP_URL:?set RAIOX_BACKUP_URL}
databases=${RAIOX_BACKUP_DATABASES:?set RAIOX_BACKUP_DATABASES}
retention=${RAIOX_BACKUP_RETENTION_DAYS:-30}
pg_dump=${PG_BIN:+$PG_BIN/}pg_dump

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=backup-store.sh
source "$here/backup-store.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cutoff=$(date -u -d "-${retention} days" +%Y%m%dT%H%M%SZ)

for db in $databases; do
    name="$db-$stamp.dump"
    echo "backup: dumping $db"
    "$pg_dump" --format=custom --compress=6 --dbname="$db" --file="$work/$name"
    (cd "$work" && sha256sum "$name" >"$name.sha256")
    store_put "$work/$name" "$db/$name"
    store_put "$work/$name.sha256" "$db/$name.sha256"
    echo "backup: $db -> $url/$db/$name ($(stat -c %s "$work/$name") bytes)"
    while IFS= read -r old; do
        old_stamp=${old#"$db-"}
        old_stamp=${old_stamp%%.dump*}
        if [[ "$old_stamp" < "$cutoff" ]]; then
            echo "backup: pruning $db/$old (older than $retention days)"
            store_rm "$db/$old"
        fi
    done < <(store_ls "$db")
done
