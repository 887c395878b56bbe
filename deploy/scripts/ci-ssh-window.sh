#!/usr/bin/env bash
# Open (or close) port 22 of the web hosts to this CI runner's address only, for the length of a deploy: GitHub-hosted
# runners have no fixed address, and SSH is otherwise open to the operators' CIDRs only. Talks to the DigitalOcean API
# with curl (no third-party action gets the token); the token is passed to curl on stdin, never on its command line or
# in the log.
#
#   ci-ssh-window.sh open|close
# Env: DIGITALOCEAN_TOKEN (a custom-scoped token: firewall create + read + delete is all this needs),
#      DO_FIREWALL_NAME (default raiox-web), DO_API_URL (default https://api.digitalocean.com/v2),
#      CHECKIP_URL (default https://checkip.amazonaws.com: tells the runner its public address),
#      GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT (set by Actions: name this run's firewall).
# The window is a cloud firewall of this run's own, NAME-ci-RUN-ATTEMPT, with the one SSH rule, applied to the same
# droplets and tags as the firewall NAME (found by name, every page of the API's list read); close deletes that
# firewall only, by the id kept in $RUNNER_TEMP. So two deploys at once (stage and production) whose runners share an
# address each hold their own window, and the first to finish never closes the other's; NAME itself (Terraform's) is
# never changed. When NAME already lets the address in (an operator's /32), open adds nothing and close removes nothing.
# Open also deletes windows older than 4 hours (a run killed before its close step; a deploy job ends within 170 min).
# Two firewalls named NAME: it fails, naming them (it cannot know which one the hosts are behind).
# A window already gone when it is deleted (404: deleted by hand, or by another run's open as stale) counts as closed:
# a warning, exit 0; any other failure of the delete (401, 5xx, no answer) still fails.
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
state="${RUNNER_TEMP:-/tmp}/ci-ssh-window.id"
window="$name-ci-${GITHUB_RUN_ID:-local$$}-${GITHUB_RUN_ATTEMPT:-1}"
stale_after_s=$((4 * 3600))

do_api() { # METHOD PATH [JSON BODY]
    local args=(-fsS --max-time 30 -X "$1" -H "Content-Type: application/json" --config -)
    if [[ -n "${3:-}" ]]; then
        args+=(--data "$3")
    fi
    printf 'header = "Authorization: Bearer %s"\n' "$DIGITALOCEAN_TOKEN" | curl "${args[@]}" "$api$2"
}

delete_firewall() { # ID: 0 deleted, 2 not there (404: already gone), 1 any other failure (reported)
    local code
    code=$(printf 'header = "Authorization: Bearer %s"\n' "$DIGITALOCEAN_TOKEN" | curl -sS --max-time 30 -X DELETE \
        -o /dev/null -w '%{http_code}' --config - "$api/firewalls/$1") || code=${code:-000}
    case "$code" in
        2??) return 0 ;;
        404) return 2 ;;
        *)
            echo "deleting firewall $1 failed: HTTP $code from the DigitalOcean API" >&2
            return 1
            ;;
    esac
}

