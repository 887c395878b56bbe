"""What the Ansible roles write, checked without a host: secrets files readable by their owner
only, PostgreSQL reachable only from the right app hosts with scram-sha-256, memory tuned to the
droplet, the deploy user allowed to restart the services and nothing more, the embedding model pinned to the
shipped default and the catalog reindexed for it before the services get it."""

import re

import yaml

from .rendering import ROLES, render

INVENTORY = {
    "groups": {"api_prod": ["core-api-prod"], "api_stage": ["core-api-stage"], "admin": ["admin-panel"],
               "db": ["core-db-prod"]},
    "hostvars": {"core-api-prod": {"private_ip": "10.116.0.3"}, "core-api-stage": {"private_ip": "10.116.0.4"},
                 "admin-panel": {"private_ip": "10.116.0.5"}, "core-db-prod": {"private_ip": "10.116.0.2"}},
}


def _tasks(role: str) -> dict:
    tasks = yaml.safe_load((ROLES / role / "tasks" / "main.yml").read_text())
    return {task["name"]: task for task in tasks}


def _secret_files() -> dict[str, dict]:
    """dest -> template arguments of every task that writes a file with secrets (or settings) to /etc/raiox."""
    found = {}
    for role in ("raiox", "pg_backup"):
        for task in _tasks(role).values():
            args = task.get("ansible.builtin.template") or {}
            if str(args.get("dest", "")).startswith(("{{ raiox_etc }}/", "/etc/raiox/")):
                found[args["dest"].rsplit("/", 1)[1]] = {**args, "no_log": task.get("no_log")}
    return found


def test_secret_files_are_root_owned_and_readable_by_their_user_only():
    files = _secret_files()
    # the user that reads each one may read it, not rewrite it (owner root); nobody else reads it
    expected = {"raiox.env": "{{ raiox_user }}", "migrate.env": "{{ raiox_deploy_user }}", "s3cfg": "postgres",
                "backup.env": "postgres", "deploy.env": "{{ raiox_deploy_user }}",
                "catalog.env": "{{ raiox_deploy_user }}"}
    assert set(files) == set(expected)
    for name, group in expected.items():
        args = files[name]
        assert (args["owner"], args["group"], args["mode"]) == ("root", group, "0640"), name
    for name in ("raiox.env", "migrate.env", "s3cfg", "catalog.env"):
        assert files[name]["no_log"] is True, name
    defaults = yaml.safe_load((ROLES / "raiox" / "defaults" / "main.yml").read_text())
    assert defaults["raiox_user"] != defaults["raiox_deploy_user"], "the service user must not read migrate.env"


def test_service_user_is_unprivileged():
    defaults = yaml.safe_load((ROLES / "raiox" / "defaults" / "main.yml").read_text())
    assert defaults["raiox_user"] not in ("root", defaults["raiox_deploy_user"])
    user = _tasks("raiox")["Create the service user (no login, no home shell)"]["ansible.builtin.user"]
    assert user["system"] is True and user["shell"] == "/usr/sbin/nologin"


ENV_VALUES = {
    "raiox_database_url": "postgresql://raiox_app:pw@10.116.0.2:5432/raiox?sslmode=require",
    "raiox_migrate_database_url": "postgresql://raiox_owner:opw@10.116.0.2:5432/raiox?sslmode=require",
    "raiox_secrets": {"webhook_secret": "w", "session_secret": "s", "jotform_api_key": "j",
                      "spaces_access_key": "a", "spaces_secret_key": "k", "smtp_password": "p"},
    "raiox_smtp_host": "smtp.example.com",
    "raiox_env_extra": {"RAIOX_JOTFORM_RESULT_FIELDS": '{"system": "21"}', "RAIOX_TOP_K": "7"},
}


def _env_file(template: str, values: dict | None = None) -> dict[str, str]:
    text = render("raiox", template, {**ENV_VALUES, **(values or {})})
    env = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert value.startswith("'") and value.endswith("'") and "'" not in value[1:-1], line
            env[key] = value[1:-1]
    return env


