"""Rehearsal of deploy/scripts/deploy.sh against a temporary folder standing for a host.

One good release is deployed from a `git archive` tarball (release folder, own venv, `raiox db
upgrade` on the embedded PostgreSQL, the catalog check, `current` switch, start, /readyz). Then a
release whose migration fails is refused before the switch, a release that migrates but cannot start
is rolled back to the good one, a catalog that lacks the configured model's vectors is reindexed
before the switch (and a reindex that fails refuses the release), and a deploy that cannot get the
lock gives up. The service is started by a local script (RAIOX_RESTART_CMD) instead of systemctl.

Every release installs its requirements/prod.lock as on a host, offline: the rehearsal host has no index
(RAIOX_PIP_ARGS=--no-index) and its venv (--venv-from, this test's) already holds the locked packages, so a
lock that pins anything else, or a release whose pyproject.toml names a dependency its lock lacks, is refused.
"""

import fcntl
import importlib.metadata
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name

from .tooling import REPO, require_tool

DEPLOY = REPO / "deploy" / "scripts" / "deploy.sh"
LOCK = "requirements/prod.lock"
BUILD_LOCK = "requirements/build.lock"

RESTART = r"""#!/usr/bin/env bash
# Stands for `systemctl restart raiox-api`: stop the old process, start current/.
set -euo pipefail
run="$HOST/run"
mkdir -p "$run"
if [[ -f "$run/raiox.pid" ]]; then
    pid=$(cat "$run/raiox.pid")
    kill -TERM "$pid" 2>/dev/null || true
    # stopped: gone, or a zombie (state Z) that init has not reaped yet (kill -0 still finds those, for seconds
    # where init reaps late); it holds no port, no lock any more
    for _ in $(seq 150); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || break
        state=${stat##*) }
        [[ "${state%% *}" != Z ]] || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$run/raiox.pid"
fi
cd "$HOST"
echo "start $(readlink "$RAIOX_ROOT/current")" >>"$run/restarts.log"
setsid "$RAIOX_ROOT/current/venv/bin/raiox" serve --host 127.0.0.1 --port "$PORT" --no-worker \
    >>"$run/serve.log" 2>&1 </dev/null &
echo $! >"$run/raiox.pid"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    require_tool("git", "Debian package git")
    require_tool("curl", "Debian package curl")
    require_tool("flock", "Debian package util-linux")
    if not (REPO / ".git").exists():
        pytest.fail("the rehearsal deploys commits: run it from a git checkout")
    root = tmp_path_factory.mktemp("host")
    (root / "restart.sh").write_text(RESTART)
    # each release's wheel is built and installed at once, then thrown away: stored, not deflated (setuptools reads
    # DIST_EXTRA_CONFIG), which halves the build of a release that ships about 60 MB of models
    (root / "build.cfg").write_text("[bdist_wheel]\ncompression = stored\n")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items()
           if not k.startswith("RAIOX_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")},
        "HOST": str(root),
        "PORT": str(port),
        "RAIOX_ROOT": str(root / "srv"),
        "RAIOX_DEPLOY_CONFIG": str(root / "no-deploy.env"),
        "RAIOX_MIGRATE_ENV": str(root / "no-migrate.env"),
        "RAIOX_RESTART_CMD": f"bash {root}/restart.sh",
        "RAIOX_HEALTH_URL": f"http://127.0.0.1:{port}/readyz",
        "RAIOX_HEALTH_TIMEOUT": "40",
        "RAIOX_HEALTH_INTERVAL": "0.1",
        "RAIOX_KEEP_RELEASES": "3",
        "RAIOX_LOCK_TIMEOUT": "20",
        # no index: the lock is installed from what --venv-from VENV holds, never downloaded
        "RAIOX_PIP_ARGS": "--no-index",
        "DIST_EXTRA_CONFIG": str(root / "build.cfg"),
        # the application's own settings: embedded PostgreSQL and storage under the host folder
        "RAIOX_ENV": "development",
        "RAIOX_DATA_DIR": str(root / "data"),
        "RAIOX_DATABASE_URL": "",
        "RAIOX_WEBHOOK_SECRET": "rehearsal-webhook-secret",
        "RAIOX_SESSION_SECRET": "rehearsal-session-secret",
        "RAIOX_JOTFORM_API_KEY": "rehearsal-jotform-key",
        "RAIOX_LOG_FORMAT": "json",
        # what Ansible writes to migrate.env as to raiox.env: the deploy checks the catalog for this model
        "RAIOX_EMBEDDER": "raiox-v12",
    }
    # a throw-away clone: broken releases are commits on top of the tested one
    clone = root / "repo"
    subprocess.run(["git", "clone", "--quiet", "--shared", "--no-checkout", str(REPO), str(clone)], check=True)
    _git("checkout", "--quiet", _git("rev-parse", "HEAD", cwd=REPO), cwd=clone)
    _git("config", "user.email", "rehearsal@example.com", cwd=clone)
    _git("config", "user.name", "rehearsal", cwd=clone)
    _lock_this_venv(clone)
    yield {"root": root, "srv": root / "srv", "env": env, "port": port, "repo": clone}
    _stop(root)


def _lock_this_venv(clone: Path) -> None:
    """The release's locks (dependencies, build backend) at the versions this venv has (the same today, unless this
    venv is older or newer than the lock): what a host with no index can install. A commit on top of the tested one
    only when they differ."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}

    def pin(match: re.Match) -> str:
        return f"{match[1]}=={installed.get(canonicalize_name(match[1]), match[2])}"

    changed = False
    for lock in (clone / LOCK, clone / BUILD_LOCK):
        text = lock.read_text()
        venv_text = re.sub(r"(?m)^([A-Za-z0-9._-]+)==([^\s;\\]+)", pin, text)
        if venv_text != text:
            lock.write_text(venv_text)
            changed = True
    if changed:
        _git("commit", "--quiet", "-am", "rehearsal: the locks at this venv's versions", cwd=clone)


