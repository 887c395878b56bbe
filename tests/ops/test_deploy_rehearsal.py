"""Rehearsal of deploy/scripts/deploy.sh against a temporary folder standing for a host.

One good release is deployed from a `git archive` tarball (release folder, own venv, `raiox db
upgrade` on the embedded PostgreSQL, `current` switch, start, /readyz). Then a release whose
migration fails is refused before the switch, a release that migrates but cannot start is rolled
back to the good one, and a deploy that cannot get the lock gives up. The service is started by
a local script (RAIOX_RESTART_CMD) instead of systemctl.
"""

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .tooling import REPO, require_tool

DEPLOY = REPO / "deploy" / "scripts" / "deploy.sh"

RESTART = r"""#!/usr/bin/env bash
# Stands for `systemctl restart raiox-api`: stop the old process, start current/.
set -euo pipefail
run="$HOST/run"
mkdir -p "$run"
if [[ -f "$run/raiox.pid" ]]; then
    pid=$(cat "$run/raiox.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
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
        "RAIOX_KEEP_RELEASES": "3",
        "RAIOX_LOCK_TIMEOUT": "20",
        # the application's own settings: embedded PostgreSQL and storage under the host folder
        "RAIOX_ENV": "development",
        "RAIOX_DATA_DIR": str(root / "data"),
        "RAIOX_DATABASE_URL": "",
        "RAIOX_WEBHOOK_SECRET": "rehearsal-webhook-secret",
        "RAIOX_SESSION_SECRET": "rehearsal-session-secret",
        "RAIOX_JOTFORM_API_KEY": "rehearsal-jotform-key",
        "RAIOX_LOG_FORMAT": "json",
    }
    # a throw-away clone: broken releases are commits on top of the tested one
    clone = root / "repo"
    subprocess.run(["git", "clone", "--quiet", "--shared", "--no-checkout", str(REPO), str(clone)], check=True)
    _git("checkout", "--quiet", _git("rev-parse", "HEAD", cwd=REPO), cwd=clone)
    _git("config", "user.email", "rehearsal@example.com", cwd=clone)
    _git("config", "user.name", "rehearsal", cwd=clone)
    yield {"root": root, "srv": root / "srv", "env": env, "port": port, "repo": clone}
    _stop(root)


def _stop(root: Path) -> None:
    pid_file = root / "run" / "raiox.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    postmaster = root / "data" / "pg" / "postmaster.pid"
    if postmaster.exists():  # the embedded PostgreSQL outlived its process: fast shutdown
        try:
            os.kill(int(postmaster.read_text().split()[0]), signal.SIGINT)
        except (ProcessLookupError, ValueError, IndexError):
            pass


def _deploy(host, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = ["bash", str(DEPLOY), "--venv-from", sys.prefix, *args]
    return subprocess.run(cmd, env={**host["env"], **(env or {})}, capture_output=True, text=True, timeout=240)


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


def test_release_that_cannot_start_rolls_back(host):
    before = _current(host)
    sha = _commit_breaking(host, "src/raiox/app.py", 'raise RuntimeError("forced start-up failure")',
                           "rehearsal: app cannot start")
    result = _deploy(host, "--commit", sha, "--repo", str(host["repo"]),
                     env={"RAIOX_HEALTH_TIMEOUT": "12", "RAIOX_ROLLBACK_HEALTH_TIMEOUT": "60"})
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


def test_concurrent_deploy_waits_for_the_lock(host):
    lock = open(host["srv"] / ".deploy.lock", "w")  # noqa: SIM115 - held across the call
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        sha = _git("rev-parse", "HEAD", cwd=host["repo"])
        result = _deploy(host, "--commit", sha, "--repo", str(host["repo"]), env={"RAIOX_LOCK_TIMEOUT": "1"})
    finally:
        lock.close()
    assert result.returncode == 1
    assert "another deploy holds the lock" in result.stdout


def _restarts(host) -> list[str]:
    path = host["root"] / "run" / "restarts.log"
    return path.read_text().splitlines() if path.exists() else []


def _serve_log(host) -> str:
    path = host["root"] / "run" / "serve.log"
    return "\n--- serve.log ---\n" + path.read_text()[-3000:] if path.exists() else ""
