"""GitHub Actions workflows and the CI SSH window: least `permissions:`, actions pinned to a commit,
no persisted git token, secrets reach scripts through `env:` only (never spliced into a script,
never handed to a third-party action); ci-ssh-window.sh run against a stand-in DigitalOcean API
opens port 22 to the runner's address only, closes the same rule, and never prints the token."""

import datetime
import http.server
import json
import os
import re
import subprocess
import threading
import urllib.parse

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
    """The firewall endpoints of the DigitalOcean API the script uses, with their state: list (paged as the API pages
    it: `per_page`, at most `page_size` a page, `links.pages.next` an absolute URL), create, delete."""

    calls: list = []
    firewalls: list = []
    page_size = 200  # the API's own maximum
    created = 0
    delete_status: dict = {}  # firewall id -> the status a DELETE of it answers (an API failure), instead of deleting

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
        return body

    def do_GET(self):
        self._record()
        if self.path == "/checkip":
            return self._reply(200, text="198.51.100.7\n")
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/v2/firewalls":
            query = urllib.parse.parse_qs(url.query)
            per_page = min(int(query.get("per_page", ["20"])[0]), self.page_size)
            page = int(query.get("page", ["1"])[0])
            listed = self.firewalls[(page - 1) * per_page:page * per_page]
            pages = {}
            if page * per_page < len(self.firewalls):
                # the API names its own host; a host the script must never send the token to stands for it here
                # (.invalid never resolves: following the URL itself fails the run)
                pages["next"] = f"https://api.digitalocean.invalid/v2/firewalls?page={page + 1}&per_page={per_page}"
            return self._reply(200, {"firewalls": listed, "links": {"pages": pages},
                                     "meta": {"total": len(self.firewalls)}})
        self._reply(404)

    def do_POST(self):
        body = self._record()
        if self.path == "/v2/firewalls":
            type(self).created += 1
            firewall = {**body, "id": f"fw-ci-{self.created}", "status": "waiting",
                        "created_at": _stamp(datetime.timedelta(0))}
            self.firewalls.append(firewall)
            return self._reply(202, {"firewall": firewall})
        self._reply(204, text="")

    def do_DELETE(self):
        self._record()
        wanted = self.path.removeprefix("/v2/firewalls/")
        if wanted in self.delete_status:
            return self._reply(self.delete_status[wanted], {"id": "server_error"})
        if "/" not in wanted:
            if not any(f["id"] == wanted for f in self.firewalls):
                return self._reply(404, {"id": "not_found"})
            self.firewalls[:] = [f for f in self.firewalls if f["id"] != wanted]
        self._reply(204, text="")

    def log_message(self, *args):
        pass


def _stamp(ago: datetime.timedelta) -> str:
    return (datetime.datetime.now(datetime.UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


WEB_TAGS = ["raiox-api", "raiox-admin"]


@pytest.fixture
def fake_do():
    _FakeDigitalOcean.calls = []
    _FakeDigitalOcean.page_size = 200
    _FakeDigitalOcean.delete_status = {}
    # as the API lists them: each firewall with its rules (infra/firewall.tf's SSH rule for the operators' CIDRs)
    _FakeDigitalOcean.firewalls = [
        {"id": "fw-db", "name": "raiox-db", "inbound_rules": [], "tags": ["raiox-db"], "droplet_ids": [],
         "created_at": _stamp(datetime.timedelta(days=90))},
        {"id": "fw-web", "name": "raiox-web", "tags": WEB_TAGS, "droplet_ids": [],
         "created_at": _stamp(datetime.timedelta(days=90)), "inbound_rules": [
            {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["203.0.113.0/24"]}},
            {"protocol": "tcp", "ports": "443", "sources": {"addresses": ["0.0.0.0/0", "::/0"]}}]},
    ]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeDigitalOcean)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _FakeDigitalOcean.calls
    server.shutdown()
    server.server_close()


def _named(name: str) -> list[dict]:
    return [f for f in _FakeDigitalOcean.firewalls if f["name"] == name]


def test_ci_ssh_window_opens_and_closes_one_address(tmp_path, fake_do):
    require_tool("curl", "Debian package curl")
    require_tool("python3", "Debian package python3")
    base, calls = fake_do
    token = "dop_v1_" + "0123456789abcdef" * 4
    env = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp_path), "DIGITALOCEAN_TOKEN": token,
           "DO_API_URL": f"{base}/v2", "CHECKIP_URL": f"{base}/checkip", "GITHUB_RUN_ID": "777",
           "GITHUB_RUN_ATTEMPT": "2"}
    script = str(REPO / "deploy" / "scripts" / "ci-ssh-window.sh")
    web_before = json.dumps(_named("raiox-web"))
    window = {"name": "raiox-web-ci-777-2", "droplet_ids": [], "tags": WEB_TAGS, "inbound_rules": [
        {"protocol": "tcp", "ports": "22", "sources": {"addresses": ["198.51.100.7/32"]}}]}

    opened = subprocess.run(["bash", script, "open"], env=env, capture_output=True, text=True, timeout=60)
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert ("POST", "/v2/firewalls", f"Bearer {token}", window) in calls
    (created,) = _named("raiox-web-ci-777-2")
    closed = subprocess.run(["bash", script, "close"], env=env, capture_output=True, text=True, timeout=60)
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert ("DELETE", f"/v2/firewalls/{created['id']}", f"Bearer {token}", None) == calls[-1]
    assert _named("raiox-web-ci-777-2") == []
    # Terraform's firewall is never changed (its rules would be drift, and a DELETE there could remove an operator's)
    assert json.dumps(_named("raiox-web")) == web_before
    assert not any("/rules" in path for _, path, _, _ in calls)
    assert not (tmp_path / "ci-ssh-window.id").exists()
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