def test_runtime_env_file_carries_the_settings_and_secrets():
    env = _env_file("raiox.env.j2")
    assert env["RAIOX_JOTFORM_RESULT_FIELDS"] == '{"system": "21"}' and env["RAIOX_TOP_K"] == "7"
    assert env["RAIOX_ENV"] == "production" and env["RAIOX_LOG_FORMAT"] == "json"
    assert env["RAIOX_STORAGE_URL"].startswith("s3://")
    assert env["RAIOX_S3_ENDPOINT"] == "https://nyc3.digitaloceanspaces.com"
    assert env["RAIOX_WEBHOOK_SECRET"] == "w" and env["RAIOX_SMTP_PASSWORD"] == "p"
    assert env["RAIOX_DATABASE_URL"].endswith("sslmode=require")
    # the embedding model is pinned (a release whose default model changed must not switch the live catalog's by
    # itself), to the model the release ships as its default: not an older, less accurate one
    from raiox.kit.settings import Settings
    from raiox.vision.embedders import DEFAULT_EMBEDDER, shipped_model

    assert "RAIOX_EMBEDDER" in yaml.safe_load((ROLES / "raiox" / "defaults" / "main.yml").read_text())["raiox_env"]
    assert env["RAIOX_EMBEDDER"] == DEFAULT_EMBEDDER == Settings.model_fields["embedder"].default
    assert shipped_model(env["RAIOX_EMBEDDER"]) is not None


def test_migration_env_file_has_the_services_settings_with_the_owners_database():
    """deploy.sh and app.yml check and reindex the catalog with migrate.env (the deploy user cannot read raiox.env):
    the same model, object storage and settings as the services, the migration role's database."""
    runtime, migration = _env_file("raiox.env.j2"), _env_file("migrate.env.j2")
    assert migration["RAIOX_DATABASE_URL"].startswith("postgresql://raiox_owner:")
    smtp = {k for k in runtime if k.startswith("RAIOX_SMTP_")}
    assert smtp and not smtp & set(migration)  # what the reindex never needs stays out
    assert {k: v for k, v in runtime.items() if k not in smtp | {"RAIOX_DATABASE_URL"}} == {
        k: v for k, v in migration.items() if k != "RAIOX_DATABASE_URL"}
    switched = _env_file("migrate.env.j2", {"raiox_env_extra": {"RAIOX_EMBEDDER": "raiox-v11"}})
    assert switched["RAIOX_EMBEDDER"] == "raiox-v11" == _env_file(
        "raiox.env.j2", {"raiox_env_extra": {"RAIOX_EMBEDDER": "raiox-v11"}})["RAIOX_EMBEDDER"]


def test_pg_hba_admits_each_role_from_its_hosts_only():
    defaults = yaml.safe_load((ROLES / "postgres" / "defaults" / "main.yml").read_text())
    import jinja2

    env = jinja2.Environment()
    databases = []
    for db in defaults["postgres_databases"]:
        resolved = dict(db)
        for key in ("app_clients", "migrate_clients"):
            expr = db[key].strip()[2:-2]
            resolved[key] = env.compile_expression(expr)(**INVENTORY)
        databases.append(resolved)
    text = render("postgres", "pg_hba.conf.j2", {"postgres_databases": databases, **INVENTORY,
                                                   "vault_postgres_passwords": {}, "ansible_memtotal_mb": 2048,
                                                   "private_ip": "10.116.0.2"})
    rules = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    remote = [r for r in rules if r[0].startswith("host") and r[3] not in ("127.0.0.1/32", "::1/128")]
    assert {tuple(r) for r in remote} == {
        ("hostssl", "raiox", "raiox_app", "10.116.0.3/32", "scram-sha-256"),
        ("hostssl", "raiox", "raiox_app", "10.116.0.5/32", "scram-sha-256"),
        ("hostssl", "raiox", "raiox_owner", "10.116.0.3/32", "scram-sha-256"),
        ("hostssl", "raiox_stage", "raiox_stage_app", "10.116.0.4/32", "scram-sha-256"),
        ("hostssl", "raiox_stage", "raiox_stage_owner", "10.116.0.4/32", "scram-sha-256"),
    }
    assert all(r[-1] in ("peer", "scram-sha-256") for r in rules)


