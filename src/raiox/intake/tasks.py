"""Intake background jobs (procrastinate): processing a case, verifying and reconciling submissions."""

from raiox.kit.jobs import app  # noqa: F401  (tasks are registered below)
