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
#   RAIOX_BACKUP_RETENTION_DAYS   default 30 (a whole number of days, at least 1; the bucket's lifecycle rule is the
#                                 second net)
#   S3CMD_CONFIG                  s3cmd configuration with the Spaces key (s3:// only)
#   RAIOX_BACKUP_KEPT_WARN_DAYS   default 7 (a whole number of days): warn while a database a restore kept
#                                 (DB_before_restore_<time>, the replaced database, patients' data outside the
#                                 retention purge) is older than this
#   PG_BIN                        folder of pg_dump (default: from PATH)
# Dumps are named DB/DB-YYYYMMDDTHHMMSSZ.dump under the URL.
# Under systemd (StateDirectory=, $STATE_DIRECTORY) it also rewrites raiox_backup_kept.prom there, for node-exporter's
# textfile collector (next to backup-status.sh's raiox_backup.prom), per database of RAIOX_BACKUP_DATABASES:
#   raiox_backup_kept_copies{database}               how many copies earlier restores kept
#   raiox_backup_kept_oldest_age_seconds{database}   the age of the oldest (0: none)
#   raiox_backup_kept_warn_age_seconds{database}     RAIOX_BACKUP_KEPT_WARN_DAYS in seconds, so the alert
#                                                    (oldest_age > warn_age) follows the setting, never a copy of it
# A database whose copies could not be listed has none of them that night.
set -euo pipefail

url=${RAIOX_BACKUP_URL:?set RAIOX_BACKUP_URL}
databases=${RAIOX_BACKUP_DATABASES:?set RAIOX_BACKUP_DATABASES}
retention=${RAIOX_BACKUP_RETENTION_DAYS:-30}
[[ "$retention" =~ ^0*[1-9][0-9]{0,4}$ && ${#retention} -le 5 ]] || {
    echo "backup: RAIOX_BACKUP_RETENTION_DAYS must be a whole number of days (1 to 99999), not '$retention'" >&2
    exit 2
}
retention=$((10#$retention))  # 08 is 8 days, not a bad octal number
pg_dump=${PG_BIN:+$PG_BIN/}pg_dump
kept_warn_days=${RAIOX_BACKUP_KEPT_WARN_DAYS:-7}
[[ "$kept_warn_days" =~ ^[0-9]{1,5}$ ]] || {
    echo "backup: RAIOX_BACKUP_KEPT_WARN_DAYS must be a whole number of days (0 to 99999), not '$kept_warn_days'" >&2
    exit 2
}
kept_warn_days=$((10#$kept_warn_days))  # 08 is 8 days, not a bad octal number

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

kept_copies_report() { # per database: a warning (journal priority warning) per kept copy older than the limit, and
    # its count and oldest age for monitoring (raiox_backup_kept.prom); never fails
    local db listing copy age stamp count oldest now prefix="" counts="" ages="" limits="" tmp
    [[ -n "${JOURNAL_STREAM:-}" ]] && prefix="<4>"  # systemd reads the priority from the prefix
    now=$(date +%s)
    for db in $databases; do
        if ! listing=$("$here/pg-restore.sh" --list-kept "$db"); then
            echo "${prefix}backup: WARNING: could not list the copies of $db earlier restores kept" >&2
            continue
        fi
        count=0 oldest=0
        while read -r copy age _; do  # oldest first; "restore: no kept copy of DB" when none
            [[ "$copy" =~ ^${db}_before_restore_([0-9]{14})$ ]] || continue
            stamp=${BASH_REMATCH[1]}
            if ((count++ == 0)); then
                oldest=$((now - $(date -u -d "${stamp:0:8} ${stamp:8:2}:${stamp:10:2}:${stamp:12:2}" +%s)))
            fi
            if ((age >= kept_warn_days)); then
                echo "${prefix}backup: WARNING: $copy, kept by a restore $age days ago, still holds the data from" \
                    "before that restore (patients' data outside the retention purge): check the restore, then" \
                    "raiox-pg-restore --drop-kept $db --older-than $kept_warn_days" >&2
            fi
        done <<<"$listing"
        counts+="raiox_backup_kept_copies{database=\"$db\"} $count"$'\n'
        ages+="raiox_backup_kept_oldest_age_seconds{database=\"$db\"} $((oldest > 0 ? oldest : 0))"$'\n'
        limits+="raiox_backup_kept_warn_age_seconds{database=\"$db\"} $((kept_warn_days * 86400))"$'\n'
    done
    [[ -n "${STATE_DIRECTORY:-}" ]] || return 0
    # written aside, then renamed: node-exporter never reads half a file
    if ! tmp=$(mktemp "$STATE_DIRECTORY/.raiox_backup_kept.prom.XXXXXX") || ! {
        echo "# HELP raiox_backup_kept_copies Databases a restore kept (<db>_before_restore_<time>) not dropped yet."
        echo "# TYPE raiox_backup_kept_copies gauge"
        printf '%s' "$counts"
        echo "# HELP raiox_backup_kept_oldest_age_seconds Age of the oldest database a restore kept (0: none)."
        echo "# TYPE raiox_backup_kept_oldest_age_seconds gauge"
        printf '%s' "$ages"
        echo "# HELP raiox_backup_kept_warn_age_seconds RAIOX_BACKUP_KEPT_WARN_DAYS in seconds: the age the nightly warning"\
            "and the alert (oldest age above it) start at."
        echo "# TYPE raiox_backup_kept_warn_age_seconds gauge"
        printf '%s' "$limits"
    } >"$tmp" || ! chmod 0644 "$tmp" || ! mv -f "$tmp" "$STATE_DIRECTORY/raiox_backup_kept.prom"; then
        # 0644: node-exporter reads it (the backup unit's umask is 0077)
        rm -f "${tmp:-}"
        echo "${prefix}backup: WARNING: could not write $STATE_DIRECTORY/raiox_backup_kept.prom" >&2
    fi
}

failed=()
for db in $databases; do
    backup_database "$db" || failed+=("$db")
done
kept_copies_report
if ((${#failed[@]})); then
    echo "backup: ${#failed[@]} of $(wc -w <<<"$databases") databases failed: ${failed[*]}" >&2
    exit 1
fi
echo "backup: all databases backed up ($databases)"
