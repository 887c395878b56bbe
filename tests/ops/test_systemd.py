"""systemd units rendered from the role templates: `systemd-analyze verify` accepts them, and the
application units carry the restart policy and hardening the plan asks for."""

import subprocess

import pytest

from .rendering import ROLES, context, render, write
from .tooling import require_tool

HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": "",
}


BACKUP_UNITS = ("raiox-pg-backup.service", "raiox-pg-backup-failed.service", "raiox-pg-backup.timer")


def _units(tmp_path):
    """Render every unit with paths under tmp_path, so verify finds the executables."""
    root, etc, data = tmp_path / "srv", tmp_path / "etc", tmp_path / "var" / "raiox"
    exe = write(root / "current" / "venv" / "bin" / "raiox", "#!/bin/sh\n")
    exe.chmod(0o755)
    write(etc / "raiox.env", "RAIOX_ENV=production\n")
    data.mkdir(parents=True)
    units = {}
    values = {"raiox_root": str(root), "raiox_etc": str(etc), "raiox_data_dir": str(data)}
    specs = context("raiox", values)["raiox_units"]
    for name, spec in specs.items():
        units[f"{name}.service"] = render("raiox", "raiox-unit.service.j2", {
            **values, "unit_name": name, "unit_description": spec["description"],
            "unit_command": spec["command"], "unit_stop_timeout": spec["stop_timeout"],
        })
    for script in ("pg-backup.sh", "backup-status.sh"):
        write(tmp_path / "lib" / script, "#!/bin/sh\n").chmod(0o755)
    for name in BACKUP_UNITS:
        text = render("pg_backup", f"{name}.j2", {"postgres_databases": [], "postgres_version": 16,
                                                  "vault_backup_spaces_access_key": "k",
                                                  "vault_backup_spaces_secret_key": "s"})
        units[name] = text.replace("/usr/local/lib/raiox/", f"{tmp_path / 'lib'}/")
    folder = tmp_path / "units"
    for name, text in units.items():
        write(folder / name, text)
    return folder, units


def _settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    analyze = require_tool("systemd-analyze", "Debian package systemd")
    folder, units = _units(tmp_path)
    paths = [str(folder / name) for name in sorted(units)]
    result = subprocess.run([analyze, "verify", "--man=no", *paths], capture_output=True, text=True,
                            env={"SYSTEMD_LOG_LEVEL": "notice", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    # verify also reports on the host's own units it pulls in; only ours matter
    ours = [line for line in (result.stdout + result.stderr).splitlines() if any(n in line for n in units)]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def test_verify_rejects_a_broken_unit(tmp_path):
    analyze = require_tool("systemd-analyze", "Debian package systemd")
    folder, units = _units(tmp_path)
    broken = folder / "raiox-api.service"
    broken.write_text(broken.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))  # a typo
    result = subprocess.run([analyze, "verify", "--man=no", str(broken)], capture_output=True, text=True)
    assert "Unknown key 'NoNewPrivilege'" in result.stderr


def test_backup_unit_is_hardened_without_touching_the_servers_ipc(tmp_path):
    _, units = _units(tmp_path)
    settings = _settings(units["raiox-pg-backup.service"])
    assert settings["User"] == ["postgres"]
    for key, value in {**HARDENING, "UMask": "0077", "RestrictNamespaces": "yes",
                       "SystemCallFilter": "@system-service", "ProtectKernelLogs": "yes"}.items():
        assert settings.get(key) == [value], key
    # RemoveIPC=yes would delete the running PostgreSQL server's shared memory (same user) on every run
    assert "RemoveIPC" not in settings


@pytest.mark.parametrize("unit", ["raiox-api.service", "raiox-worker.service", "raiox-admin.service"])
def test_app_units_are_hardened_and_restart(tmp_path, unit):
    _, units = _units(tmp_path)
    settings = _settings(units[unit])
    assert settings["User"] == ["raiox"] and settings["Group"] == ["raiox"]
    assert settings["Restart"] == ["always"]
    assert settings["EnvironmentFile"][0].endswith("/raiox.env")
    assert settings["ExecStart"][0].split()[0].endswith("/current/venv/bin/raiox")
    for key, value in HARDENING.items():
        assert settings.get(key) == [value], f"{unit}: {key}"
    if unit == "raiox-api.service":
        assert "serve --host 127.0.0.1 --port 8000 --no-worker" in settings["ExecStart"][0]
    if unit == "raiox-worker.service":
        assert settings["ExecStart"][0].split()[1] == "worker"


def test_a_failed_backup_starts_the_unit_that_records_and_reports_it(tmp_path):
    """No alert used to follow a failed backup: the unit now names an OnFailure= unit (installed by the role), which
    records the failure where monitoring reads it; a run that succeeded records that (ExecStartPost, which runs only
    after ExecStart succeeded, and whose own failure does not fail the backup)."""
    _, units = _units(tmp_path)
    backup = _settings(units["raiox-pg-backup.service"])
    failed = _settings(units["raiox-pg-backup-failed.service"])
    assert backup["OnFailure"] == ["raiox-pg-backup-failed.service"]
    assert backup["ExecStartPost"] == [f"-{tmp_path}/lib/backup-status.sh ok"]
    assert failed["ExecStart"] == [f"{tmp_path}/lib/backup-status.sh failed"]
    for settings in (backup, failed):
        assert settings["StateDirectory"] == ["raiox-backup"] and settings["StateDirectoryMode"] == ["0755"]
    assert failed["User"] == ["postgres"] and "RemoveIPC" not in failed
    for key, value in HARDENING.items():
        assert failed.get(key) == [value], key
    installed = (ROLES / "pg_backup" / "tasks" / "main.yml").read_text()
    assert "raiox-pg-backup-failed.service" in installed and "backup-status.sh" in installed