def _filler(count: int) -> list[dict]:
    return [{"id": f"fw-other-{n}", "name": f"other-{n}", "inbound_rules": [], "tags": ["other"], "droplet_ids": [],
             "created_at": _stamp(datetime.timedelta(days=1))} for n in range(count)]


def test_ci_ssh_window_reads_every_page_of_the_firewall_list(tmp_path, fake_do):
    """The list used to be read once (per_page=200): an account with more firewalls, raiox-web on a later page,
    failed with 'no cloud firewall'. The stand-in pages by 2, so raiox-web is on page 3 of 4."""
    require_tool("curl", "Debian package curl")
    base, calls = fake_do
    _FakeDigitalOcean.page_size = 2
    db, web = _FakeDigitalOcean.firewalls
    _FakeDigitalOcean.firewalls[:] = [db, *_filler(4), web, *_filler(1)]
    opened = _window(tmp_path, base, "open", GITHUB_RUN_ID="5")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    listed = [path for method, path, _, _ in calls if method == "GET" and path.startswith("/v2/firewalls")]
    assert listed == ["/v2/firewalls?per_page=200", "/v2/firewalls?page=2&per_page=2",
                      "/v2/firewalls?page=3&per_page=2", "/v2/firewalls?page=4&per_page=2"]
    (window,) = _named("raiox-web-ci-5-1")
    assert window["tags"] == WEB_TAGS
    closed = _window(tmp_path, base, "close", GITHUB_RUN_ID="5")
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert _named("raiox-web-ci-5-1") == []


def test_ci_ssh_window_sees_a_second_firewall_of_the_name_on_a_later_page(tmp_path, fake_do):
    require_tool("curl", "Debian package curl")
    base, calls = fake_do
    _FakeDigitalOcean.page_size = 2
    _FakeDigitalOcean.firewalls.extend([*_filler(3), {"id": "fw-web-2", "name": "raiox-web", "inbound_rules": []}])
    result = _window(tmp_path, base, "open")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 cloud firewalls are named raiox-web (ids fw-web fw-web-2)" in result.stderr
    assert [(method, path) for method, path, _, _ in calls if method != "GET"] == []


def test_ci_ssh_window_of_a_run_is_not_closed_by_another_run_from_the_same_address(tmp_path, fake_do):
    """Stage and production deploy at once (each environment has its own concurrency group) from runners sharing a
    public address: the first to close used to delete the one rule both relied on, cutting the other's SSH mid-deploy
    (the second had found the first's rule and added none). Each run now holds a window of its own."""
    require_tool("curl", "Debian package curl")
    base, calls = fake_do
    stage, production = tmp_path / "stage", tmp_path / "production"
    stage.mkdir()
    production.mkdir()
    for temp, run in ((stage, "100"), (production, "200")):
        opened = _window(temp, base, "open", GITHUB_RUN_ID=run)
        assert opened.returncode == 0, opened.stdout + opened.stderr
        assert "SSH open to 198.51.100.7/32" in opened.stdout
    assert len(_named("raiox-web-ci-100-1")) == len(_named("raiox-web-ci-200-1")) == 1

    closed = _window(stage, base, "close", GITHUB_RUN_ID="100")
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert _named("raiox-web-ci-100-1") == []
    (still,) = _named("raiox-web-ci-200-1")  # production's SSH is still open to the address
    assert still["inbound_rules"] == [{"protocol": "tcp", "ports": "22",
                                       "sources": {"addresses": ["198.51.100.7/32"]}}]
    assert still["tags"] == WEB_TAGS

    closed = _window(production, base, "close", GITHUB_RUN_ID="200")
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert [f["name"] for f in _FakeDigitalOcean.firewalls] == ["raiox-db", "raiox-web"]


def test_ci_ssh_window_deletes_windows_left_by_killed_runs_only(tmp_path, fake_do):
    require_tool("curl", "Debian package curl")
    base, calls = fake_do
    rule = [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["192.0.2.9/32"]}}]
    _FakeDigitalOcean.firewalls.extend([
        {"id": "fw-dead", "name": "raiox-web-ci-1-1", "inbound_rules": rule, "tags": WEB_TAGS,
         "created_at": _stamp(datetime.timedelta(hours=5))},
        {"id": "fw-live", "name": "raiox-web-ci-2-1", "inbound_rules": rule, "tags": WEB_TAGS,
         "created_at": _stamp(datetime.timedelta(minutes=150))},
        {"id": "fw-old-other", "name": "raiox-db-ci-1-1", "inbound_rules": [], "tags": ["x"],
         "created_at": _stamp(datetime.timedelta(days=3))},
    ])
    opened = _window(tmp_path, base, "open", GITHUB_RUN_ID="3")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert "deleted raiox-web-ci-1-1 (fw-dead)" in opened.stdout
    names = {f["name"] for f in _FakeDigitalOcean.firewalls}
    assert "raiox-web-ci-1-1" not in names
    assert {"raiox-web-ci-2-1", "raiox-db-ci-1-1", "raiox-web-ci-3-1"} <= names


