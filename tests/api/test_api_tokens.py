"""`raiox tokens create|list|revoke`: the token is printed once, alone on the last line; stored hashed."""

import psycopg
import pytest
from typer.testing import CliRunner

from raiox.cli import app


def test_token_lifecycle(database_url, committed):
    runner = CliRunner()
    created = runner.invoke(app, ["tokens", "create", "ci-bot"], catch_exceptions=False)
    assert created.exit_code == 0
    token = created.output.rstrip("\n").splitlines()[-1]
    assert token.startswith("rx_") and " " not in token and len(token) > 40
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT name, token_hash, prefix FROM api_tokens").fetchall()
    assert len(stored) == 1 and stored[0][0] == "ci-bot" and token not in stored[0][1]

    listing = runner.invoke(app, ["tokens", "list"], catch_exceptions=False).output
    assert "ci-bot" in listing and stored[0][2] in listing and token not in listing

    assert runner.invoke(app, ["tokens", "revoke", "ci-bot"]).exit_code == 0
    assert runner.invoke(app, ["tokens", "revoke", "ci-bot"]).exit_code == 1  # nothing live left
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT revoked_at IS NOT NULL FROM api_tokens").fetchall() == [(True,)]


def _stored(database_url) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT name FROM api_tokens").fetchall()


def test_a_blank_or_too_long_token_name_is_refused(database_url, committed):
    runner = CliRunner()
    for name, why in (("", "cannot be blank"), ("   ", "cannot be blank"), ("x" * 300, "at most 120 characters")):
        result = runner.invoke(app, ["tokens", "create", name], catch_exceptions=False)
        assert result.exit_code == 2 and why in result.stderr and result.stdout == "", result.output
        assert "Traceback" not in result.output
    assert _stored(database_url) == []
    assert runner.invoke(app, ["tokens", "create", "  ops  "], catch_exceptions=False).exit_code == 0
    assert _stored(database_url) == [("ops",)]


def test_a_database_error_never_prints_the_new_tokens_hash(database_url, committed, monkeypatch):
    """Were a name to reach the database unchecked, the error shown is the driver's one line, not the statement
    and its parameters (the token's hash and prefix)."""
    from raiox.kit import auth

    monkeypatch.setattr(auth, "token_name", lambda name: name)
    result = CliRunner().invoke(app, ["tokens", "create", "x" * 300], catch_exceptions=False)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip() == "error: database error: value too long for type character varying(120)"
    assert _stored(database_url) == []


async def test_the_engine_hides_statement_parameters_from_errors_and_logs(session):
    from sqlalchemy import insert
    from sqlalchemy.exc import DataError

    from raiox.models import ApiToken

    with pytest.raises(DataError) as caught:
        await session.execute(insert(ApiToken).values(name="x" * 300, token_hash="secret-hash", prefix="rx_secret"))
    assert "secret-hash" not in str(caught.value) and "parameters hidden" in str(caught.value)
