"""deploy/scripts/remote-deploy.sh against stand-ins for ssh/scp that behave like the app hosts: ufw's `limit` rule
refuses the 6th new SSH connection from one address within 30 s. The deploy's uploads, start and log polling (every
5 s) must share one connection (ControlMaster), or from the 6th call on every poll is refused and a deploy that
succeeded on the host is reported as failed after the timeout."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SSH = r"""#!/usr/bin/env bash
# stand-in for OpenSSH: a new connection unless ControlMaster's socket (a plain file here) exists for ControlPath
path=""; master=no; op=""; args=()
while [[ $# -gt 0 ]]; do
    case $1 in
        -o) case $2 in ControlPath=*) path=${2#ControlPath=};; ControlMaster=auto) master=yes;; esac; shift 2;;
        -i|-O) [[ $1 == -O ]] && op=$2; shift 2;;
        -q) shift;;
        *) args+=("$1"); shift;;
    esac
done
path=${path//%C/host-key}
if [[ $op == exit ]]; then rm -f "$path"; exit 0; fi
if [[ -z $path || ! -e $path ]]; then  # a new TCP connection: the host's firewall counts it
    now=$(date +%s); echo "$now" >> "$STATE/connections"
    if (( $(awk -v n="$now" '$1 > n - 30' "$STATE/connections" | wc -l) > 5 )); then
        echo refused >> "$STATE/refused"; exit 255
    fi
    if [[ $master == yes && -n $path ]]; then touch "$path"; fi
fi
if [[ $(basename "$0") == scp ]]; then cp "${args[0]}" "${args[1]#*:}"; else bash -c "${args[*]:1}"; fi
"""

DEPLOY = r"""#!/usr/bin/env bash
# stand-in for deploy.sh: a deploy of a few seconds that ends well
while [[ $# -gt 0 ]]; do case $1 in --log) log=$2; shift 2;; *) shift;; esac; done
echo "switching release" >> "$log"; sleep 12; echo "release switched" >> "$log"; echo 0 > "$log.rc"
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_a_deploy_polls_its_log_over_one_connection_and_reports_the_hosts_result(tmp_path):
    bin_dir, scripts, srv, state = (tmp_path / n for n in ("bin", "scripts", "srv", "state"))
    for folder in (bin_dir, scripts, srv / "incoming", srv / "deploys", state):
        folder.mkdir(parents=True)
    _executable(bin_dir / "ssh", SSH)
    _executable(bin_dir / "scp", SSH)
    shutil.copy(ROOT / "deploy" / "scripts" / "remote-deploy.sh", scripts / "remote-deploy.sh")
    _executable(scripts / "deploy.sh", DEPLOY)
    archive = tmp_path / "release.tar.gz"
    archive.write_bytes(b"release")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", STATE=str(state), RAIOX_ROOT=str(srv),
               DEPLOY_TIMEOUT="60", DEPLOY_SSH_KEY_FILE=str(tmp_path / "key"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    result = subprocess.run(["bash", str(scripts / "remote-deploy.sh"), commit, str(archive), "api-prod"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "release switched" in result.stdout and "api-prod: deployed 0123456789ab" in result.stdout
    assert not (state / "refused").exists()  # no connection refused by the host's rate limit
    assert len((state / "connections").read_text().split()) <= 2  # one per host (one more if the master expired)
    assert not list((srv / "incoming").iterdir())  # the uploads were cleaned up over the same connection


def _default(script: str, variable: str) -> int:
    import re

    found = re.findall(r"\$\{" + variable + r":-(\d+)\}", (ROOT / "deploy" / "scripts" / script).read_text())
    assert len(found) == 1, (script, variable)
    return int(found[0])


def test_ci_waits_long_enough_for_a_deploy_that_reindexes_the_catalog():
    """A deploy whose catalog lacks the model's vectors reindexes before the switch (minutes for a few thousand
    references, at most RAIOX_REINDEX_TIMEOUT): remote-deploy.sh must not give up on a host before deploy.sh itself
    would (the lock, held by another reindex; its own reindex; start and rollback), nor the workflow's job before
    remote-deploy.sh (two prod hosts)."""
    import yaml

    import re

    reindex = _default("deploy.sh", "RAIOX_REINDEX_TIMEOUT")
    # the lock's default wait covers a whole reindex by its holder (app.yml's, or another deploy's), and more
    margin = re.findall(r"\$\{RAIOX_LOCK_TIMEOUT:-\$\(\(reindex_timeout \+ (\d+)\)\)\}",
                        (ROOT / "deploy" / "scripts" / "deploy.sh").read_text())
    assert len(margin) == 1 and int(margin[0]) > 0
    host = (reindex + int(margin[0]) + reindex
            + 2 * _default("deploy.sh", "RAIOX_HEALTH_TIMEOUT") + 600)  # 600: venv, migration, restarts
    assert _default("remote-deploy.sh", "DEPLOY_TIMEOUT") >= host
    job = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"]["deploy"]
    assert job["timeout-minutes"] * 60 >= _default("remote-deploy.sh", "DEPLOY_TIMEOUT") + 1200  # + the admin host