def _stop(root: Path) -> None:
    pid_file = root / "run" / "raiox.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(200):
                if _stopped(pid):
                    break
                time.sleep(0.05)
            else:
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    postmaster = root / "data" / "pg" / "postmaster.pid"
    if postmaster.exists():  # the embedded PostgreSQL outlived its process: fast shutdown
        try:
            os.kill(int(postmaster.read_text().split()[0]), signal.SIGINT)
        except (ProcessLookupError, ValueError, IndexError):
            pass


def _stopped(pid: int) -> bool:
    """Gone, or a zombie its new parent (init) has not reaped yet: os.kill(pid, 0) still finds those."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _deploy(host, *args: str, env: dict | None = None, drop: tuple[str, ...] = (),
            logged: bool = False) -> subprocess.CompletedProcess:
    """deploy.sh's run; `logged`: with --log, as CI runs it, and its stdout is then that log (the deploy's lines and
    the commands' output, stdout and stderr, in the order they came)."""
    cmd = ["bash", str(DEPLOY), "--venv-from", sys.prefix, *args]
    log = host["root"] / "deploys" / f"{time.time_ns()}.log"
    if logged:
        cmd += ["--log", str(log)]
    env = {k: v for k, v in {**host["env"], **(env or {})}.items() if k not in drop}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    if logged:
        assert log.with_suffix(".log.rc").read_text().strip() == str(result.returncode)
        result.stdout, result.stderr = log.read_text(), result.stdout + result.stderr
    return result


def _commit_breaking(host, path: str, line: str, message: str) -> str:
    repo = host["repo"]
    base = _git("rev-parse", "HEAD", cwd=repo)
    target = repo / path
    target.write_text(target.read_text() + f"\n{line}\n")
    _git("commit", "--quiet", "-am", message, cwd=repo)
    sha = _git("rev-parse", "HEAD", cwd=repo)
    _git("checkout", "--quiet", base, cwd=repo)
    return sha


def _current(host) -> str:
    return os.readlink(host["srv"] / "current")


def _ready(host) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{host['port']}/readyz", timeout=10)


