"""Static checks of the operations code: shellcheck, actionlint, ansible-playbook --syntax-check
and ansible-lint (production profile)."""

import os
import subprocess

from .tooling import REPO, require_tool


def _shell_scripts() -> list[str]:
    """Every shell script of the project: files git tracks or would track (not ignored ones)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    found = []
    for name in filter(None, listed):
        path = REPO / name
        if path.is_file() and (path.suffix == ".sh" or (path.stat().st_size < 200_000 and _bash_shebang(path))):
            found.append(str(path))
    return sorted(found)


def _bash_shebang(path) -> bool:
    try:
        with path.open("rb") as fh:
            first = fh.readline(80)
    except OSError:
        return False
    return first.startswith(b"#!") and (b"bash" in first or first.rstrip().endswith(b"/sh"))


def test_shellcheck_every_shell_script():
    shellcheck = require_tool("shellcheck", "Debian package shellcheck")
    scripts = _shell_scripts()
    assert str(REPO / "deploy" / "scripts" / "deploy.sh") in scripts
    assert str(REPO / "scripts" / "system-deps.sh") in scripts
    result = subprocess.run([shellcheck, "-x", *scripts], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_workflows():
    actionlint = require_tool("actionlint", "PyPI package from the `ops` extra")
    workflows = sorted(str(p) for p in (REPO / ".github" / "workflows").glob("*.yml"))
    assert {os.path.basename(p) for p in workflows} >= {"ci.yml", "deploy.yml"}
    env = {**os.environ, "SHELLCHECK_OPTS": "-x"}
    result = subprocess.run([actionlint, "-shellcheck", require_tool("shellcheck", "Debian package shellcheck"),
                             *workflows], capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def _ansible_env() -> dict:
    return {**os.environ, "ANSIBLE_LOCAL_TEMP": "/tmp/.ansible-tmp", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOME": "/tmp/.ansible-home",
            "PATH": f"{os.path.dirname(require_tool('ansible-playbook', 'ops extra'))}:{os.environ.get('PATH', '')}"}


def test_ansible_syntax_check():
    playbook = require_tool("ansible-playbook", "PyPI ansible (the `ops` extra)")
    deploy = REPO / "deploy"
    # site.yml imports db.yml and app.yml: one run checks the three
    result = subprocess.run([playbook, "-i", "inventory/hosts.yml.example", "--syntax-check", "site.yml"],
                            capture_output=True, text=True, cwd=deploy, env=_ansible_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "playbook: site.yml" in result.stdout


def test_ansible_lint_production_profile():
    lint = require_tool("ansible-lint", "PyPI ansible-lint (the `ops` extra)")
    result = subprocess.run([lint, "--nocolor", "--offline"], capture_output=True, text=True,
                            cwd=REPO / "deploy", env=_ansible_env(), timeout=300)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    actionlint = require_tool("actionlint", "PyPI package from the `ops` extra")
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
                   "      - run: echo ${{ github.no_such_context.value }}\n        concurrency: nope\n")
    result = subprocess.run([actionlint, str(bad)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0 and "bad.yml" in result.stdout, result.stdout + result.stderr
