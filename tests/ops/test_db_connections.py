"""PostgreSQL's max_connections (role postgres) holds every connection the app hosts can open at once: each process's
pools full (SQLAlchemy's pool and overflow, the webhook pool, procrastinate's pool, a worker's LISTEN connection),
times the processes of every unit of every host, plus a migration per host that migrates. Rendered from the example
inventory with the role defaults, as Ansible would write raiox.env, the units and 50-raiox.conf; read back through
the app's own Settings (a setting the env file lacks counts at the app's default). docs/operations.md, "Database
connections", has the same arithmetic."""

import re
import shlex

import pytest

from .rendering import context, inventory_groups, inventory_values, render

SUPERUSER_RESERVED = 3  # PostgreSQL's superuser_reserved_connections default: the nightly pg_dump, psql as postgres
# Operators' `raiox ...` commands and psql sessions as the app role, and each process's start-up check
# (`database_ready`, one short connection): room kept free beyond the pools
HEADROOM = 10


def _settings(env_text: str, tmp_path, monkeypatch):
    """The app's Settings as the units would read this env file (nothing else of the test's environment)."""
    import os

    from raiox.kit.settings import Settings

    for name in [n for n in os.environ if n.startswith("RAIOX_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "raiox.env"
    path.write_text(env_text)
    return Settings(_env_file=path)


def _serve_default_workers() -> int:
    """`raiox serve --workers`, when the unit does not say."""
    import inspect

    from raiox import cli

    return inspect.signature(cli.serve).parameters["workers"].default.default


def _unit_connections(command: str, settings) -> tuple[int, int]:
    """(processes, connections each) of a raiox unit's command line."""
    args = shlex.split(command)
    sqlalchemy = settings.db_pool_size + settings.db_max_overflow  # raiox.kit.db.create_engine
    webhook = settings.db_pool_size  # raiox.intake.fastpool
    jobs = settings.db_job_pool_size  # raiox.kit.jobs (procrastinate)
    listen = 1  # a procrastinate worker's LISTEN connection, outside its pool
    if args[0] == "serve":
        processes = int(args[args.index("--workers") + 1]) if "--workers" in args else _serve_default_workers()
        return processes, sqlalchemy + webhook + jobs + (0 if "--no-worker" in args else listen)
    if args[0] == "worker":
        return 1, sqlalchemy + jobs + listen
    if args[0] == "admin":  # the panel alone: no webhook, no job queue opened
        return 1, sqlalchemy
    raise AssertionError(f"unknown unit command {command!r}: count its connections here")


def worst_case(tmp_path, monkeypatch, **overrides) -> tuple[int, list[str]]:
    groups, _ = inventory_groups()
    total, lines = 0, []
    for host in groups["app"]:
        values = {**inventory_values(host), **overrides}
        ctx = context("raiox", values)
        settings = _settings(render("raiox", "raiox.env.j2", values), tmp_path, monkeypatch)
        for unit in ctx["raiox_services"]:
            processes, each = _unit_connections(ctx["raiox_units"][unit]["command"], settings)
            total += processes * each
            lines.append(f"{host} {unit}: {processes} x {each}")
        if ctx["raiox_migrate"]:  # `raiox db upgrade` during a deploy, while the services still run
            total += 1
            lines.append(f"{host} migration: 1")
    return total, lines


def max_connections(**overrides) -> tuple[int, int]:
    groups, _ = inventory_groups()
    values = {**inventory_values(groups["db"][0]), "ansible_memtotal_mb": 1967, **overrides}
    conf = render("postgres", "raiox.conf.j2", values)
    settings = dict(re.findall(r"^(\w+) = '?([^'\n]*)'?$", conf, flags=re.M))
    return int(settings["max_connections"]), int(settings.get("superuser_reserved_connections", SUPERUSER_RESERVED))


def test_the_app_hosts_worst_case_fits_under_max_connections(tmp_path, monkeypatch):
    total, lines = worst_case(tmp_path, monkeypatch)
    limit, reserved = max_connections()
    assert total + reserved + HEADROOM <= limit, (
        f"{total} app connections + {reserved} superuser + {HEADROOM} headroom > max_connections {limit}:\n"
        + "\n".join(lines))


def test_the_pools_are_bounded_by_the_inventory_not_the_apps_defaults(tmp_path, monkeypatch):
    """Every app host's raiox.env sets the three pool sizes (the app's defaults, 20/20/10, are for one machine)."""
    groups, _ = inventory_groups()
    for host in groups["app"]:
        env = render("raiox", "raiox.env.j2", inventory_values(host))
        settings = _settings(env, tmp_path, monkeypatch)
        assert (settings.db_pool_size, settings.db_max_overflow, settings.db_job_pool_size) == (5, 5, 4), host
    total, lines = worst_case(tmp_path, monkeypatch)
    assert total == 118, lines  # the runbook's figure; update docs/operations.md with it


@pytest.mark.parametrize("overrides", [{"raiox_api_workers": 4}, {"raiox_db_max_overflow": 20},
                                       {"raiox_env": {}}])  # more processes; more overflow; the app's own defaults
def test_a_change_that_outgrows_max_connections_is_caught(tmp_path, monkeypatch, overrides):
    total, _ = worst_case(tmp_path, monkeypatch, **overrides)
    limit, reserved = max_connections()
    assert total + reserved + HEADROOM > limit

