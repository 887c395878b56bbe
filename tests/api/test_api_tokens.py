"""`raiox tokens create|list|revoke`: the token is printed once, alone on the last line; stored hashed."""

import psycopg
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
