"""Shared helpers for the ops tests: locating external tools, failing loudly in CI."""

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def require_tool(name: str, hint: str) -> str:
    """Path of an external tool. In CI (env CI set) a missing tool fails the test; elsewhere it skips."""
    path = shutil.which(name) or shutil.which(name, path=str(VENV_BIN))
    if path:
        return path
    message = f"{name} is not installed ({hint})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must have it; see scripts/system-deps.sh and the `ops` extra")
    pytest.skip(message)