# Every page of the list (links.pages.next), not the first 200 only: the firewall may be on any page, and a second one
# of that name must be seen wherever it is. Only next's query (page=N&per_page=...) is used, always against $api: the
# token never goes to a host the reply names.
firewalls="" query="per_page=200" pages=0
while :; do
    reply=$(do_api GET "/firewalls?$query" | python3 -c '
import json, sys, urllib.parse
page = json.load(sys.stdin)
nxt = ((page.get("links") or {}).get("pages") or {}).get("next") or ""
print(json.dumps(page["firewalls"]))
print(urllib.parse.urlsplit(nxt).query if nxt else "")')
    mapfile -t lines <<<"$reply"
    firewalls+="${lines[0]}"$'\n'
    next=${lines[1]:-}
    pages=$((pages + 1))
    [[ -n "$next" ]] || break
    if [[ "$next" == "$query" || $pages -ge 100 ]]; then
        echo "the DigitalOcean API's firewall list does not end (page $pages, next: $next)" >&2
        exit 1
    fi
    query=$next
done
firewalls=$(python3 -c '
import json, sys
print(json.dumps({"firewalls": [f for line in sys.stdin if line.strip() for f in json.loads(line)]}))' <<<"$firewalls")

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

ssh_open_to() { # ADDRESS: yes when the firewall NAME itself lets it in (an operator's /32, say)
    python3 -c '
import json, sys
fw_id, addr = sys.argv[1], sys.argv[2]
fw = next(f for f in json.load(sys.stdin)["firewalls"] if f["id"] == fw_id)
print("yes" if any(r.get("protocol") == "tcp" and str(r.get("ports")) == "22"
                   and {addr, addr + "/32"} & set((r.get("sources") or {}).get("addresses") or [])
                   for r in fw.get("inbound_rules") or []) else "no")' "$firewall_id" "$1" <<<"$firewalls"
}

window_body() { # ADDRESS: this run's firewall, on NAME's droplets and tags
    python3 -c '
import json, sys
fw_id, name, addr = sys.argv[1], sys.argv[2], sys.argv[3]
fw = next(f for f in json.load(sys.stdin)["firewalls"] if f["id"] == fw_id)
body = {"name": name, "droplet_ids": fw.get("droplet_ids") or [], "tags": fw.get("tags") or [],
        "inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": [addr + "/32"]}}]}
if not body["droplet_ids"] and not body["tags"]:
    sys.exit("the firewall " + fw["name"] + " applies to no droplet and no tag: no host to open")
print(json.dumps(body))' "$firewall_id" "$window" "$1" <<<"$firewalls"
}

if [[ "$action" == open ]]; then
    rm -f "$state"
    # windows of runs killed before their close step (named NAME-ci-*, older than any deploy job lives)
    stale=$(python3 -c '
import datetime, json, sys
prefix, limit = sys.argv[1] + "-ci-", int(sys.argv[2])
now = datetime.datetime.now(datetime.timezone.utc)
for f in json.load(sys.stdin)["firewalls"]:
    created = datetime.datetime.fromisoformat((f.get("created_at") or "").replace("Z", "+00:00") or now.isoformat())
    if f["name"].startswith(prefix) and (now - created).total_seconds() > limit:
        print(f["id"], f["name"])' "$name" "$stale_after_s" <<<"$firewalls")
    while read -r stale_id stale_name; do
        [[ -n "$stale_id" ]] || continue
        gone=0
        delete_firewall "$stale_id" || gone=$?
        case $gone in
            0) echo "deleted $stale_name ($stale_id): a window left open by a run that never closed it" ;;
            2) echo "warning: $stale_name ($stale_id), a window left open by a run that never closed it, was already gone" >&2 ;;
            *) exit 1 ;;
        esac
    done <<<"$stale"
    addr=$(curl -fsS --max-time 10 "$checkip" | tr -d '[:space:]')
    [[ "$addr" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || { echo "could not learn this runner's address" >&2; exit 1; }
    if [[ $(ssh_open_to "$addr") == yes ]]; then
        echo "SSH was already open to $addr/32 on $name (a rule this run did not add): left as it is"
        exit 0
    fi
    body=$(window_body "$addr")
    created=$(do_api POST "/firewalls" "$body")
    window_id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["firewall"]["id"])' <<<"$created")
    echo "$window_id" >"$state"  # written once created: the close step deletes only what this run created
    echo "SSH open to $addr/32 on $name's droplets (firewall $window, $window_id)"
elif [[ -s "$state" ]]; then
    window_id=$(cat "$state")
    gone=0
    delete_firewall "$window_id" || gone=$?
    if ((gone == 1)); then
        exit 1  # the id stays in $state: the close can be run again
    fi
    rm -f "$state"
    if ((gone == 2)); then
        echo "warning: firewall $window_id (this run's SSH window) was already gone (404: deleted by hand?);" \
            "SSH is closed to this runner" >&2
    else
        echo "SSH closed: firewall $window_id deleted"
    fi
else
    echo "nothing to close on $name: this run added no SSH rule"
fi
