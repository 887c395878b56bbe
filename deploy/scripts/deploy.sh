#!/usr/bin/env bash
# Install one commit of Raiox AI as a new release on this host, migrate, embed the
# catalog with the configured model when it lacks its vectors, switch, restart,
# wait for /readyz, and roll back automatically when anything fails.
#
#   deploy.sh --commit SHA (--archive FILE | --repo PATH_OR_URL) [--venv-from VENV] [--log FILE]
#   deploy.sh --hold-lock WHAT -- COMMAND [ARG...]
#   deploy.sh --rollback RELEASE_ID|previous [--log FILE]
#
# --hold-lock runs COMMAND under the deploy lock, taken as a deploy takes it (waits up to RAIOX_LOCK_TIMEOUT, names
# the holder, writes "WHAT by USER (pid N) since TIME" into it): app.yml's catalog check and reindex, and a reindex
# by hand (docs/operations.md), so that a deploy never switches releases under them. Its exit status is COMMAND's
# (1 when the lock was not had in time); its own lines go to stderr. The lock's wait is defined here only.
#
# --rollback switches `current` back to a release still under releases/ (RELEASE_ID, or `previous`: the newest one
# older than the current one), without migrating, under the deploy lock (it waits for a running deploy or reindex as
# a deploy does), restarts the services, waits for /readyz and the services check, and records `rollback` in
# deploys.log. Exit status: 0 rolled back; 1 nothing changed (lock not had, no such release, already current); 2 it
# switched but the release does not come up (`current` stays on it: roll back to another one, or deploy a fix).
#
# Layout under RAIOX_ROOT (default /srv/raiox):
#   releases/<UTC time>-<sha12>/{src,venv,REVISION}   one folder per release
#   current -> releases/<id>                          switched atomically (rename)
#   failed/<id>                                       releases that did not come up
#   deploys.log                                       one line per deploy
#   .deploy.lock                                      flock: one deploy (or app.yml reindex) at a time;
#                                                     the holder writes who it is into it
#
# Settings (environment, or RAIOX_DEPLOY_CONFIG, default /etc/raiox/deploy.env):
#   RAIOX_ROOT, RAIOX_PYTHON (python3), RAIOX_KEEP_RELEASES (5),
#   RAIOX_HEALTH_URL (http://127.0.0.1:8000/readyz), RAIOX_HEALTH_TIMEOUT (90 s),
#   RAIOX_HEALTH_INTERVAL (1 s: the wait between two /readyz tries; fractions allowed),
#   RAIOX_ROLLBACK_HEALTH_TIMEOUT (same as RAIOX_HEALTH_TIMEOUT),
#   RAIOX_RESTART_CMD (sudo systemctl restart raiox-api.service raiox-worker.service),
#   RAIOX_MIGRATE_ENV (/etc/raiox/migrate.env: env file for `raiox db upgrade` and the catalog check; on a
#     host that does not migrate, Ansible points it at catalog.env, enough for the read-only check),
#   RAIOX_MIGRATE (1; 0 on hosts that must not migrate, e.g. the admin panel),
#   RAIOX_REINDEX (same as RAIOX_MIGRATE: 1 checks, with RAIOX_MIGRATE_ENV, that the catalog is ready
#     for the RAIOX_EMBEDDER that file names, and runs `raiox catalog reindex` when it is not; 0 only checks,
#     read-only, and refuses the release when the catalog is not ready: the API hosts' deploy reindexes),
#   RAIOX_REINDEX_TIMEOUT (3600 s: a few thousand references take minutes on one CPU),
#   RAIOX_LOCK_TIMEOUT (RAIOX_REINDEX_TIMEOUT + 900 s: the lock's holder may be a deploy that reindexes, or
#     app.yml's reindex, which takes the same lock), RAIOX_PIP_ARGS (extra pip arguments).
#
# The release's venv gets the dependencies its requirements/prod.lock pins (`make lock`: exact
# versions, hash-checked: pip install --require-hashes), then the build backend its
# requirements/build.lock pins (the same way), then the project itself with --no-deps and
# --no-build-isolation (built with that backend, nothing else downloaded), then `pip check` (which
# refuses the release on any conflict: those installs skip pip's own conflict scan, --no-warn-conflicts). An
# older commit without build.lock is built in pip's isolated build env (a backend pip downloads); one
# without prod.lock is installed from pyproject.toml's ranges (resolved afresh), and the log says so.
# RAIOX_PIP_ARGS goes to every pip install.
#
# --venv-from VENV is for rehearsals: the release still gets its own venv, but it
# reuses VENV's installed dependencies (a .pth file) instead of downloading them;
# the lock is installed over them all the same (a pin VENV satisfies downloads nothing).
#
# Exit status: 0 deployed; 1 failed, previous release still serving (or nothing
# was switched); 2 failed and the rollback failed too; 64 bad usage.
set -Eeuo pipefail