def test_first_release_from_archive(host, tmp_path):
    sha = _git("rev-parse", "HEAD", cwd=host["repo"])
    archive = tmp_path / "release.tar.gz"
    subprocess.run(["git", "archive", "--format=tar.gz", "-o", str(archive), sha], cwd=host["repo"], check=True)

    wrong = _deploy(host, "--commit", "0" * 40, "--archive", str(archive))
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "archive holds commit" in wrong.stdout
    assert not (host["srv"] / "current").exists()

    # older releases already on the host: only the newest RAIOX_KEEP_RELEASES (3) stay
    old = [f"2020010{i}T000000Z-{'a' * 12}" for i in range(1, 5)]
    for name in old:
        (host["srv"] / "releases" / name).mkdir(parents=True)

    result = _deploy(host, "--commit", sha, "--archive", str(archive))
    assert result.returncode == 0, result.stdout + result.stderr + _serve_log(host)
    assert _before(result.stdout, f"installing the locked dependencies ({LOCK}, hash-checked)",
                   f"installing the locked build backend ({BUILD_LOCK}, hash-checked)")
    assert _before(result.stdout, f"installing the locked build backend ({BUILD_LOCK}, hash-checked)",
                   "switching current")
    # an empty catalog still lacks the model's vector index (the app role could not create it): the reindex makes it
    assert "catalog not ready for raiox-v12: its vector index is missing" in result.stderr
    assert _before(result.stdout, "reindexing the catalog with raiox-v12", "reindex: 0 added, 0 embedded")
    assert _before(result.stdout, "reindex: 0 added, 0 embedded", "switching current")  # its result, on stdout
    kept = sorted(p.name for p in (host["srv"] / "releases").iterdir())
    assert kept == [*old[-2:], Path(_current(host)).name]
    release = host["srv"] / _current(host)
    assert release.parent.name == "releases" and release.name.endswith(sha[:12])
    assert (release / "REVISION").read_text().strip() == sha
    # its own venv, with the package installed from this release's source
    assert (release / "venv" / "pyvenv.cfg").exists()
    where = subprocess.run([str(release / "venv" / "bin" / "python"), "-c", "import raiox; print(raiox.__file__)"],
                           capture_output=True, text=True, check=True, env=host["env"], cwd=host["root"]).stdout
    assert where.startswith(str(release / "venv")), where
    assert _ready(host).status_code == 200
    assert "ok" in (host["srv"] / "deploys.log").read_text()
    # the deploy said who held the lock (for a deploy or app.yml waiting meanwhile)
    assert (host["srv"] / ".deploy.lock").read_text().startswith(f"deploy of {sha} by ")
    # the service started by the deploy must not keep holding the deploy lock
    with open(host["srv"] / ".deploy.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_failed_migration_never_switches(host):
    before, restarts = _current(host), _restarts(host)
    pid = (host["root"] / "run" / "raiox.pid").read_text()
    sha = _commit_breaking(host, "src/raiox/kit/migrate.py", 'raise RuntimeError("forced migration failure")',
                           "rehearsal: broken migration")
    result = _deploy(host, "--commit", sha, "--repo", str(host["repo"]))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED before switching: migration" in result.stdout
    assert _current(host) == before
    assert _restarts(host) == restarts and (host["root"] / "run" / "raiox.pid").read_text() == pid
    assert list((host["srv"] / "failed").glob(f"*-{sha[:12]}"))
    assert _ready(host).status_code == 200


def _commit_edit(host, path: str, old: str, new: str | None, message: str) -> str:
    """A commit on top of the tested one that replaces `old` with `new` in `path` (or deletes the file: new=None)."""
    repo = host["repo"]
    base = _git("rev-parse", "HEAD", cwd=repo)
    target = repo / path
    if new is None:
        _git("rm", "--quiet", path, cwd=repo)
    else:
        assert old in target.read_text()
        target.write_text(target.read_text().replace(old, new, 1))
    _git("commit", "--quiet", "-am", message, cwd=repo)
    sha = _git("rev-parse", "HEAD", cwd=repo)
    _git("checkout", "--quiet", base, cwd=repo)
    return sha


def _refused_for_its_venv(host, sha: str) -> subprocess.CompletedProcess:
    before, restarts = _current(host), _restarts(host)
    result = _deploy(host, "--commit", sha, "--repo", str(host["repo"]))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED before switching: venv" in result.stdout
    assert _current(host) == before and _restarts(host) == restarts
    assert list((host["srv"] / "failed").glob(f"*-{sha[:12]}"))
    assert _ready(host).status_code == 200
    return result


def test_a_release_whose_lock_pins_what_the_host_cannot_install_never_switches(host):
    """The lock is what gets installed: a pin the host cannot get (not on its index, a wrong version) fails the
    venv, before any migration."""
    sha = _commit_breaking(host, LOCK, "rehearsal-not-on-any-index==1.0 --hash=sha256:" + "0" * 64,
                           "rehearsal: a lock pinning what cannot be installed")
    result = _refused_for_its_venv(host, sha)
    assert "rehearsal-not-on-any-index==1.0" in result.stdout + result.stderr
    assert "migrating" not in result.stdout


def test_a_release_whose_lock_lacks_a_dependency_never_switches(host):
    """pyproject.toml gained a dependency and the lock was not regenerated: the project installs (--no-deps), but
    `pip check` finds the dependency missing and the release is refused."""
    dependency = '  "fastapi-offline>=1.7",\n'
    sha = _commit_edit(host, "pyproject.toml", dependency, dependency + '  "rehearsal-not-locked>=1",\n',
                       "rehearsal: a dependency not locked")
    result = _refused_for_its_venv(host, sha)
    assert "requires rehearsal-not-locked, which is not installed" in result.stdout + result.stderr
    assert "pip check failed" in result.stdout


def test_an_older_release_without_a_lock_still_deploys(host):
    """An older commit (from before requirements/prod.lock) installs as it did, and the log says so."""
    sha = _commit_edit(host, LOCK, "", None, "rehearsal: a release from before the lock")
    result = _deploy(host, "--commit", sha, "--repo", str(host["repo"]))
    assert result.returncode == 0, result.stdout + result.stderr + _serve_log(host)
    assert f"no {LOCK} in this release (an older commit): using {sys.prefix}'s packages" in result.stdout
    assert "installing the locked dependencies" not in result.stdout
    assert _current(host).endswith(sha[:12]) and _ready(host).status_code == 200


def test_a_release_whose_build_lock_pins_what_the_host_cannot_install_never_switches(host):
    """The release is built with the backend its build lock pins (hash-checked, --no-build-isolation), not one pip
    downloads: a pin the host cannot get fails the venv, before any migration."""
    pinned = re.search(r"(?m)^setuptools==\S+", (host["repo"] / BUILD_LOCK).read_text())[0]
    sha = _commit_edit(host, BUILD_LOCK, pinned, "setuptools==0.0.1", "rehearsal: a build lock pinning what cannot "
                       "be installed")
    result = _refused_for_its_venv(host, sha)
    assert f"installing the locked build backend ({BUILD_LOCK}, hash-checked)" in result.stdout
    assert "setuptools==0.0.1" in result.stdout + result.stderr
    assert "migrating" not in result.stdout


def test_an_older_release_without_a_build_lock_still_deploys(host):
    """An older commit (from before requirements/build.lock) is built as it was, and the log says so."""
    sha = _commit_edit(host, BUILD_LOCK, "", None, "rehearsal: a release from before the build lock")
    result = _deploy(host, "--commit", sha, "--repo", str(host["repo"]))
    assert result.returncode == 0, result.stdout + result.stderr + _serve_log(host)
    assert f"no {BUILD_LOCK} in this release (an older commit): building it with {sys.prefix}'s setuptools" \
        in result.stdout
    assert f"installing the locked dependencies ({LOCK}, hash-checked)" in result.stdout
    assert _current(host).endswith(sha[:12]) and _ready(host).status_code == 200


def test_release_that_cannot_start_rolls_back(host):
    before = _current(host)
    sha = _commit_breaking(host, "src/raiox/app.py", 'raise RuntimeError("forced start-up failure")',
                           "rehearsal: app cannot start")
    result = _deploy(host, "--commit", sha, "--repo", str(host["repo"]),
                     env={"RAIOX_HEALTH_TIMEOUT": "8", "RAIOX_ROLLBACK_HEALTH_TIMEOUT": "60"})
    assert result.returncode == 1, result.stdout + result.stderr + _serve_log(host)
    assert "rolling back" in result.stdout and "rolled back to" in result.stdout
    assert _current(host) == before
    assert not list((host["srv"] / "releases").glob(f"*-{sha[:12]}"))
    assert list((host["srv"] / "failed").glob(f"*-{sha[:12]}"))
    assert "forced start-up failure" in _serve_log(host)
    # the previous release was restarted and serves again
    assert _restarts(host)[-1] == f"start {before}"
    assert _ready(host).status_code == 200
    assert (host["srv"] / "deploys.log").read_text().splitlines()[-1].endswith("rolled-back")


def test_a_release_whose_service_does_not_stay_up_rolls_back(host):
    """/readyz answers (the API came up) but another restarted service is not running (a worker dying at start):
    the deploy rolls back instead of recording ok."""
    before = _current(host)
    sha = _commit_breaking(host, "README.md", "rehearsal", "rehearsal: a release whose worker dies")
    result = _deploy(host, "--commit", sha, "--repo", str(host["repo"]),
                     env={"RAIOX_SERVICES_CHECK_CMD": "echo worker inactive; exit 3", "RAIOX_SERVICES_SETTLE_S": "0",
                          "RAIOX_ROLLBACK_HEALTH_TIMEOUT": "60"})
    assert result.returncode == 1, result.stdout + result.stderr + _serve_log(host)
    assert "a restarted service is not running" in result.stdout and "rolled back to" in result.stdout
    assert _current(host) == before and _ready(host).status_code == 200


def _raiox(host, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The current release's `raiox`, with the host's settings (as an operator runs it there)."""
    return subprocess.run([str(host["srv"] / "current" / "venv" / "bin" / "raiox"), *args], cwd=host["root"],
                          env={**host["env"], **(env or {})}, capture_output=True, text=True, timeout=180)


def _before(log: str, first: str, then: str) -> bool:
    return first in log and then in log and log.index(first) < log.index(then)


def test_a_catalog_without_the_models_vectors_is_reindexed_before_the_switch(host):
    """The catalog was loaded with another model (a host pinned to raiox-v1, now raiox-v12): the service cannot
    answer (/readyz 503). The deploy embeds what is missing with the configured model before it switches and
    restarts, so the new release comes up ready; the next deploy finds nothing missing and reindexes nothing."""
    loaded = _raiox(host, "catalog", "demo", "--systems", "demo-001,demo-002", "--refs", "2", "--restored", "0",
                    env={"RAIOX_EMBEDDER": "raiox-v1"})
    assert loaded.returncode == 0 and loaded.stdout.startswith("demo: 4 added,"), loaded.stdout + loaded.stderr
    not_ready = _ready(host)
    assert not_ready.status_code == 503 and "no vectors of raiox-v12" in not_ready.json()["checks"]["catalog"]

    before, restarts = _current(host), len(_restarts(host))
    sha = _git("rev-parse", "HEAD", cwd=host["repo"])
    result = _deploy(host, "--commit", sha, "--repo", str(host["repo"]), logged=True)
    assert result.returncode == 0, result.stdout + result.stderr + _serve_log(host)
    log = result.stdout
    assert "catalog not ready for raiox-v12: 4 of 4 reference images lack its vector; run" in " ".join(log.split())
    assert _before(log, "reindexing the catalog with raiox-v12", "reindexing (raiox-v12): 4/4, 100%")
    assert _before(log, "reindex: 0 added, 4 embedded", "switching current")
    assert _current(host) != before and len(_restarts(host)) == restarts + 1
    assert _ready(host).status_code == 200
    status = _raiox(host, "catalog", "status")
    assert status.returncode == 0 and '"missing": 0' in status.stdout, status.stdout + status.stderr

    again = _deploy(host, "--commit", sha, "--repo", str(host["repo"]), logged=True)
    assert again.returncode == 0, again.stdout + again.stderr + _serve_log(host)
    assert "catalog ready for raiox-v12: no reindex" in again.stdout
    assert "reindexing" not in again.stdout and "reindex:" not in again.stdout


def test_a_deploy_whose_catalog_check_or_reindex_fails_never_switches(host):
    """A model the release cannot load fails the check; a reindex that cannot read one reference image (storage
    the migration env does not reach) fails: either way the release is refused before the switch, as for a failed
    migration, and the running one keeps serving."""
    before, restarts = _current(host), _restarts(host)
    pid = (host["root"] / "run" / "raiox.pid").read_text()
    sha = _git("rev-parse", "HEAD", cwd=host["repo"])
    unknown = _deploy(host, "--commit", sha, "--repo", str(host["repo"]), env={"RAIOX_EMBEDDER": "raiox-v99"},
                      logged=True)
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert "RAIOX_EMBEDDER='raiox-v99' cannot be loaded" in unknown.stdout
    assert _before(unknown.stdout, "catalog check failed (exit 2)", "FAILED before switching: reindex")

    unreadable = _deploy(host, "--commit", sha, "--repo", str(host["repo"]),
                         env={"RAIOX_EMBEDDER": "raiox-v11", "RAIOX_STORAGE_URL": f"file://{host['root']}/nothing"},
                         logged=True)
    assert unreadable.returncode == 1, unreadable.stdout + unreadable.stderr
    log = " ".join(unreadable.stdout.split())
    assert "reindexing the catalog with raiox-v11" in log and "cannot re-read" in log
    assert "no reference image of the catalog (4) has a vector of raiox-v11" in log
    assert "FAILED before switching: reindex" in log
    assert _current(host) == before
    assert _restarts(host) == restarts and (host["root"] / "run" / "raiox.pid").read_text() == pid
    assert len(list((host["srv"] / "failed").glob(f"*-{sha[:12]}"))) >= 2
    assert (host["srv"] / "deploys.log").read_text().splitlines()[-1].endswith("failed:reindex")
    assert _ready(host).status_code == 200


def test_a_host_that_does_not_reindex_refuses_a_model_the_catalog_lacks(host):
    """The admin host (RAIOX_MIGRATE=0, so RAIOX_REINDEX=0) cannot reindex: its deploy checks the catalog read-only
    for the model its env file names, and refuses the release before the switch when the catalog is not ready (the
    API hosts' deploy reindexes first); a ready catalog deploys as before."""
    before, restarts = _current(host), _restarts(host)
    sha = _git("rev-parse", "HEAD", cwd=host["repo"])
    admin = {"RAIOX_MIGRATE": "0"}
    refused = _deploy(host, "--commit", sha, "--repo", str(host["repo"]), env={**admin, "RAIOX_EMBEDDER": "raiox-v11"},
                      logged=True)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    log = " ".join(refused.stdout.split())
    assert "catalog not ready for raiox-v11: 4 of 4 reference images lack its vector" in log
    assert _before(log, "this host does not reindex (RAIOX_REINDEX=0): deploy this commit to the API hosts first",
                   "FAILED before switching: catalog")
    assert "migrating" not in log and "reindexing" not in log and "reindex:" not in log
    assert _current(host) == before and _restarts(host) == restarts
    assert (host["srv"] / "deploys.log").read_text().splitlines()[-1].endswith("failed:catalog")
    # read-only: the catalog still lacks that model's vectors
    assert _raiox(host, "catalog", "status", "--embedder", "raiox-v11").returncode == 3

    ready = _deploy(host, "--commit", sha, "--repo", str(host["repo"]), env=admin, logged=True)
    assert ready.returncode == 0, ready.stdout + ready.stderr + _serve_log(host)
    assert _before(ready.stdout, "catalog ready for raiox-v12: no reindex", "switching current")
    assert _current(host) != before and _ready(host).status_code == 200


def test_a_host_whose_migration_env_names_no_model_is_not_checked(host):
    """An env file written before the deploy checked the catalog names no RAIOX_EMBEDDER: the model the services
    use is unknown here (their env file is not the deploy user's to read), so nothing is reindexed, and it says so."""
    sha = _git("rev-parse", "HEAD", cwd=host["repo"])
    result = _deploy(host, "--commit", sha, "--repo", str(host["repo"]), drop=("RAIOX_EMBEDDER",), logged=True)
    assert result.returncode == 0, result.stdout + result.stderr + _serve_log(host)
    assert "catalog check skipped: " in result.stdout and "names no RAIOX_EMBEDDER" in result.stdout
    assert '"model_id"' not in result.stdout and "reindex" not in result.stdout.split("catalog check skipped")[1]


def test_an_older_release_without_the_catalog_check_still_deploys(host):
    """Deploying an older commit (a rollback by hand, `raiox-deploy --commit <old sha>`) whose raiox has no
    `catalog status`: the check is skipped, not failed."""
    repo = host["repo"]
    base = _git("rev-parse", "HEAD", cwd=repo)
    cli = repo / "src" / "raiox" / "catalog" / "cli.py"
    cli.write_text(cli.read_text().replace('@catalog_app.command("status")', '@catalog_app.command("not-status")'))
    _git("commit", "--quiet", "-am", "rehearsal: a release from before `raiox catalog status`", cwd=repo)
    sha = _git("rev-parse", "HEAD", cwd=repo)
    _git("checkout", "--quiet", base, cwd=repo)
    result = _deploy(host, "--commit", sha, "--repo", str(repo))
    assert result.returncode == 0, result.stdout + result.stderr + _serve_log(host)
    assert "catalog check skipped: this release has no `raiox catalog status`" in result.stdout
    assert _current(host).endswith(sha[:12]) and _ready(host).status_code == 200


def test_a_rollback_by_hand_waits_for_the_deploy_lock(host):
    """`raiox-deploy --rollback previous` (the runbook's rollback) takes the deploy lock as a deploy does: with a
    deploy holding it, it waits (and switches nothing meanwhile), then switches to the release before the current
    one, restarts, waits for /readyz and records it; one that cannot have the lock in time gives up, naming the
    holder, and changes nothing. Rolling forward again is a rollback to that release by its name."""
    current = Path(_current(host)).name
    older = sorted(p.name for p in (host["srv"] / "releases").iterdir() if p.name < current)
    assert older, "the rehearsal's earlier deploys left releases"
    holder = "deploy of 0123abcd by deploy (pid 4242) since 2026-12-05T07:00:00Z\n"
    (host["srv"] / ".deploy.lock").write_text(holder)
    lock = open(host["srv"] / ".deploy.lock", "a")  # noqa: SIM115 - held across the calls
    out = host["root"] / "rollback.out"
    restarts = len(_restarts(host))
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        gave_up = _rollback(host, "previous", env={"RAIOX_LOCK_TIMEOUT": "1"})
        assert gave_up.returncode == 1, gave_up.stdout + gave_up.stderr
        assert f"gave up: the deploy lock is still held after 1s (RAIOX_LOCK_TIMEOUT) by: {holder.strip()}" in \
            " ".join(gave_up.stdout.split())
        assert "roll back again once it is done" in gave_up.stdout
        with open(out, "w") as sink:
            proc = subprocess.Popen(["bash", str(DEPLOY), "--rollback", "previous"], env=host["env"], stdout=sink,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "waiting for the deploy lock" not in out.read_text():
            time.sleep(0.2)
        time.sleep(1)
        assert proc.poll() is None, out.read_text()  # still waiting, nothing switched
        assert f"held by: {holder.strip()}" in " ".join(out.read_text().split())
        assert Path(_current(host)).name == current and len(_restarts(host)) == restarts
    finally:
        lock.close()  # the deploy ends
    assert proc.wait(timeout=120) == 0, out.read_text() + _serve_log(host)
    log = out.read_text()
    assert f"rolling back: current -> releases/{older[-1]}" in log and "without migrating" in log
    assert Path(_current(host)).name == older[-1]
    assert _restarts(host)[-1] == f"start releases/{older[-1]}" and _ready(host).status_code == 200
    assert (host["srv"] / "deploys.log").read_text().splitlines()[-1].endswith(" rollback")
    assert (host["srv"] / ".deploy.lock").read_text().startswith("rollback to previous by ")

    unknown = _rollback(host, "20200101T000000Z-nothere")
    assert unknown.returncode == 1 and current in unknown.stdout and "no release 20200101T000000Z-nothere" in \
        unknown.stdout
    forward = _rollback(host, current)
    assert forward.returncode == 0, forward.stdout + forward.stderr + _serve_log(host)
    assert Path(_current(host)).name == current and _ready(host).status_code == 200


def _rollback(host, release: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DEPLOY), "--rollback", release], env={**host["env"], **(env or {})},
                          capture_output=True, text=True, timeout=120)


def test_concurrent_deploy_waits_for_the_lock(host):
    """Whoever holds the lock (app.yml's reindex here) wrote a line saying so: a deploy that gives up waiting names
    it and that a reindex may be running, and leaves the holder's line as it was."""
    holder = "app.yml catalog check/reindex with raiox-v12 by deploy (pid 4242) since 2026-12-05T07:00:00Z\n"
    (host["srv"] / ".deploy.lock").write_text(holder)
    lock = open(host["srv"] / ".deploy.lock", "a")  # noqa: SIM115 - held across the call
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        sha = _git("rev-parse", "HEAD", cwd=host["repo"])
        result = _deploy(host, "--commit", sha, "--repo", str(host["repo"]), env={"RAIOX_LOCK_TIMEOUT": "1"})
    finally:
        lock.close()
    assert result.returncode == 1
    log = " ".join(result.stdout.split())
    assert f"held by: {holder.strip()}" in log
    assert f"gave up: the deploy lock is still held after 1s (RAIOX_LOCK_TIMEOUT) by: {holder.strip()}" in log
    assert "a catalog reindex (a deploy's or app.yml's) may run up to RAIOX_REINDEX_TIMEOUT" in log
    assert (host["srv"] / ".deploy.lock").read_text() == holder
    assert "deploying" not in log


def test_a_deploy_waits_for_a_whole_reindex_by_default(host):
    """RAIOX_LOCK_TIMEOUT unset: the deploy waits for the lock longer than a reindex may run (RAIOX_REINDEX_TIMEOUT),
    not the fixed 900 s that gave up behind a long reindex."""
    lock = open(host["srv"] / ".deploy.lock", "a")  # noqa: SIM115 - held across the call
    out = host["root"] / "waiting.out"
    env = {k: v for k, v in {**host["env"], "RAIOX_REINDEX_TIMEOUT": "3600"}.items() if k != "RAIOX_LOCK_TIMEOUT"}
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        sha = _git("rev-parse", "HEAD", cwd=host["repo"])
        with open(out, "w") as sink:
            proc = subprocess.Popen(["bash", str(DEPLOY), "--commit", sha, "--repo", str(host["repo"])], env=env,
                                    stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "waiting for the deploy lock" not in out.read_text():
                time.sleep(0.2)
            assert proc.poll() is None, out.read_text()  # still waiting
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    finally:
        lock.close()
    assert "at most 4500s: RAIOX_LOCK_TIMEOUT" in out.read_text(), out.read_text()


def _restarts(host) -> list[str]:
    path = host["root"] / "run" / "restarts.log"
    return path.read_text().splitlines() if path.exists() else []


def _serve_log(host) -> str:
    path = host["root"] / "run" / "serve.log"
    return "\n--- serve.log ---\n" + path.read_text()[-3000:] if path.exists() else ""