def test_postgres_listens_privately_with_memory_for_a_2gb_droplet():
    text = render("postgres", "raiox.conf.j2", {"private_ip": "10.116.0.2", "ansible_memtotal_mb": 1967,
                                                "vault_postgres_passwords": {}, **INVENTORY})
    settings = dict(re.findall(r"^(\w+) = '?([^'\n]*)'?$", text, flags=re.M))
    assert settings["listen_addresses"] == "localhost,10.116.0.2"
    assert settings["password_encryption"] == "scram-sha-256"
    assert settings["shared_buffers"] == "491MB"
    assert settings["effective_cache_size"] == "1376MB"
    assert 128 <= int(settings["maintenance_work_mem"].removesuffix("MB")) <= 2048
    assert 4 <= int(settings["work_mem"].removesuffix("MB")) <= 64


def test_deploy_user_may_restart_the_services_and_nothing_else():
    text = render("raiox", "sudoers.j2", {"raiox_services": ["raiox-api", "raiox-worker"]})
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert rules == ["deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart raiox-api.service raiox-worker.service"]
    deploy_env = render("raiox", "deploy.env.j2", {"raiox_services": ["raiox-api", "raiox-worker"]})
    assert 'RAIOX_RESTART_CMD="sudo /usr/bin/systemctl restart raiox-api.service raiox-worker.service"' in deploy_env


def test_the_deploy_checks_every_restarted_service_still_runs(tmp_path):
    """/readyz is the API's: the worker (no health URL) is checked by systemctl is-active, each unit on its own,
    needing no sudo. Sourced as deploy.sh sources it, the command loops over every service of the host."""
    import os
    import subprocess

    deploy_env = tmp_path / "deploy.env"
    deploy_env.write_text(render("raiox", "deploy.env.j2", {
        "raiox_services": ["raiox-api", "raiox-worker"], "raiox_root": "/srv/raiox", "raiox_python": "python3",
        "raiox_keep_releases": 5, "raiox_health_port": 8000, "raiox_etc": "/etc/raiox", "raiox_migrate": True}))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text('#!/bin/sh\necho "$@" >> "$CALLS"; [ "$3" != raiox-worker.service ]\n')
    (fake / "systemctl").chmod(0o755)
    calls = tmp_path / "calls"
    script = f'source {deploy_env}; PATH={fake}:$PATH; bash -c "${{RAIOX_SERVICES_CHECK_CMD//\\/usr\\/bin\\//}}"'
    result = subprocess.run(["bash", "-c", script], env={"CALLS": str(calls), "PATH": os.environ["PATH"]})
    assert result.returncode == 1  # the worker is not running: the deploy fails (and rolls back)
    assert calls.read_text().split("\n")[:2] == ["is-active --quiet raiox-api.service",
                                                 "is-active --quiet raiox-worker.service"]


def _secret_like(key: str) -> bool:
    return bool(re.search(r"(password|secret|token|api_key|access_key|private)", key, re.I))


