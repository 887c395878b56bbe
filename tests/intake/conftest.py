"""Intake tests: shared fixtures (fake Jotform, settings, catalog, worker)."""

from fakes.fixtures import *  # noqa: F403
