"""The nightly backup unit has a start timeout: a Type=oneshot unit has none by default, so a hung pg_dump or upload
never failed, its OnFailure= unit (raiox-pg-backup-failed.service) never ran and the timer could not start a later
night. The rendered unit must carry a finite TimeoutStartSec= shorter than a night, that systemd accepts."""

import subprocess

import pytest

from .rendering import defaults, inventory_groups, inventory_values, render
from .test_systemd import _settings, _units
from .tooling import require_tool

DAY_S = 24 * 3600
JITTER_S = 15 * 60  # raiox-pg-backup.timer's RandomizedDelaySec


def _seconds(span: str) -> float:
    """A systemd time span as systemd itself reads it (`systemd-analyze timespan`); fails on what it rejects."""
    analyze = require_tool("systemd-analyze", "Debian package systemd")
    result = subprocess.run([analyze, "timespan", span], capture_output=True, text=True)
    assert result.returncode == 0, f"systemd rejects the time span {span!r}: {result.stderr}"
    micro = next(line for line in result.stdout.splitlines() if line.strip().startswith("μs:"))
    value = int(micro.split(":", 1)[1].strip())
    assert value < 2**64 - 1, f"{span!r} is no timeout at all (infinity)"
    return value / 1e6


def _backup_unit(values: dict) -> dict[str, list[str]]:
    return _settings(render("pg_backup", "raiox-pg-backup.service.j2", {
        "postgres_databases": [], "vault_backup_spaces_access_key": "k", "vault_backup_spaces_secret_key": "s",
        **values}))


def test_the_backup_run_times_out_and_so_fails_into_its_on_failure_unit(tmp_path):
    _, units = _units(tmp_path)
    settings = _settings(units["raiox-pg-backup.service"])
    assert settings["Type"] == ["oneshot"]
    assert settings["OnFailure"] == ["raiox-pg-backup-failed.service"]
    assert settings.get("TimeoutStartSec") == [str(defaults("pg_backup")["pg_backup_timeout"])], \
        "a oneshot unit without TimeoutStartSec= never times out: a hung run is never reported"
    # TimeoutSec= would also set it; neither may switch it off
    assert "TimeoutSec" not in settings
    seconds = _seconds(settings["TimeoutStartSec"][0])
    assert 3600 <= seconds <= DAY_S - 2 * JITTER_S - 3600, "a hung run must end (and be reported) before the next night"


@pytest.mark.parametrize("span", ["90min", "2h 30min", "5h"])
def test_the_timeout_is_the_roles_setting(span):
    assert _backup_unit({"pg_backup_timeout": span})["TimeoutStartSec"] == [span]
    _seconds(span)


def test_every_db_host_of_the_inventory_gets_a_finite_timeout_under_a_night():
    groups, _ = inventory_groups()
    assert groups.get("db"), "no db host in the example inventory: the check is wrong"
    for host in groups["db"]:
        (span,) = _backup_unit(inventory_values(host))["TimeoutStartSec"]
        assert _seconds(span) <= DAY_S - 2 * JITTER_S - 3600, host


def test_a_unit_without_the_timeout_or_with_none_is_caught():
    """The checks above are not vacuous: 'infinity' (a oneshot's own default), 0 and a span systemd cannot read fail."""
    with pytest.raises(AssertionError):
        _seconds("infinity")
    with pytest.raises(AssertionError):
        _seconds("four hours")
    assert _seconds("0") == 0  # 0 also means no timeout to systemd: the range check above refuses it
    assert _seconds("4h") == 4 * 3600
