"""Helpers for tests that run `raiox` in a subprocess on the embedded PostgreSQL (pgserver) of a data dir."""

import os
import subprocess
import sys
from pathlib import Path

import psutil


def embedded_env(data_dir) -> dict:
    """The environment of a `raiox` subprocess on the embedded database under DATA_DIR (no RAIOX_* of the tests')."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAIOX_")}
    return dict(env, PYTHONPATH=os.pathsep.join(sys.path), RAIOX_DATA_DIR=str(data_dir))


def migrated_data_dir(data_dir: Path) -> Path:
    """DATA_DIR made a data dir whose embedded database `raiox db upgrade` migrated, its PostgreSQL stopped again
    (the `migrated_data_dir` fixture builds one a session, `copy_data_dir` gives each test its own)."""
    done = subprocess.run([sys.executable, "-m", "raiox", "db", "upgrade"], env=embedded_env(data_dir),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert postgres_processes((data_dir / "pg").resolve()) == [], "raiox db upgrade left its PostgreSQL running"
    return data_dir


def copy_data_dir(template: Path, data_dir: Path) -> Path:
    """DATA_DIR (created if need be) given a copy of TEMPLATE's contents: a fresh initdb and every migration cost
    each `raiox` start-up about 1.5 s. `cp -a`: the owners too (pgserver's own user when the tests run as root)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", f"{template}/.", str(data_dir)], check=True)
    return data_dir


def postgres_processes(pgdata) -> list[psutil.Process]:
    """Every postmaster serving PGDATA (pg_ctl starts it as `postgres -D PGDATA ...`)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found
