"""Debian's Chromium for the browser tests (Playwright, headless): where it is, and how it is launched."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("RAIOX_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]


def chromium() -> str:
    """The executable; the test is skipped where it is missing (a failure on CI: scripts/system-deps.sh installs it)."""
    if Path(CHROMIUM).exists() or shutil.which(CHROMIUM):
        return CHROMIUM
    message = f"Chromium not found at {CHROMIUM}: run scripts/system-deps.sh (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
