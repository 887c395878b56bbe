"""`.env.example` documents every setting, and copying it changes nothing but the placeholders and examples.

A stale value there is silent: an operator who copies the file keeps whatever it says (it once pinned an older
embedding model after the default had moved on)."""

import re
from pathlib import Path

from raiox.kit.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
# Values the example sets on purpose to something other than the default: a production-shaped example.
EXAMPLES = {"s3_region", "smtp_from", "public_url"}


def _example_names() -> set[str]:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    return {m[1] for line in lines if (m := re.match(r"^RAIOX_([A-Z0-9_]+)=", line))}


def test_every_setting_is_documented_and_nothing_else():
    fields = {name.upper() for name in Settings.model_fields}
    assert _example_names() == fields


def test_copying_the_example_keeps_every_default(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(f"RAIOX_{name.upper()}", raising=False)
    copied, default = Settings(_env_file=EXAMPLE), Settings(_env_file=None)
    changed = {name for name in Settings.model_fields if getattr(copied, name) != getattr(default, name)}
    placeholders = {name for name in changed if re.fullmatch(r"<[a-z-]+>", _raw(copied, name))}
    assert changed - placeholders == EXAMPLES


def _raw(settings: Settings, name: str) -> str:
    value = getattr(settings, name)
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def test_a_current_folder_that_cannot_be_read_is_a_folder_without_env(tmp_path, monkeypatch):
    """`sudo -u raiox raiox ...` from root's home (mode 0700): looking for ./.env raised PermissionError and stopped
    every command of the runbook; such a folder has no .env for that user."""
    from pathlib import Path

    from raiox.kit.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAIOX_TOP_K", raising=False)
    (tmp_path / ".env").write_text("RAIOX_TOP_K=7\n")
    get_settings.cache_clear()
    assert get_settings().top_k == 7  # a readable .env is read
    real = Path.is_file

    def denied(self):
        if str(self) == ".env":
            raise PermissionError(13, "Permission denied", ".env")
        return real(self)

    monkeypatch.setattr(Path, "is_file", denied)
    get_settings.cache_clear()
    assert get_settings().top_k != 7  # nothing read, nothing raised
    get_settings.cache_clear()


def test_a_time_zone_setting_that_names_no_zone_is_refused_with_its_variable(monkeypatch):
    """RAIOX_CLIENT_TIMEZONE / RAIOX_JOTFORM_TIMEZONE / RAIOX_ADMIN_TIMEZONE: a typo would date every e-mail or
    submission wrongly, silently, or break the panel's queue and audit filters; start-up names the variable instead."""
    import pytest

    from raiox.kit.errors import ConfigError
    from raiox.kit.settings import get_settings

    for name in ("CLIENT_TIMEZONE", "JOTFORM_TIMEZONE", "ADMIN_TIMEZONE"):
        monkeypatch.setenv(f"RAIOX_{name}", "America/Sao Paulo")
        get_settings.cache_clear()
        with pytest.raises(ConfigError, match=f"RAIOX_{name}"):
            get_settings()
        monkeypatch.setenv(f"RAIOX_{name}", "America/Manaus")
        get_settings.cache_clear()
        assert getattr(get_settings(), name.lower()) == "America/Manaus"
    get_settings.cache_clear()
