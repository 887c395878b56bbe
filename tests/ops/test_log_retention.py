"""LGPD minimisation on the hosts: the journal (the panel's `raiox.admin.login_failed ip=... email=...` lines that
fail2ban reads, every app line), nginx's logs and PostgreSQL's (log_connections: every client's address) keep client
addresses no longer than the app keeps them in its audit entries (RAIOX_AUDIT_ADDRESS_RETENTION_DAYS). Before, the
journal's retention was set nowhere (journald's default: until 10% of the disk is used, months or years).
"""

import configparser
import re
import subprocess
from pathlib import Path

import yaml

from raiox.kit.settings import Settings

from .rendering import ROLES, context, render, write
from .tooling import require_tool

DAY_S = 86400


def _journald(values: dict | None = None) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str
    parser.read_string(render("common", "journald-retention.conf.j2", values or {}))
    return parser


def _timespan_s(value: str) -> int:
    """systemd's own reading of a time span (systemd-analyze timespan): what journald makes of the value."""
    analyze = require_tool("systemd-analyze", "Debian package systemd")
    out = subprocess.run([analyze, "timespan", value], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"μs: (\d+)", out)[1]) // 1_000_000


def test_the_journal_keeps_entries_as_long_as_the_app_keeps_addresses():
    app_default = Settings.model_fields["audit_address_retention_days"].default
    defaults = yaml.safe_load((ROLES / "common" / "defaults" / "main.yml").read_text())
    assert defaults["common_log_retention_days"] == app_default == 90
    journal = _journald()["Journal"]
    assert _timespan_s(journal["MaxRetentionSec"]) == 90 * DAY_S
    # whole files are deleted: a file a day, or entries would outlive the retention by up to a month (the default)
    assert _timespan_s(journal["MaxFileSec"]) == DAY_S
    assert journal["SystemMaxUse"] == "1G" and journal["Storage"] == "persistent"
    shorter = _journald({"common_log_retention_days": 30})["Journal"]
    assert _timespan_s(shorter["MaxRetentionSec"]) == 30 * DAY_S