die_usage() {
    echo "usage: $0 --commit SHA (--archive FILE | --repo PATH_OR_URL) [--venv-from VENV] [--log FILE]" >&2
    echo "       $0 --hold-lock WHAT -- COMMAND [ARG...]" >&2
    echo "       $0 --rollback RELEASE_ID|previous [--log FILE]" >&2
    exit 64
}

log() {
    printf '%s deploy: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

commit=""
archive=""
repo=""
venv_from=""
logfile=""
hold_lock=""
held_command=()
rollback=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --commit) commit=${2:-}; shift 2 ;;
        --archive) archive=${2:-}; shift 2 ;;
        --repo) repo=${2:-}; shift 2 ;;
        --venv-from) venv_from=${2:-}; shift 2 ;;
        --log) logfile=${2:-}; shift 2 ;;
        --hold-lock) hold_lock=${2:-}; [[ -n "$hold_lock" ]] || die_usage; shift 2 ;;
        --rollback) rollback=${2:-}; [[ -n "$rollback" ]] || die_usage; shift 2 ;;
        --) shift; held_command=("$@"); break ;;
        -h | --help) die_usage ;;
        *) echo "unknown argument: $1" >&2; die_usage ;;
    esac
done

if [[ -n "$hold_lock" ]]; then
    [[ ${#held_command[@]} -gt 0 && -z "$commit$archive$repo$venv_from$logfile$rollback" ]] || die_usage
elif [[ -n "$rollback" ]]; then
    [[ ${#held_command[@]} -eq 0 && -z "$commit$archive$repo$venv_from" ]] || die_usage
    [[ "$rollback" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || { echo "--rollback takes a release's folder name" >&2; die_usage; }
else
    [[ ${#held_command[@]} -eq 0 ]] || die_usage
    [[ "$commit" =~ ^[0-9a-f]{7,40}$ ]] || { echo "--commit must be a git commit id (hex)" >&2; die_usage; }
    if [[ -n "$archive" && -n "$repo" ]] || [[ -z "$archive" && -z "$repo" ]]; then
        echo "give exactly one of --archive and --repo" >&2
        die_usage
    fi
fi

if [[ -n "$logfile" ]]; then
    # Detached runs (CI over SSH) write everything to a log and leave the exit
    # status in LOG.rc, so a dropped SSH session never interrupts a deploy.
    mkdir -p "$(dirname "$logfile")"
    rm -f "$logfile.rc"
    exec >>"$logfile" 2>&1
    trap 'echo "$?" >"$logfile.rc"' EXIT
fi

# a release runs its own code only
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

config=${RAIOX_DEPLOY_CONFIG:-/etc/raiox/deploy.env}
if [[ -r "$config" ]]; then
    # shellcheck source=/dev/null
    source "$config"
fi

root=${RAIOX_ROOT:-/srv/raiox}
python=${RAIOX_PYTHON:-python3}
keep=${RAIOX_KEEP_RELEASES:-5}
health_url=${RAIOX_HEALTH_URL:-http://127.0.0.1:8000/readyz}
health_timeout=${RAIOX_HEALTH_TIMEOUT:-90}
health_interval=${RAIOX_HEALTH_INTERVAL:-1}
rollback_timeout=${RAIOX_ROLLBACK_HEALTH_TIMEOUT:-$health_timeout}
restart_cmd=${RAIOX_RESTART_CMD:-sudo /usr/bin/systemctl restart raiox-api.service raiox-worker.service}
# after /readyz answers: every restarted service still running (the worker has no health URL; a worker that dies
# at start would otherwise pass the deploy); empty: no check
services_check=${RAIOX_SERVICES_CHECK_CMD:-}
services_settle=${RAIOX_SERVICES_SETTLE_S:-5}
migrate_env=${RAIOX_MIGRATE_ENV:-/etc/raiox/migrate.env}
migrate=${RAIOX_MIGRATE:-1}
reindex=${RAIOX_REINDEX:-$migrate}
reindex_timeout=${RAIOX_REINDEX_TIMEOUT:-3600}
read -r -a pip_args <<<"${RAIOX_PIP_ARGS:-}"

[[ "$keep" =~ ^[0-9]+$ && "$keep" -ge 2 ]] || { echo "RAIOX_KEEP_RELEASES must be >= 2" >&2; exit 64; }
[[ "$health_interval" =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "RAIOX_HEALTH_INTERVAL must be seconds" >&2; exit 64; }
[[ "$reindex_timeout" =~ ^[1-9][0-9]*$ ]] || { echo "RAIOX_REINDEX_TIMEOUT must be seconds (> 0)" >&2; exit 64; }
# the holder may be reindexing (a deploy's reindex, or app.yml's): wait for a whole reindex and the rest of a deploy
lock_timeout=${RAIOX_LOCK_TIMEOUT:-$((reindex_timeout + 900))}
[[ "$lock_timeout" =~ ^[0-9]+$ ]] || { echo "RAIOX_LOCK_TIMEOUT must be seconds" >&2; exit 64; }

mkdir -p "$root/releases" "$root/failed"
deploy_lock="$root/.deploy.lock"
lock_holder() {
    local holder
    holder=$(head -n 1 "$deploy_lock" 2>/dev/null | cut -c 1-300) || true
    echo "${holder:-unknown (it wrote no line)}"
}
take_lock() { # WHAT AGAIN: wait for the deploy lock (fd 9), then write who holds it; AGAIN: what to do on giving up
    # append, never truncate: the holder's own line (who it is, since when) stays readable while others wait
    exec 9>>"$deploy_lock"
    if ! flock -n 9; then
        log "waiting for the deploy lock ($deploy_lock, at most ${lock_timeout}s: RAIOX_LOCK_TIMEOUT); held by:" \
            "$(lock_holder)"
        if ! flock -w "$lock_timeout" 9; then
            log "gave up: the deploy lock is still held after ${lock_timeout}s (RAIOX_LOCK_TIMEOUT) by: $(lock_holder)"
            log "a catalog reindex (a deploy's or app.yml's) may run up to RAIOX_REINDEX_TIMEOUT (${reindex_timeout}s):" \
                "see $root/deploys.log and $root/deploys/, and $2 once it is done"
            exit 1
        fi
    fi
    printf '%s by %s (pid %s) since %s\n' "$1" "$(id -un)" "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$deploy_lock"
}

if [[ -n "$hold_lock" ]]; then
    take_lock "$hold_lock" "try again" >&2
    rc=0
    "${held_command[@]}" 9>&- || rc=$?  # the command does not hold fd 9: the lock ends with this script
    exit "$rc"
fi
if [[ -n "$rollback" ]]; then
    take_lock "rollback to $rollback" "roll back again"
else
    take_lock "deploy of $commit" "deploy again"
fi

release_id="$(date -u +%Y%m%dT%H%M%SZ)-${commit:0:12}"
release="$root/releases/$release_id"
[[ ! -e "$release" ]] || { log "release $release already exists"; exit 1; }
previous=""
if [[ -L "$root/current" ]]; then
    previous=$(readlink "$root/current")
fi

record() {
    printf '%s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$release_id" "$commit" "$1" >>"$root/deploys.log"
}

discard_release() {
    if [[ -d "$release" ]]; then
        mv "$release" "$root/failed/$release_id"
    fi
    # keep the three most recent failed releases for inspection
    local old
    while IFS= read -r old; do
        rm -rf "$root/failed/$old"
    done < <(find "$root/failed" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -r | tail -n +4)
}

fail_before_switch() {
    log "FAILED before switching: $1; current release untouched (${previous:-none})"
    record "failed:$1"
    discard_release
    exit 1
}

# (functions called as `f || handler` run without errexit: every step checks its own status)
fetch_source() {
    mkdir -p "$release/src" || return 1
    if [[ -n "$archive" ]]; then
        local tar_commit
        # `git archive` stores the commit id in the tar header: check it.
        tar_commit=$(gzip -dcf "$archive" | git get-tar-commit-id || true)
        if [[ -n "$tar_commit" && "$tar_commit" != "$commit"* ]]; then
            log "archive holds commit $tar_commit, not $commit"
            return 1
        fi
        tar -xf "$archive" -C "$release/src" || return 1
    else
        local full
        if [[ -d "$repo" ]]; then
            full=$(git -C "$repo" rev-parse --verify "$commit^{commit}") || return 1
            git -C "$repo" archive --format=tar "$full" | tar -x -C "$release/src" || return 1
        else
            local cache="$root/repo.git"
            if [[ -d "$cache" ]]; then
                git -C "$cache" fetch --quiet --prune origin '+refs/heads/*:refs/heads/*' || return 1
            else
                git clone --quiet --mirror "$repo" "$cache" || return 1
            fi
            full=$(git -C "$cache" rev-parse --verify "$commit^{commit}") || return 1
            git -C "$cache" archive --format=tar "$full" | tar -x -C "$release/src" || return 1
        fi
        commit=$full
    fi
    echo "$commit" >"$release/REVISION"
}

lock_file=requirements/prod.lock # the release's production lock, relative to its source
build_lock=requirements/build.lock # its build backend (pyproject.toml's build-system.requires), locked the same way

pip_checked=() # (--no-warn-conflicts) once `pip check` is sure to follow: pip's own scan of every installed
               # distribution after each install (a second or more each) only warns; pip check refuses the release
pip_install() {
    "$release/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pip_checked[@]}" "${pip_args[@]}" \
        "$@"
}

install_project() { # the release's own package, its dependencies already there
    if [[ -f "$release/src/$build_lock" ]]; then
        # built with the locked, hash-checked backend in the release venv: pip downloads no build tools of its own
        log "installing the locked build backend ($build_lock, hash-checked)"
        pip_install --require-hashes -r "$release/src/$build_lock" || return 1
        pip_install --no-deps --no-build-isolation "$release/src"
    elif [[ -n "$venv_from" ]]; then
        log "no $build_lock in this release (an older commit): building it with $venv_from's setuptools"
        # build with VENV's setuptools when it can (offline, fast), else in an isolated build env
        pip_install --no-deps --no-build-isolation "$release/src" || pip_install --no-deps "$release/src"
    else
        log "no $build_lock in this release (an older commit): pip builds it in an isolated build env"
        pip_install --no-deps "$release/src"
    fi
}

build_venv() {
    if [[ -n "$venv_from" ]]; then
        local base_site site
        base_site=$("$venv_from/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
        "$venv_from/bin/python" -m venv --without-pip "$release/venv" || return 1
        site=$("$release/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
        echo "$base_site" >"$site/_raiox_venv_from.pth" || return 1
    else
        "$python" -m venv "$release/venv" || return 1
    fi
    if [[ -f "$release/src/$lock_file" ]]; then
        log "installing the locked dependencies ($lock_file, hash-checked) with $("$release/venv/bin/python" -V)"
        pip_checked=(--no-warn-conflicts)
        pip_install --require-hashes -r "$release/src/$lock_file" || return 1
        install_project || return 1
        # the lock lacks a dependency the release's pyproject.toml names (a lock not regenerated): refuse it
        "$release/venv/bin/python" -m pip check --disable-pip-version-check || { log "pip check failed"; return 1; }
    elif [[ -n "$venv_from" ]]; then
        log "no $lock_file in this release (an older commit): using $venv_from's packages"
        install_project || return 1
    else
        log "no $lock_file in this release (an older commit): pip resolves pyproject.toml's ranges afresh"
        pip_install "$release/src" || return 1
    fi
    "$release/venv/bin/raiox" --help >/dev/null
}

load_migrate_env() {
    if [[ -r "$migrate_env" ]]; then
        set -a
        # shellcheck source=/dev/null
        source "$migrate_env"
        set +a
    fi
}

run_migrations() {
    (
        load_migrate_env
        "$release/venv/bin/raiox" db upgrade
    )
}

# The services must not come up with a catalog that has no vectors of their model (RAIOX_EMBEDDER): every
# search would be empty, /identify answers 503 catalog_missing. `raiox catalog status` exits 3 when references
# lack the model's vectors or its vector index is missing; then the reindex embeds what is missing (the old
# release keeps serving meanwhile; progress goes to the log). It runs as the migration role: only the tables'
# owner may create the model's index. The deploy user cannot read the services' env file, so the model is the
# one RAIOX_MIGRATE_ENV names (Ansible writes the same RAIOX_EMBEDDER to both); none named: no check.
# A host that does not reindex (RAIOX_REINDEX=0, the admin panel: no owner role there) only checks, read-only, and
# refuses the release when the catalog is not ready: the API hosts' deploy (or app.yml there) reindexes first.
prepare_catalog() { # reindex|check
    (
        load_migrate_env
        if [[ -z "${RAIOX_EMBEDDER:-}" ]]; then
            log "catalog check skipped: $migrate_env names no RAIOX_EMBEDDER (rewrite it: ansible-playbook app.yml)"
            exit 0
        fi
        rc=0
        "$release/venv/bin/raiox" catalog status || rc=$?
        # asked only when the check did not answer (one start of the release's raiox less in every deploy): an older
        # commit's raiox has no such command (the usage error above says so)
        if [[ $rc -ne 0 && $rc -ne 3 ]] && ! "$release/venv/bin/raiox" catalog status --help >/dev/null 2>&1; then
            log "catalog check skipped: this release has no \`raiox catalog status\` (an older commit)"
            exit 0
        fi
        if [[ $rc -eq 0 ]]; then
            log "catalog ready for $RAIOX_EMBEDDER: no reindex"
            exit 0
        elif [[ $rc -ne 3 ]]; then
            log "catalog check failed (exit $rc)"
            exit 1
        elif [[ "$1" != "reindex" ]]; then
            log "catalog not ready for $RAIOX_EMBEDDER, and this host does not reindex (RAIOX_REINDEX=0): deploy" \
                "this commit to the API hosts first (their deploy reindexes), then here"
            exit 1
        fi
        log "reindexing the catalog with $RAIOX_EMBEDDER (raiox catalog reindex, at most ${reindex_timeout}s)"
        rc=0
        timeout --kill-after=30 "$reindex_timeout" "$release/venv/bin/raiox" catalog reindex || rc=$?
        if [[ $rc -eq 124 || $rc -eq 137 ]]; then
            log "the reindex ran past ${reindex_timeout}s (RAIOX_REINDEX_TIMEOUT); rerun the deploy: it resumes"
        fi
        exit "$rc"
    )
}

switch_to() {
    # rename(2) over the old link: readers see the old or the new target, never none.
    ln -sfn "$1" "$root/.current.tmp"
    mv -T "$root/.current.tmp" "$root/current"
}

restart_service() {
    # fd 9 holds the deploy lock: a service started from here must not inherit it
    bash -c "$restart_cmd" 9>&-
}

wait_ready() { # [TIMEOUT]
    local timeout=${1:-$health_timeout}
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if curl --silent --show-error --fail --max-time 5 --output /dev/null "$health_url" 2>/dev/null; then
            return 0
        fi
        sleep "$health_interval"
    done
    log "no 200 from $health_url within ${timeout}s"
    curl --silent --max-time 5 "$health_url" || true
    echo
    return 1
}

services_stay_up() {
    [[ -z "$services_check" ]] && return 0
    sleep "$services_settle"
    if ! bash -c "$services_check" 9>&-; then
        log "a restarted service is not running ($services_check)"
        return 1
    fi
}

prune_releases() {
    local current_target old
    current_target=$(basename "$(readlink "$root/current")")
    while IFS= read -r old; do
        [[ "$old" == "$current_target" || "releases/$old" == "$previous" ]] && continue
        log "removing old release $old"
        rm -rf "${root:?}/releases/$old"
    done < <(find "$root/releases" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -r | tail -n +"$((keep + 1))")
}

if [[ -n "$rollback" ]]; then
    from=$(readlink "$root/current" 2>/dev/null || true)
    if [[ "$rollback" == "previous" ]]; then
        rollback=$(find "$root/releases" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort \
            | awk -v current="${from#releases/}" '$0 < current' | tail -n 1)
        [[ -n "$rollback" ]] || { log "no release older than ${from:-none} under $root/releases: nothing to roll back to"; exit 1; }
    fi
    if [[ ! -x "$root/releases/$rollback/venv/bin/raiox" ]]; then
        log "no release $rollback under $root/releases (or it has no venv); the releases there:"
        find "$root/releases" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort
        exit 1
    fi
    if [[ "releases/$rollback" == "$from" ]]; then
        log "releases/$rollback is already current: nothing to do"
        exit 1
    fi
    release_id=$rollback
    commit=$(cat "$root/releases/$rollback/REVISION" 2>/dev/null || echo unknown)
    log "rolling back: current -> releases/$rollback (commit $commit; was ${from:-none}), without migrating"
    switch_to "releases/$rollback"
    if restart_service && wait_ready && services_stay_up; then
        record "rollback"
        log "rolled back to releases/$rollback"
        exit 0
    fi
    record "failed:rollback"
    log "FAILED: releases/$rollback does not come up; current stays on it (the one before was ${from:-none}):" \
        "roll back to another release (--rollback RELEASE_ID) or deploy a fix"
    exit 2
fi

log "deploying $commit as $release_id (previous: ${previous:-none})"
fetch_source || fail_before_switch "source"
log "building the release venv"
build_venv || fail_before_switch "venv"
if [[ "$migrate" == "1" ]]; then
    log "migrating the database (raiox db upgrade)"
    run_migrations || fail_before_switch "migration"
fi
if [[ "$reindex" == "1" ]]; then
    log "checking the catalog for the configured model (raiox catalog status)"
    prepare_catalog reindex || fail_before_switch "reindex"
else
    log "checking, read-only, that the catalog is ready for the configured model (raiox catalog status)"
    prepare_catalog check || fail_before_switch "catalog"
fi

log "switching current -> releases/$release_id"
switch_to "releases/$release_id"
if restart_service && wait_ready && services_stay_up; then
    record "ok"
    prune_releases
    log "deployed $commit ($release_id)"
    exit 0
fi

if [[ -z "$previous" ]]; then
    log "FAILED: first release does not come up and there is nothing to roll back to"
    rm -f "$root/current"
    record "failed:start"
    discard_release
    exit 2
fi
log "FAILED: release does not come up; rolling back to $previous"
switch_to "$previous"
discard_release
if restart_service && wait_ready "$rollback_timeout"; then
    record "rolled-back"
    log "rolled back to $previous"
    exit 1
fi
record "rollback-failed"
log "ROLLBACK FAILED: $previous does not come up either"
exit 2
