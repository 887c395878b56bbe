#!/usr/bin/env bash
# shellcheck disable=SC2029 # remote commands are built here on purpose (client-side expansion)
# Run deploy.sh on each host over SSH, detached from the SSH session: the deploy keeps going if
# the connection drops, and this script follows its log until it leaves an exit status.
#
#   remote-deploy.sh COMMIT ARCHIVE HOST...
# Env: DEPLOY_USER (deploy), DEPLOY_SSH_KEY_FILE (~/.ssh/id_deploy), RAIOX_ROOT (/srv/raiox),
#      DEPLOY_TIMEOUT (9000 s per host: a deploy may wait for the deploy lock, RAIOX_LOCK_TIMEOUT, 4500 s, behind
#      another's reindex, then reindex the catalog itself, up to RAIOX_REINDEX_TIMEOUT, 3600 s, more). Hosts are deployed one after another, in the order given
#      (the first one migrates the database and reindexes; stop at the first failure).
set -euo pipefail

[[ $# -ge 3 ]] || { echo "usage: $0 COMMIT ARCHIVE HOST..." >&2; exit 64; }
commit=$1
archive=$2
shift 2

user=${DEPLOY_USER:-deploy}
key=${DEPLOY_SSH_KEY_FILE:-$HOME/.ssh/id_deploy}
root=${RAIOX_ROOT:-/srv/raiox}
timeout=${DEPLOY_TIMEOUT:-9000}
here=$(dirname "$(readlink -f "$0")")
# One SSH connection per host, shared by every scp/ssh below (ControlMaster): the app hosts' firewall rate-limits
# new SSH connections (ufw `limit`: 6 in 30 s), which polling the log every 5 s with fresh connections exceeded.
control=$(mktemp -d)
close_connections() {
    local socket
    for socket in "$control"/*; do
        if [[ -S $socket ]]; then ssh -o ControlPath="$socket" -O exit unused 2>/dev/null || true; fi
    done
    rm -rf "$control"
}
trap close_connections EXIT
ssh_opts=(-i "$key" -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=15 -o ServerAliveInterval=15
          -o ControlMaster=auto -o "ControlPath=$control/%C" -o ControlPersist=120)

deploy_host() {
    local host=$1 target="$user@$1" stamp log lines=0 rc="" deadline
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    log="$root/deploys/$stamp-${commit:0:12}.log"
    echo "== $host: uploading ${commit:0:12}"
    scp "${ssh_opts[@]}" -q "$archive" "$target:$root/incoming/$commit.tar.gz"
    scp "${ssh_opts[@]}" -q "$here/deploy.sh" "$target:$root/incoming/deploy-$commit.sh"
    # setsid + nohup: the deploy belongs to no SSH session
    ssh "${ssh_opts[@]}" "$target" "setsid nohup bash $root/incoming/deploy-$commit.sh --commit $commit \
        --archive $root/incoming/$commit.tar.gz --log $log </dev/null >/dev/null 2>&1 &"
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        sleep 5
        local chunk
        if ! chunk=$(ssh "${ssh_opts[@]}" "$target" "tail -n +$((lines + 1)) $log 2>/dev/null; true"); then
            echo "($host: SSH hiccup, the deploy goes on; retrying)"
            continue
        fi
        if [[ -n "$chunk" ]]; then
            printf '%s\n' "$chunk"
            lines=$((lines + $(printf '%s\n' "$chunk" | wc -l)))
        fi
        rc=$(ssh "${ssh_opts[@]}" "$target" "cat $log.rc 2>/dev/null || true") || rc=""
        if [[ -n "$rc" ]]; then
            break
        fi
    done
    ssh "${ssh_opts[@]}" "$target" "rm -f $root/incoming/$commit.tar.gz $root/incoming/deploy-$commit.sh" || true
    if [[ -z "$rc" ]]; then
        echo "== $host: no result after ${timeout}s; see $log on the host" >&2
        return 1
    fi
    if [[ "$rc" != "0" ]]; then
        echo "== $host: deploy FAILED (exit $rc; 1 = rolled back or nothing switched, 2 = rollback failed)" >&2
        return 1
    fi
    echo "== $host: deployed ${commit:0:12}"
}

for host in "$@"; do
    deploy_host "$host"
done