def _literal_secrets(node, path="") -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if _secret_like(str(key)) and isinstance(value, str) and value and "{{" not in value:
                found.append(where)
            found += _literal_secrets(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _literal_secrets(value, f"{path}[{i}]")
    return found


def test_group_vars_take_secrets_from_the_vault_only():
    group_vars = ROLES.parent / "inventory" / "group_vars"
    plain = [p for p in group_vars.rglob("*.yml") if not p.name.startswith("vault")]
    assert len(plain) >= 5
    for path in plain:
        assert _literal_secrets(yaml.safe_load(path.read_text()) or {}) == [], path
    # a vault file in the tree is committed encrypted, never in clear
    for path in group_vars.rglob("vault*.yml"):
        assert path.read_text().startswith("$ANSIBLE_VAULT;"), f"{path} is not encrypted"
    # and the check itself sees a literal secret
    assert _literal_secrets({"raiox_secrets": {"webhook_secret": "abc123"}}) == ["raiox_secrets.webhook_secret"]
    assert _literal_secrets({"raiox_secrets": "{{ vault_prod }}"}) == []


FAKE_RAIOX = """#!/usr/bin/env bash
# stands for the current release's raiox: logs its call (and the model it got), exits as the test says
echo "$* [$RAIOX_EMBEDDER]" >> "$CALLS"
# whether the deploy lock is held meanwhile (by whoever runs this)
if [ -n "${LOCK:-}" ]; then
    if flock -n "$LOCK" true; then echo "$*: lock free" >> "$LOCKS"; else echo "$*: lock held" >> "$LOCKS"; fi
fi
case "$*" in
    "catalog status --help") exit "${HELP_RC:-0}" ;;
    "catalog status") echo '{"ready": false}'; exit "$STATUS_RC" ;;
    "catalog reindex") exit "$REINDEX_RC" ;;
esac
exit 99
"""


DEPLOY_SCRIPT = ROLES.parent / "scripts" / "deploy.sh"
REINDEX_TASK = "Embed the catalog with the configured model before the services use it"
CHECK_TASK = "Check the catalog for the configured model on a host that does not reindex"
REFUSE_TASK = "Refuse a model the catalog is not ready for on a host that does not reindex"
RUNTIME_ENV_TASK = "Write the runtime env file (root's; the service user may read it, not change it)"


class _FakeHost:
    """A folder standing for an app host: /etc/raiox (with the role's deploy.env), /srv/raiox with a current release
    whose `raiox` is FAKE_RAIOX, the repository's deploy.sh as the installed deploy script, and a role task's shell
    script rendered for it, run as Ansible runs it (its `environment:` included)."""

    def __init__(self, tmp_path, task_name: str, **values):
        self.tmp, self.etc, self.srv = tmp_path, tmp_path / "etc", tmp_path / "srv"
        (self.srv / "current" / "venv" / "bin").mkdir(parents=True)
        self.etc.mkdir()
        raiox = self.srv / "current" / "venv" / "bin" / "raiox"
        raiox.write_text(FAKE_RAIOX)
        raiox.chmod(0o755)
        self.lock, self.calls, self.locks = self.srv / ".deploy.lock", tmp_path / "calls", tmp_path / "locks"
        self.task = _tasks("raiox")[task_name]
        from .rendering import context, environment

        ctx = context("raiox", {"raiox_etc": str(self.etc), "raiox_root": str(self.srv),
                                "raiox_data_dir": str(tmp_path), "raiox_deploy_script": str(DEPLOY_SCRIPT),
                                **ENV_VALUES, **values})
        jinja = environment("raiox")
        (self.etc / "deploy.env").write_text(jinja.get_template("deploy.env.j2").render(**ctx))
        self.script = jinja.from_string(self.task["ansible.builtin.shell"]["cmd"]).render(**ctx)
        self.environment = {k: jinja.from_string(v).render(**ctx) for k, v in self.task.get("environment", {}).items()}
        self.context, self.jinja = ctx, jinja

    def run(self, **rcs: str):
        import os
        import subprocess

        self.calls.write_text("")
        self.locks.write_text("")
        env = {"PATH": os.environ["PATH"], "CALLS": str(self.calls), "LOCKS": str(self.locks), "LOCK": str(self.lock),
               "REINDEX_RC": "0", **self.environment, **rcs}
        done = subprocess.run([self.task["ansible.builtin.shell"]["executable"], "-c", self.script], env=env,
                              cwd=self.tmp, capture_output=True, text=True, timeout=60)
        return done, self.calls.read_text().splitlines()

    def condition(self, expression: str, **values) -> bool:
        """A task's `when` / `failed_when`, evaluated as Ansible does with these values."""
        return bool(self.jinja.compile_expression(expression)(**{**self.context, **values}))


def test_app_yml_reindexes_for_a_new_model_before_the_services_get_it(tmp_path):
    """A changed RAIOX_EMBEDDER reaches the services when raiox.env is written and the handler restarts them: the
    role first runs the current release's catalog check with migrate.env, as the deploy user, and the reindex when
    it says "not ready" (exit 3); a failure stops the play before raiox.env changes."""
    names = [task["name"] for task in yaml.safe_load((ROLES / "raiox" / "tasks" / "main.yml").read_text())]
    host = _FakeHost(tmp_path, REINDEX_TASK)
    task = host.task
    assert (names.index("Check whether a release is installed")
            < names.index("Write the deploy settings") < names.index("Install the deploy script")
            < names.index("Write the migration env file (root's; the deploy user may read it, not change it)")
            < names.index(task["name"]) < names.index(RUNTIME_ENV_TASK))
    assert task["become_user"] == "{{ raiox_deploy_user }}" and task["become"] is True
    assert task["when"] == "raiox_migrate and raiox_current.stat.exists"
    # a long operation never depends on the SSH connection: an async job, polled, outliving any reindex's bounds
    assert task["poll"] > 0 and task["async"] >= 2 * 3600 + 900 + 3600
    (host.etc / "migrate.env").write_text("RAIOX_EMBEDDER='raiox-v12'\n")
    run = host.run

    ready, called = run(STATUS_RC="0")
    assert ready.returncode == 0 and called == ["catalog status --help [raiox-v12]", "catalog status [raiox-v12]"]
    assert "reindexed with" not in ready.stdout  # changed_when: nothing done
    missing, called = run(STATUS_RC="3")
    assert missing.returncode == 0 and called[-1] == "catalog reindex [raiox-v12]", missing.stderr
    assert "reindexed with raiox-v12" in missing.stdout  # changed
    failed, called = run(STATUS_RC="3", REINDEX_RC="1")
    assert failed.returncode == 1 and called[-1] == "catalog reindex [raiox-v12]"
    broken, called = run(STATUS_RC="2")
    assert broken.returncode == 2 and called[-1] == "catalog status [raiox-v12]"
    # a release from before `catalog status`: its reindex (only what is missing) runs unchecked, and may fail
    older, called = run(STATUS_RC="0", HELP_RC="2")
    assert older.returncode == 0 and called == ["catalog status --help [raiox-v12]", "catalog reindex [raiox-v12]"]
    assert run(STATUS_RC="0", HELP_RC="2", REINDEX_RC="2")[0].returncode == 2


def test_app_yml_reindexes_under_the_deploy_lock(tmp_path):
    """app.yml's check and reindex hold deploy.sh's lock, taken by deploy.sh itself (--hold-lock: the same file, the
    same user, deploy.sh's wait): a deploy cannot switch releases under the reindex, nor run its own beside it. A deploy
    holding it is waited for, then named."""
    import fcntl

    host = _FakeHost(tmp_path, REINDEX_TASK, raiox_lock_timeout=1)
    (host.etc / "migrate.env").write_text("RAIOX_EMBEDDER='raiox-v13'\n")
    done, called = host.run(STATUS_RC="3")
    assert done.returncode == 0 and called[-1] == "catalog reindex [raiox-v13]", done.stderr
    assert host.locks.read_text().splitlines() == ["catalog status --help: lock held", "catalog status: lock held",
                                                   "catalog reindex: lock held"]
    # it says who holds it, for a deploy waiting meanwhile
    assert host.lock.read_text().startswith("app.yml catalog check/reindex with raiox-v13 by ")

    host.lock.write_text("deploy of 0123abcd by deploy (pid 42) since 2026-12-05T07:00:00Z\n")
    with open(host.lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        waited, called = host.run(STATUS_RC="3")
    assert waited.returncode == 1 and called == [], waited.stderr
    assert "waiting for the deploy lock" in waited.stderr
    assert ("gave up: the deploy lock is still held after 1s (RAIOX_LOCK_TIMEOUT) by: deploy of 0123abcd by deploy "
            "(pid 42) since 2026-12-05T07:00:00Z") in waited.stderr
    assert "try again once it is done" in waited.stderr
    # the deploy's line is still there (nobody truncates the lock file while waiting)
    assert host.lock.read_text().startswith("deploy of 0123abcd")


def test_the_deploy_lock_wait_is_defined_in_deploy_sh_only(tmp_path):
    """One definition of how long the deploy lock is waited for: deploy.sh's RAIOX_LOCK_TIMEOUT (default: a whole
    reindex, RAIOX_REINDEX_TIMEOUT, and 900 s more). The role neither computes one nor takes the lock itself (app.yml's
    task goes through deploy.sh), and writes RAIOX_LOCK_TIMEOUT only when the inventory overrides it."""
    import fcntl

    defaults = yaml.safe_load((ROLES / "raiox" / "defaults" / "main.yml").read_text())
    assert "raiox_lock_timeout" not in defaults
    script = _tasks("raiox")[REINDEX_TASK]["ansible.builtin.shell"]["cmd"]
    assert "--hold-lock" in script and "flock" not in script and "lock_timeout" not in script
    assert "RAIOX_LOCK_TIMEOUT" not in render("raiox", "deploy.env.j2", {})
    assert "RAIOX_LOCK_TIMEOUT=5000" in render("raiox", "deploy.env.j2", {"raiox_lock_timeout": 5000})
    # unset, the task waits as long as a deploy does: deploy.sh's default, from the reindex timeout deploy.env gives
    host = _FakeHost(tmp_path, REINDEX_TASK, raiox_reindex_timeout=7)
    (host.etc / "migrate.env").write_text("RAIOX_EMBEDDER='raiox-v12'\n")
    with open(host.lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        import subprocess
        import threading

        threading.Timer(2, held.close).start()  # the holder finishes after 2 s, well within 7 + 900 s
        done, called = host.run(STATUS_RC="0")
    assert "at most 907s: RAIOX_LOCK_TIMEOUT" in done.stderr, done.stderr
    assert done.returncode == 0 and called[-1] == "catalog status [raiox-v12]", done.stderr
    assert subprocess.run(["bash", str(DEPLOY_SCRIPT), "--hold-lock", "x"], capture_output=True).returncode == 64


def test_the_reindex_by_hand_in_the_docs_holds_the_deploy_lock_and_names_itself(tmp_path):
    """docs/operations.md's reindex by hand runs under the deploy lock, taken by the installed deploy script
    (raiox-deploy --hold-lock) with the host's deploy settings, as app.yml does: a deploy that waits meanwhile names
    this reindex and who ran it, not whoever held the lock before."""
    import os
    import re
    import subprocess

    docs = (ROLES.parents[1] / "docs" / "operations.md").read_text()  # ROLES is deploy/roles
    (command,) = [line for line in docs.splitlines()
                  if line.startswith("sudo -u deploy ") and "--hold-lock" in line and "catalog reindex" in line]
    srv, etc, bin_ = tmp_path / "srv", tmp_path / "etc", tmp_path / "bin"
    for folder in (srv / "current" / "venv" / "bin", etc, bin_):
        folder.mkdir(parents=True)
    (bin_ / "raiox-deploy").symlink_to(DEPLOY_SCRIPT)  # what the role installs on the PATH
    (etc / "deploy.env").write_text(render("raiox", "deploy.env.j2", {"raiox_root": str(srv)}))
    (etc / "migrate.env").write_text("RAIOX_EMBEDDER='raiox-v11'\nRAIOX_DATABASE_URL='postgresql://owner@db/raiox'\n")
    lock, calls = srv / ".deploy.lock", tmp_path / "calls"
    lock.write_text("deploy of 0123abcd by deploy (pid 42) since 2026-12-05T07:00:00Z\n")  # the previous holder
    raiox = srv / "current" / "venv" / "bin" / "raiox"
    raiox.write_text("#!/usr/bin/env bash\n"
                     'if flock -n "$LOCK" true; then held=free; else held=held; fi\n'
                     'holder=$(head -n 1 "$LOCK" | cut -c 1-300)\n'
                     'echo "$* [$RAIOX_DATABASE_URL] lock $held, holder: $holder" >> "$CALLS"\n')
    raiox.chmod(0o755)
    script = command.removeprefix("sudo -u deploy ").replace("/srv/raiox", str(srv)).replace("/etc/raiox", str(etc))
    env = {"PATH": f"{bin_}:{os.environ['PATH']}", "LOCK": str(lock), "CALLS": str(calls), "SUDO_USER": "alice",
           "RAIOX_DEPLOY_CONFIG": str(etc / "deploy.env")}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (call,) = calls.read_text().splitlines()
    holder = re.fullmatch(r"catalog reindex --embedder raiox-v12 \[postgresql://owner@db/raiox\] lock held, holder: "
                          r"(reindex by hand with raiox-v12 for alice by \S+ \(pid \d+\) since "
                          r"\d{4}-\d\d-\d\dT[\d:]{8}Z)", call)
    assert holder, call
    assert lock.read_text() == holder[1] + "\n"  # what deploy.sh's and app.yml's wait messages quote (first line)


def test_deploy_settings_wait_for_a_reindex_and_check_the_catalog_everywhere():
    """deploy.sh gets the reindex timeout (its lock wait follows from it: the holder may be running one); a host that
    does not migrate points the catalog check at catalog.env (it has no migrate.env)."""
    api = dict(line.split("=", 1) for line in render("raiox", "deploy.env.j2", {}).splitlines()
               if line and not line.startswith("#"))
    admin = dict(line.split("=", 1) for line in render("raiox", "deploy.env.j2", {"raiox_migrate": False}).splitlines()
                 if line and not line.startswith("#"))
    assert int(api["RAIOX_REINDEX_TIMEOUT"]) == 3600 and "RAIOX_LOCK_TIMEOUT" not in api
    assert api["RAIOX_MIGRATE_ENV"] == "/etc/raiox/migrate.env" and api["RAIOX_MIGRATE"] == "1"
    assert admin["RAIOX_MIGRATE_ENV"] == "/etc/raiox/catalog.env" and admin["RAIOX_MIGRATE"] == "0"
    check = _env_file("catalog.env.j2", {"raiox_env_extra": {"RAIOX_EMBEDDER": "raiox-v13"}})
    # the model and the app role's database, nothing else (no object storage keys, no secrets of the services)
    assert check == {"RAIOX_EMBEDDER": "raiox-v13", "RAIOX_DATABASE_URL": ENV_VALUES["raiox_database_url"]}
    names = [task["name"] for task in yaml.safe_load((ROLES / "raiox" / "tasks" / "main.yml").read_text())]
    written = next(n for n in names if n.startswith("Write the catalog check's env file"))
    assert _tasks("raiox")[written]["when"] == "not raiox_migrate"
    # written only once the new model passed the check (the file feeds deploy.sh's check)
    assert names.index(REFUSE_TASK) < names.index(written) < names.index(RUNTIME_ENV_TASK)


def test_app_yml_refuses_a_new_model_on_a_host_that_does_not_reindex(tmp_path):
    """The admin host (raiox_migrate false) cannot reindex: a new RAIOX_EMBEDDER reaches its raiox.env (and restarts
    it) only when the catalog is already ready for that model. Read-only `catalog status` with the new model, as the
    service user with raiox.env; not ready (exit 3): the play fails before raiox.env changes, saying what to run.
    Not ready for the model it already uses: the play goes on (nothing gets worse; a secret rotation lands) and
    app.yml's post_tasks fail the run at its end, naming the host (it passed as healthy before)."""
    from .rendering import inventory_values

    names = [task["name"] for task in yaml.safe_load((ROLES / "raiox" / "tasks" / "main.yml").read_text())]
    # after the API hosts' reindex task: with `--limit api_prod,admin` each task runs on every host before the next,
    # so the API host has reindexed before the admin host checks
    assert (names.index(REINDEX_TASK) < names.index(CHECK_TASK) < names.index(REFUSE_TASK)
            < names.index(RUNTIME_ENV_TASK))
    host = _FakeHost(tmp_path, CHECK_TASK, raiox_env_extra={"RAIOX_EMBEDDER": "raiox-v13"})
    task = host.task
    assert task["become"] is True and task["become_user"] == "{{ raiox_user }}"
    assert host.environment == {"RAIOX_NEW_EMBEDDER": "raiox-v13"}
    (host.etc / "raiox.env").write_text("RAIOX_EMBEDDER='raiox-v12'\nRAIOX_DATABASE_URL='postgresql://app'\n")

    (post_task,) = yaml.safe_load((ROLES.parent / "app.yml").read_text())[0]["post_tasks"]

    def outcome(done) -> tuple[bool, bool, bool]:
        """(the check task failed, the refusal fails the play before raiox.env, the post task fails the run at its
        end) for the run's exit status on the admin host"""
        registered = {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
        admin = {"raiox_migrate": False, "raiox_current": {"stat": {"exists": True}},
                 "raiox_model_check": registered}
        refuse = _tasks("raiox")[REFUSE_TASK]["when"]
        return (host.condition(task["failed_when"], **admin), host.condition(refuse, **admin),
                host.condition(post_task["when"], **admin))

    ready, called = host.run(STATUS_RC="0")
    assert ready.returncode == 0 and called == ["catalog status --help [raiox-v12]", "catalog status [raiox-v13]"]
    assert outcome(ready) == (False, False, False)
    missing, called = host.run(STATUS_RC="3")
    assert missing.returncode == 3 and called[-1] == "catalog status [raiox-v13]"
    assert outcome(missing) == (False, True, False)
    assert host.run(STATUS_RC="2")[0].returncode == 2 and outcome(host.run(STATUS_RC="2")[0]) == (True, False, False)
    # the same model as now: checked too; not ready does not stop the play, it fails the run at its end
    (host.etc / "raiox.env").write_text("RAIOX_EMBEDDER='raiox-v13'\n")
    unchanged, called = host.run(STATUS_RC="0")
    assert unchanged.returncode == 0 and called[-1] == "catalog status [raiox-v13]"
    assert "model unchanged" in unchanged.stdout and outcome(unchanged) == (False, False, False)
    stale, called = host.run(STATUS_RC="3")
    assert stale.returncode == 3 and called[-1] == "catalog status [raiox-v13]" and "model unchanged" in stale.stdout
    assert outcome(stale) == (False, False, True)
    # skipped on the API hosts (no rc registered): nothing to report
    assert not host.condition(post_task["when"], raiox_model_check={"skipped": True})
    registered = {"rc": 3, "stderr": "catalog not ready for raiox-v13: 2 of 9"}
    flagged = host.jinja.from_string(post_task["ansible.builtin.fail"]["msg"]).render(
        inventory_hostname="admin-panel", raiox_model_check=registered)
    assert "admin-panel" in flagged and "catalog not ready for raiox-v13: 2 of 9" in flagged
    assert "--limit api_prod" in flagged

    message = host.jinja.from_string(_tasks("raiox")[REFUSE_TASK]["ansible.builtin.fail"]["msg"]).render(
        **{**host.context, "raiox_model_check": {"rc": 3, "stderr": "catalog not ready for raiox-v13: ..."}})
    assert "RAIOX_EMBEDDER=raiox-v13" in message and "catalog not ready for raiox-v13" in message
    assert "--limit api_prod,admin" in message
    # which hosts run what, from the inventory: the API hosts reindex, the admin host checks
    for name, reindexes in (("core-api-prod", True), ("core-api-stage", True), ("admin-panel", False)):
        inventory = inventory_values(name)
        values = {"raiox_migrate": inventory.get("raiox_migrate", True), "raiox_current": {"stat": {"exists": True}}}
        assert host.condition(_tasks("raiox")[REINDEX_TASK]["when"], **values) is reindexes
        assert host.condition(task["when"], **values) is not reindexes


def test_the_role_refuses_a_python_the_production_lock_was_not_checked_for():
    """deploy.sh installs requirements/prod.lock with the host's raiox_python: the role stops at a Python whose
    wheels `make lock` did not check (Ubuntu 22.04's 3.10), before anything is deployed."""
    defaults = yaml.safe_load((ROLES / "raiox" / "defaults" / "main.yml").read_text())
    makefile = (ROLES.parents[1] / "Makefile").read_text()  # ROLES is deploy/roles
    checked = re.search(r"(?m)^LOCK_WHEEL_PYTHONS := (.+)$", makefile)[1].split()
    assert defaults["raiox_python_versions"] == checked
    assert re.search(r"(?m)^LOCK_PYTHON := (.+)$", makefile)[1] in checked
    names = list(_tasks("raiox"))
    read, check = names.index("Read the version of the releases' Python"), \
        names.index("Check that the production lock installs on that Python")
    assert check == read + 1
    assert _tasks("raiox")[names[check]]["ansible.builtin.assert"]["that"] == \
        "raiox_python_found.stdout in raiox_python_versions"
