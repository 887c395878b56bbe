"""Helpers for tests that run `raiox` in a subprocess on the embedded PostgreSQL (pgserver) of a data dir."""

import os
import sys

import psutil


def embedded_env(data_dir) -> dict:
    """The environment of a `raiox` subprocess on the embedded database under DATA_DIR (no RAIOX_* of the tests')."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAIOX_")}
    return dict(env, PYTHONPATH=os.pathsep.join(sys.path), RAIOX_DATA_DIR=str(data_dir))


def postgres_processes(pgdata) -> list[psutil.Process]:
    """Every postmaster serving PGDATA (pg_ctl starts it as `postgres -D PGDATA ...`)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found
