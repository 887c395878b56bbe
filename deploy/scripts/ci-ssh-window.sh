#!/usr/bin/env bash
# Open (or close) port 22 of the web cloud firewall to this CI runner's address only, for the
# length of a deploy: GitHub-hosted runners have no fixed address, and SSH is otherwise open to
# the operators' CIDRs only. Needs doctl authenticated (DIGITALOCEAN_TOKEN).
#
#   ci-ssh-window.sh open|close
# Env: DO_FIREWALL_NAME (default raiox-web); the address is kept in $RUNNER_TEMP between steps.
set -euo pipefail

action=${1:-}
name=${DO_FIREWALL_NAME:-raiox-web}
state="${RUNNER_TEMP:-/tmp}/ci-ssh-window.addr"

firewall_id=$(doctl compute firewall list --format ID,Name --no-header | awk -v n="$name" '$2 == n {print $1}')
[[ -n "$firewall_id" ]] || { echo "no cloud firewall named $name" >&2; exit 1; }

case "$action" in
    open)
        addr=$(curl -fsS --max-time 10 https://checkip.amazonaws.com | tr -d '[:space:]')
        [[ "$addr" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || { echo "could not learn this runner's address" >&2; exit 1; }
        echo "$addr" >"$state"
        doctl compute firewall add-rules "$firewall_id" --inbound-rules "protocol:tcp,ports:22,address:$addr/32"
        echo "SSH open to $addr/32 on $name"
        ;;
    close)
        if [[ -s "$state" ]]; then
            addr=$(cat "$state")
            doctl compute firewall remove-rules "$firewall_id" --inbound-rules "protocol:tcp,ports:22,address:$addr/32"
            rm -f "$state"
            echo "SSH closed to $addr/32 on $name"
        fi
        ;;
    *)
        echo "usage: $0 open|close" >&2
        exit 64
        ;;
esac