def test_ci_ssh_window_close_of_a_window_already_gone_succeeds_with_a_warning(tmp_path, fake_do):
    """The run's window deleted meanwhile (by hand, or as stale by another run's open): the DELETE answers 404, which
    used to fail the close step (and the deploy job with it). Now a warning, exit 0; any other failure still fails,
    and keeps the id so the close can be run again."""
    require_tool("curl", "Debian package curl")
    base, calls = fake_do
    opened = _window(tmp_path, base, "open", GITHUB_RUN_ID="9")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    (window,) = _named("raiox-web-ci-9-1")

    _FakeDigitalOcean.delete_status = {window["id"]: 500}
    failed = _window(tmp_path, base, "close", GITHUB_RUN_ID="9")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"deleting firewall {window['id']} failed: HTTP 500" in failed.stderr
    assert (tmp_path / "ci-ssh-window.id").read_text().strip() == window["id"]

    _FakeDigitalOcean.delete_status = {}
    _FakeDigitalOcean.firewalls.remove(window)  # deleted by hand in the control panel
    closed = _window(tmp_path, base, "close", GITHUB_RUN_ID="9")
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert f"firewall {window['id']} (this run's SSH window) was already gone" in closed.stderr
    assert ("DELETE", f"/v2/firewalls/{window['id']}") == calls[-1][:2]
    assert not (tmp_path / "ci-ssh-window.id").exists()


def test_ci_ssh_window_open_tolerates_a_stale_window_deleted_meanwhile(tmp_path, fake_do):
    """Two runs' opens both see a killed run's window as stale: the second DELETE answers 404, which is no reason to
    fail; another failure of that DELETE still fails the open."""
    require_tool("curl", "Debian package curl")
    base, _ = fake_do
    _FakeDigitalOcean.firewalls.append({"id": "fw-dead", "name": "raiox-web-ci-1-1", "tags": WEB_TAGS,
                                        "inbound_rules": [], "created_at": _stamp(datetime.timedelta(hours=5))})
    _FakeDigitalOcean.delete_status = {"fw-dead": 503}
    failed = _window(tmp_path, base, "open", GITHUB_RUN_ID="4")
    assert failed.returncode == 1 and "deleting firewall fw-dead failed: HTTP 503" in failed.stderr
    assert _named("raiox-web-ci-4-1") == []
    _FakeDigitalOcean.delete_status = {"fw-dead": 404}  # the other run's open deleted it between list and delete
    opened = _window(tmp_path, base, "open", GITHUB_RUN_ID="4")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert "raiox-web-ci-1-1 (fw-dead), a window left open by a run that never closed it, was already gone" \
        in opened.stderr
    assert len(_named("raiox-web-ci-4-1")) == 1


def test_ci_ssh_window_refuses_a_firewall_on_no_host(tmp_path, fake_do):
    require_tool("curl", "Debian package curl")
    base, calls = fake_do
    _FakeDigitalOcean.firewalls[1]["tags"] = []
    result = _window(tmp_path, base, "open")
    assert result.returncode == 1 and "applies to no droplet and no tag" in result.stderr
    assert [(method, path) for method, path, _, _ in calls if method != "GET"] == []


def test_deploys_are_serialised_per_environment_and_always_close_their_own_window():
    """Deploys of one environment never overlap and are never cancelled half-way; stage and production may overlap
    (a shared group would cancel a pending production deploy when a stage push queued behind it): the SSH window is
    per run, opened before the deploy and closed after it whatever happened."""
    doc = yaml.safe_load((REPO / ".github" / "workflows" / "deploy.yml").read_text())
    job = doc["jobs"]["deploy"]
    group = job["concurrency"]["group"]
    assert job["concurrency"]["cancel-in-progress"] is False
    assert "production" in group and "stage" in group and "github.ref_name" in group
    assert "concurrency" not in doc  # no workflow-level group that would cancel the other environment's pending run
    runs = [step.get("run", "") for step in job["steps"]]
    opening = next(i for i, run in enumerate(runs) if "ci-ssh-window.sh open" in run)
    deploying = next(i for i, run in enumerate(runs) if "remote-deploy.sh" in run)
    closing = next(i for i, run in enumerate(runs) if "ci-ssh-window.sh close" in run)
    assert opening < deploying < closing
    assert job["steps"][closing].get("if") == "always()"
    # the window's name is this run's: the script reads these (set by Actions on every job), nothing may override them
    assert not {"GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"} & {*job.get("env", {}), *job["steps"][opening].get("env", {}),
                                                         *job["steps"][closing].get("env", {})}
