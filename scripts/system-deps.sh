#!/usr/bin/env bash
# Install the Debian packages the test suite needs (idempotent).
#
#   nginx        `nginx -t` on the rendered site config (tests/ops)
#   (the linter of every shell script, package shellcheck)
#   systemd      `systemd-analyze verify` on the unit files (tests/ops)
#   chromium     headless browser for the admin-panel tests (Playwright)
#   fail2ban     fail2ban-regex on the admin-login filter (tests/ops)
#   openssl      self-signed certificate for the nginx test
#   git, curl    deploy rehearsal (git archive, health checks)
#   util-linux   flock, used by deploy/scripts/deploy.sh
#   logrotate    `logrotate --debug` on nginx's rendered logrotate file (tests/ops)
#
# Does nothing when every package is already installed. Never starts services:
# a temporary policy-rc.d keeps apt from launching nginx on port 80.
set -euo pipefail

PACKAGES=(nginx shellcheck systemd chromium fail2ban openssl git curl util-linux logrotate ca-certificates)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "system-deps: all present (${PACKAGES[*]})"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    SUDO=(sudo)
else
    SUDO=()
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 0755 "$policy"
    created_policy=1
fi
cleanup() {
    if [[ $created_policy -eq 1 ]]; then
        "${SUDO[@]}" rm -f "$policy"
    fi
}
trap cleanup EXIT

echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
