"""GitHub Actions workflows and the CI SSH window: least `permissions:`, actions pinned to a commit,
no persisted git token, secrets reach scripts through `env:` only (never spliced into a script,
never handed to a third-party action); ci-ssh-window.sh run against a stand-in DigitalOcean API
opens port 22 to the runner's address only, closes the same rule, and never prints the token."""

import http.server
import json
import os
import re
import subprocess
import threading

import pytest
import yaml

from .tooling import REPO, require_tool

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _steps():
    for path in WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        for job_name, job in doc["jobs"].items():
            for step in job.get("steps", []):
                yield f"{path.name}:{job_name}:{step.get('name') or step.get('uses')}", job, step


def test_workflows_grant_read_only_permissions():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "deploy.yml"}
    for path in WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        assert doc.get("permissions") == {"contents": "read"}, path.name
        for name, job in doc["jobs"].items():
            granted = job.get("permissions", {})
            assert "write" not in json.dumps(granted) and granted != "write-all", f"{path.name}:{name}"


def test_actions_are_pinned_and_checkout_keeps_no_token():
    used = []
    for where, _job, step in _steps():
        uses = step.get("uses")
        if not uses or uses.startswith("./"):
            continue
        used.append(uses)
        assert PINNED.match(uses), f"{where}: {uses} is not pinned to a commit"
        if uses.startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, where
    assert used, "no action found: the parser is wrong"


def test_secrets_reach_steps_through_env_only():
    seen = 0
    for where, job, step in _steps():
        assert "secrets." not in step.get("run", ""), f"{where}: a secret spliced into a script"
        if step.get("uses") and not step["uses"].startswith("actions/checkout@"):
            assert "secrets." not in json.dumps(step.get("with", {})), f"{where}: a secret handed to an action"
        assert "secrets." not in json.dumps(job.get("env", {})), f"{where}: a secret in every step's env"
        seen += "secrets." in json.dumps(step.get("env", {}))
        assert not re.search(r"set -x|echo \"?\$\{?DEPLOY_SSH_KEY|echo \"?\$\{?DIGITALOCEAN_TOKEN",
                             step.get("run", "")), where
    assert seen >= 3, "the deploy's secrets were expected in step env blocks"


class _FakeDigitalOcean(http.server.BaseHTTPRequestHandler):
    calls: list = []
    firewalls: list = []

    def _reply(self, status: int, body: dict | None = None, text: str | None = None):
        data = text.encode() if text is not None else json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.calls.append((self.command, self.path, self.headers.get("Authorization"), body))

    def do_GET(self):
        self._record()
        if self.path == "/checkip":
            return self._reply(200, text="198.51.100.7\n")
        if self.path.startswith("/v2/firewalls?"):
            return self._reply(200, {"firewalls": self.firewalls})
        self._reply(404)

    def do_POST(self):
        self._record()
        self._reply(204, text="")

    do_DELETE = do_POST

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_do():
    _FakeDigitalOcean.calls = []
    # as the API lists them: each firewall with its rules (infra/firewall.tf's SSH rule for the operators' CIDRs)
    _FakeDigitalOcean.firewalls = [
        {"id": "fw-db", "name": "raiox-db", "inbound_rules": []},
        {"id": "fw-web", "name": "raiox-web", "inbound_rules": [
            {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["203.0.113.0/24"]}},
            {"protocol": "tcp", "ports": "443", "sources": {"addresses": ["0.0.0.0/0", "::/0"]}}]},
    ]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeDigitalOcean)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _FakeDigitalOcean.calls
    server.shutdown()
    server.server_close()


def test_ci_ssh_window_opens_and_closes_one_address(tmp_path, fake_do):
    require_tool("curl", "Debian package curl")
    require_tool("python3", "Debian package python3")
    base, calls = fake_do
    token = "dop_v1_" + "0123456789abcdef" * 4
    env = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp_path), "DIGITALOCEAN_TOKEN": token,
           "DO_API_URL": f"{base}/v2", "CHECKIP_URL": f"{base}/checkip"}
    script = str(REPO / "deploy" / "scripts" / "ci-ssh-window.sh")
    rule = {"inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["198.51.100.7/32"]}}]}

    opened = subprocess.run(["bash", script, "open"], env=env, capture_output=True, text=True, timeout=60)
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert ("POST", "/v2/firewalls/fw-web/rules", f"Bearer {token}", rule) in calls
    closed = subprocess.run(["bash", script, "close"], env=env, capture_output=True, text=True, timeout=60)
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert ("DELETE", "/v2/firewalls/fw-web/rules", f"Bearer {token}", rule) == calls[-1]
    assert not (tmp_path / "ci-ssh-window.addr").exists()
    assert all(auth == f"Bearer {token}" for method, path, auth, _ in calls if path.startswith("/v2/"))
    assert all(auth is None for _, path, auth, _ in calls if path == "/checkip"), "the token went to checkip"
    for run in (opened, closed):
        assert token not in run.stdout + run.stderr

    missing = subprocess.run(["bash", script, "open"], env={**env, "DO_FIREWALL_NAME": "nope"},
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no cloud firewall named nope" in missing.stderr


def _window(tmp_path, base: str, action: str, **extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp_path), "DIGITALOCEAN_TOKEN": "dop_v1_test",
           "DO_API_URL": f"{base}/v2", "CHECKIP_URL": f"{base}/checkip", **extra}
    return subprocess.run(["bash", str(REPO / "deploy" / "scripts" / "ci-ssh-window.sh"), action], env=env,
                          capture_output=True, text=True, timeout=60)


def test_ci_ssh_window_leaves_an_identical_rule_that_was_there_before(tmp_path, fake_do):
    """An operator's own /32 for the runner's address (or the same address in an SSH rule's list) was there before
    the window opened: open adds nothing, and close must not delete it (a DELETE of that rule removes the address)."""
    require_tool("curl", "Debian package curl")
    base, calls = fake_do
    _FakeDigitalOcean.firewalls[1]["inbound_rules"][0]["sources"]["addresses"].append("198.51.100.7/32")
    opened = _window(tmp_path, base, "open")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert "already open to 198.51.100.7/32" in opened.stdout
    closed = _window(tmp_path, base, "close")
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert "this run added no SSH rule" in closed.stdout
    assert [(method, path) for method, path, _, _ in calls if method != "GET"] == []


def test_ci_ssh_window_refuses_two_firewalls_of_the_same_name(tmp_path, fake_do):
    require_tool("curl", "Debian package curl")
    base, calls = fake_do
    _FakeDigitalOcean.firewalls.append({"id": "fw-web-2", "name": "raiox-web", "inbound_rules": []})
    for action in ("open", "close"):
        result = _window(tmp_path, base, action)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "2 cloud firewalls are named raiox-web (ids fw-web fw-web-2)" in result.stderr
    assert [(method, path) for method, path, _, _ in calls if method != "GET"] == []
