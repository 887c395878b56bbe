"""Intake fixtures: the fake Jotform server and settings overrides (env + settings cache)."""

import os

import pytest

from fakes.jotform import FORM_ID, FakeJotform




@pytest.fixture
def settings_env(database_url):
    """set(**env): override RAIOX_* settings for one test (restored afterwards)."""
    from raiox.kit import settings

    saved: dict[str, str | None] = {}

    def _set(**values: str) -> None:
        for key, value in values.items():
            name = "RAIOX_" + key.upper()
            saved.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        settings.get_settings.cache_clear()

    yield _set
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    settings.get_settings.cache_clear()


@pytest.fixture
def jotform(settings_env):
    """A running fake Jotform (API + upload host); settings point at it."""
    with FakeJotform(api_key="test-jotform-key") as fake:
        settings_env(jotform_api_url=fake.url, jotform_upload_hosts=fake.url, jotform_form_id=FORM_ID,
                     retry_backoff_s="0.01", download_retries="2", jotform_retries="2")
        yield fake
