#!/usr/bin/env bash
# raiox-backup-status: record how the nightly backup (raiox-pg-backup.service) ended, where monitoring reads it.
#
#   backup-status.sh ok|failed
#
# `ok` runs as the backup unit's ExecStartPost (only after pg-backup.sh exited 0); `failed` as
# raiox-pg-backup-failed.service, the backup unit's OnFailure= (any database failed, or the unit did not run to its
# end: killed, timed out, could not start). Each rewrites $STATE_DIRECTORY/raiox_backup.prom (systemd's
# StateDirectory=raiox-backup: /var/lib/raiox-backup) atomically, in Prometheus' text format, for node-exporter's
# textfile collector (docs/operations.md, "Backups and restore"):
#   raiox_backup_last_success_timestamp_seconds   the end of the last run that succeeded (0: none yet)
#   raiox_backup_last_failure_timestamp_seconds   the end of the last run that failed (0: none yet)
#   raiox_backup_failed                           1 when the last run failed, else 0
# `failed` also writes a line at priority crit (the "<2>" prefix journald reads) to the journal:
# `journalctl -p crit -u raiox-pg-backup-failed.service`.
set -euo pipefail

outcome=${1:-}
[[ "$outcome" == ok || "$outcome" == failed ]] || { echo "usage: $0 ok|failed" >&2; exit 64; }
dir=${STATE_DIRECTORY:?set STATE_DIRECTORY (systemd does: StateDirectory=)}
file="$dir/raiox_backup.prom"
now=$(date +%s)

previous() { # METRIC: its value in the current file, 0 when none
    local value=""
    if [[ -r "$file" ]]; then
        value=$(awk -v name="$1" '$1 == name {print $2}' "$file" | tail -n 1)
    fi
    [[ "$value" =~ ^[0-9]+$ ]] && echo "$value" || echo 0
}

success=$(previous raiox_backup_last_success_timestamp_seconds)
failure=$(previous raiox_backup_last_failure_timestamp_seconds)
if [[ "$outcome" == ok ]]; then
    success=$now
    failed=0
else
    failure=$now
    failed=1
fi

tmp=$(mktemp "$dir/.raiox_backup.prom.XXXXXX")
cat >"$tmp" <<PROM
# HELP raiox_backup_last_success_timestamp_seconds End of the last nightly database backup that succeeded.
# TYPE raiox_backup_last_success_timestamp_seconds gauge
raiox_backup_last_success_timestamp_seconds $success
# HELP raiox_backup_last_failure_timestamp_seconds End of the last nightly database backup that failed.
# TYPE raiox_backup_last_failure_timestamp_seconds gauge
raiox_backup_last_failure_timestamp_seconds $failure
# HELP raiox_backup_failed 1 when the last nightly database backup failed.
# TYPE raiox_backup_failed gauge
raiox_backup_failed $failed
PROM
chmod 0644 "$tmp"  # node-exporter reads it (the backup unit's umask is 0077)
mv -f "$tmp" "$file"

if [[ "$outcome" == failed ]]; then
    echo "<2>raiox-pg-backup FAILED on $(uname -n): see journalctl -u raiox-pg-backup.service (lines 'backup: FAILED')"
else
    echo "raiox-pg-backup succeeded; recorded in $file"
fi
