"""A server or worker started against a database it cannot use (not migrated, or migrated by another release) ends
with one line naming what to do, exit 1, before anything starts: not a traceback from inside its start-up."""

import uuid

import psycopg
import pytest
from sqlalchemy import make_url
from typer.testing import CliRunner

from raiox.cli import app


@pytest.fixture
def empty_database(database_url, configure):
    """A new, empty database on the test server; the app's settings point at it."""
    admin = make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    name = f"raiox_cli_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    configure(DATABASE_URL=url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", [["worker"], ["serve", "--port", "8799"], ["admin", "--port", "8799"]])
def test_a_database_not_migrated_yet_says_to_migrate_it(empty_database, command):
    result = run(*command)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().startswith("error: database error:") and "run `raiox db upgrade`" in result.stderr


def test_a_database_migrated_by_another_release_says_so(empty_database):
    assert run("db", "upgrade").exit_code == 0
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")  # a newer release's revision
    result = run("db", "upgrade")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Can't locate revision" in result.stderr and "migrated by another release of raiox" in result.stderr