def test_the_journald_drop_in_uses_keys_journald_knows(tmp_path):
    """Every key is one of journald.conf's (the installed file lists each, commented out with its default): a typo
    would be ignored by journald with a warning, and the journal kept forever."""
    installed = Path("/etc/systemd/journald.conf")
    if not installed.exists():
        require_tool("journald.conf", "Debian package systemd")  # not a tool: skips, or fails in CI
    known = set(re.findall(r"^#?([A-Za-z]+)=", installed.read_text(), flags=re.M))
    assert {"MaxRetentionSec", "MaxFileSec", "SystemMaxUse", "Storage"} <= known
    parser = _journald()
    assert parser.sections() == ["Journal"]
    assert set(parser["Journal"]) <= known, set(parser["Journal"]) - known
    # and systemd reads the drop-in folder as the role installs it
    analyze = require_tool("systemd-analyze", "Debian package systemd")
    root = tmp_path / "root"
    drop_in = render("common", "journald-retention.conf.j2", {})
    write(root / "etc/systemd/journald.conf.d/50-raiox-retention.conf", drop_in)
    shown = subprocess.run([analyze, "cat-config", f"--root={root}", "systemd/journald.conf"],
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "MaxRetentionSec=90day" in shown.stdout and "50-raiox-retention.conf" in shown.stdout


def test_the_common_role_installs_the_drop_in_and_restarts_journald():
    tasks = {t["name"]: t for t in yaml.safe_load((ROLES / "common" / "tasks" / "main.yml").read_text())}
    (task,) = [t for t in tasks.values() if (t.get("ansible.builtin.template") or {}).get("src")
               == "journald-retention.conf.j2"]
    assert task["ansible.builtin.template"]["dest"] == "/etc/systemd/journald.conf.d/50-raiox-retention.conf"
    assert task["notify"] == "Restart journald"


def _logrotate(values: dict | None = None, role: str = "nginx", template: str = "logrotate-nginx.j2") -> dict[str, str]:
    text = render(role, template, values or {})
    stanza = re.search(r"^(\S+) \{\n(.*?)^\}", text, flags=re.M | re.S)
    assert stanza, text
    directives = {}
    for line in stanza[2].splitlines():
        words = line.split()
        if words and words[0] in ("daily", "weekly", "monthly", "rotate", "maxage", "copytruncate"):
            directives[words[0]] = words[1] if len(words) > 1 else ""
    return {"path": stanza[1], **directives}


def test_nginx_logs_are_kept_no_longer_than_the_retention():
    ctx = context("nginx", {})
    assert int(ctx["nginx_log_retention_days"]) == 90  # the common role's default when it is not set
    rotate = _logrotate()
    assert rotate["path"] == "/var/log/nginx/*.log" and "daily" in rotate
    assert not {"weekly", "monthly"} & set(rotate)
    assert rotate["rotate"] == rotate["maxage"] == "90"
    # both logs of the site are the ones it rotates
    for log in (ctx["nginx_access_log"], ctx["nginx_error_log"]):
        assert re.fullmatch(r"/var/log/nginx/[^/]+\.log", log), log
    # the inventory's retention, set once for both roles
    assert _logrotate({"common_log_retention_days": 30})["maxage"] == "30"
    tasks = yaml.safe_load((ROLES / "nginx" / "tasks" / "main.yml").read_text())
    assert any((t.get("ansible.builtin.template") or {}).get("dest") == "/etc/logrotate.d/nginx" for t in tasks)


def test_logrotate_accepts_the_nginx_file(tmp_path):
    logrotate = require_tool("logrotate", "Debian package logrotate")
    conf = write(tmp_path / "nginx", render("nginx", "logrotate-nginx.j2", {}))
    state = write(tmp_path / "state", "logrotate state -- version 2\n")
    result = subprocess.run([logrotate, "--debug", "--state", str(state), str(conf)], capture_output=True, text=True)
    errors = [line for line in result.stderr.splitlines() if line.lower().startswith("error")]
    assert result.returncode == 0 and not errors, result.stderr
    assert "rotating pattern: /var/log/nginx/*.log" in result.stderr.lower(), result.stderr
    assert "after 1 days (90 rotations)" in result.stderr, result.stderr


# the postgres role's defaults need the host's facts and the vault to resolve
POSTGRES = {"private_ip": "10.116.0.2", "ansible_memtotal_mb": 1967, "vault_postgres_passwords": {}, "groups": {}}


def test_postgresql_logs_are_kept_no_longer_than_the_retention():
    """PostgreSQL logs every connection with the client's address (log_connections, %h in log_line_prefix) to
    /var/log/postgresql, which Debian's postgresql-common logrotate file kept weekly, 10 files: not the hosts'
    retention. The postgres role replaces that file: daily, as many files as days, maxage."""
    conf = render("postgres", "raiox.conf.j2", POSTGRES)
    assert re.search(r"^log_connections = on$", conf, flags=re.M) and "from %h" in conf  # what makes it personal data
    ctx = context("postgres", POSTGRES)
    assert int(ctx["postgres_log_retention_days"]) == 90  # the common role's default when it is not set
    rotate = _logrotate(POSTGRES, "postgres", "logrotate-postgresql.j2")
    assert rotate["path"] == "/var/log/postgresql/*.log" and "daily" in rotate
    assert not {"weekly", "monthly"} & set(rotate)
    assert rotate["rotate"] == rotate["maxage"] == "90"
    assert "copytruncate" in rotate  # the server keeps writing the file pg_ctlcluster opened for it
    shorter = _logrotate({**POSTGRES, "common_log_retention_days": 30}, "postgres", "logrotate-postgresql.j2")
    assert shorter["rotate"] == shorter["maxage"] == "30"
    tasks = yaml.safe_load((ROLES / "postgres" / "tasks" / "main.yml").read_text())
    (task,) = [t for t in tasks if (t.get("ansible.builtin.template") or {}).get("src") == "logrotate-postgresql.j2"]
    # the package's own file (the same name replaces it; another name would leave both rotating the same logs)
    assert task["ansible.builtin.template"]["dest"] == "/etc/logrotate.d/postgresql-common"
    installed = Path("/etc/logrotate.d/postgresql-common")
    if installed.exists():
        assert "/var/log/postgresql/*.log" in installed.read_text()


def test_logrotate_accepts_the_postgresql_file(tmp_path):
    logrotate = require_tool("logrotate", "Debian package logrotate")
    conf = write(tmp_path / "postgresql-common", render("postgres", "logrotate-postgresql.j2", POSTGRES))
    state = write(tmp_path / "state", "logrotate state -- version 2\n")
    result = subprocess.run([logrotate, "--debug", "--state", str(state), str(conf)], capture_output=True, text=True)
    errors = [line for line in result.stderr.splitlines() if line.lower().startswith("error")]
    assert result.returncode == 0 and not errors, result.stderr
    assert "rotating pattern: /var/log/postgresql/*.log" in result.stderr.lower(), result.stderr
    assert "after 1 days (90 rotations)" in result.stderr, result.stderr
