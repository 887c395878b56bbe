#!/usr/bin/env bash
# Open (or close) port 22 of the web cloud firewall to this CI runner's address only, for the
# length of a deploy: GitHub-hosted runners have no fixed address, and SSH is otherwise open to
# the operators' CIDRs only. Talks to the DigitalOcean API with curl (no third-party action gets
# the token); the token is passed to curl on stdin, never on its command line or in the log.
#
#   ci-ssh-window.sh open|close
# Env: DIGITALOCEAN_TOKEN (a custom-scoped token: firewall read + update is all this needs),
#      DO_FIREWALL_NAME (default raiox-web), DO_API_URL (default https://api.digitalocean.com/v2),
#      CHECKIP_URL (default https://checkip.amazonaws.com: tells the runner its public address).
# The address is kept in $RUNNER_TEMP between the open and the close step, only when this run added the rule: an
# identical rule that was there before (an operator's /32) is neither added again nor removed by the close step.
# Two firewalls of that name: it fails, naming them (it cannot know which one the hosts are behind).
set -euo pipefail

action=${1:-}
case "$action" in
    open | close) ;;
    *)
        echo "usage: $0 open|close" >&2
        exit 64
        ;;
esac
: "${DIGITALOCEAN_TOKEN:?set DIGITALOCEAN_TOKEN}"
name=${DO_FIREWALL_NAME:-raiox-web}
api=${DO_API_URL:-https://api.digitalocean.com/v2}
checkip=${CHECKIP_URL:-https://checkip.amazonaws.com}
state="${RUNNER_TEMP:-/tmp}/ci-ssh-window.addr"

do_api() { # METHOD PATH [JSON BODY]
    local args=(-fsS --max-time 30 -X "$1" -H "Content-Type: application/json" --config -)
    if [[ -n "${3:-}" ]]; then
        args+=(--data "$3")
    fi
    printf 'header = "Authorization: Bearer %s"\n' "$DIGITALOCEAN_TOKEN" | curl "${args[@]}" "$api$2"
}

ssh_rule() { # ADDRESS: the inbound rule, as the API's JSON
    printf '{"inbound_rules":[{"protocol":"tcp","ports":"22","sources":{"addresses":["%s/32"]}}]}' "$1"
}

firewalls=$(do_api GET "/firewalls?per_page=200")
found=$(python3 -c '
import json, sys
print(" ".join(f["id"] for f in json.load(sys.stdin)["firewalls"] if f["name"] == sys.argv[1]))' "$name" <<<"$firewalls")
read -r -a ids <<<"$found"
if [[ ${#ids[@]} -eq 0 ]]; then
    echo "no cloud firewall named $name" >&2
    exit 1
elif [[ ${#ids[@]} -gt 1 ]]; then
    echo "${#ids[@]} cloud firewalls are named $name (ids ${ids[*]}): which one to open is not known; rename or" \
        "delete the extra one(s) in DigitalOcean (infra/ manages one), or set DO_FIREWALL_NAME" >&2
    exit 1
fi
firewall_id=${ids[0]}

ssh_open_to() { # ADDRESS: yes when the firewall already has the rule this script adds (an operator's /32, say)
    python3 -c '
import json, sys
fw_id, addr = sys.argv[1], sys.argv[2]
fw = next(f for f in json.load(sys.stdin)["firewalls"] if f["id"] == fw_id)
print("yes" if any(r.get("protocol") == "tcp" and str(r.get("ports")) == "22"
                   and {addr, addr + "/32"} & set((r.get("sources") or {}).get("addresses") or [])
                   for r in fw.get("inbound_rules") or []) else "no")' "$firewall_id" "$1" <<<"$firewalls"
}

if [[ "$action" == open ]]; then
    rm -f "$state"
    addr=$(curl -fsS --max-time 10 "$checkip" | tr -d '[:space:]')
    [[ "$addr" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || { echo "could not learn this runner's address" >&2; exit 1; }
    if [[ $(ssh_open_to "$addr") == yes ]]; then
        # not this run's rule: the close step must leave it (its DELETE would remove the operator's address)
        echo "SSH was already open to $addr/32 on $name (a rule this run did not add): left as it is"
        exit 0
    fi
    do_api POST "/firewalls/$firewall_id/rules" "$(ssh_rule "$addr")"
    echo "$addr" >"$state"  # written once added: the close step removes only what this run added
    echo "SSH open to $addr/32 on $name"
elif [[ -s "$state" ]]; then
    addr=$(cat "$state")
    do_api DELETE "/firewalls/$firewall_id/rules" "$(ssh_rule "$addr")"
    rm -f "$state"
    echo "SSH closed to $addr/32 on $name"
else
    echo "nothing to close on $name: this run added no SSH rule"
fi
