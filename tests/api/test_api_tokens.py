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
        audit = conn.execute("SELECT actor, action, target, details FROM audit_log ORDER BY id").fetchall()
    assert audit == [  # the second revoke changed nothing: no entry; never the token itself
        ("cli:raiox tokens create", "token.create", "ci-bot", {"scopes": ["all"], "prefix": stored[0][2]}),
        ("cli:raiox tokens revoke", "token.revoke", "ci-bot", {"revoked": 1})]


def _live(database_url) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT name FROM api_tokens WHERE revoked_at IS NULL ORDER BY name").fetchall()


def test_revoke_ignores_the_blanks_around_a_pasted_name_or_prefix(database_url, committed):
    runner = CliRunner()
    for name in ("by-name", "by-prefix", "kept"):
        assert runner.invoke(app, ["tokens", "create", name], catch_exceptions=False).exit_code == 0
    with psycopg.connect(database_url) as conn:
        prefix = conn.execute("SELECT prefix FROM api_tokens WHERE name = 'by-prefix'").fetchone()[0]
    for pasted in ("  by-name\n", f"{prefix} \r\n"):
        result = runner.invoke(app, ["tokens", "revoke", pasted], catch_exceptions=False)
        assert result.exit_code == 0 and "revoked 1 token(s)" in result.stdout, result.output
    assert _live(database_url) == [("kept",)]
    blank = runner.invoke(app, ["tokens", "revoke", " \n"], catch_exceptions=False)
    assert blank.exit_code == 2 and "cannot be blank" in blank.stderr
    assert _live(database_url) == [("kept",)]


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
    from raiox.kit import tokens

    monkeypatch.setattr(tokens, "token_name", lambda name: name)
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


def test_a_token_is_created_with_the_scopes_asked_and_an_unknown_scope_is_refused(database_url, committed):
    runner = CliRunner()
    created = runner.invoke(app, ["tokens", "create", "lab", "--scope", "identify", "--scope", "Metrics"],
                            catch_exceptions=False)
    assert created.exit_code == 0 and "with scopes identify, metrics" in created.output
    assert runner.invoke(app, ["tokens", "create", "ops"], catch_exceptions=False).exit_code == 0
    bad = runner.invoke(app, ["tokens", "create", "x", "--scope", "everything"], catch_exceptions=False)
    assert bad.exit_code == 2 and "unknown token scope 'everything'" in bad.stderr
    blank = runner.invoke(app, ["tokens", "create", "x", "--scope", " "], catch_exceptions=False)  # `--scope "$UNSET"`
    assert blank.exit_code == 2 and "cannot be blank" in blank.stderr
    twice = runner.invoke(app, ["tokens", "create", "ops"], catch_exceptions=False)  # revoking "ops" would take both
    assert twice.exit_code == 2 and "named 'ops' already" in twice.stderr
    with psycopg.connect(database_url) as conn:
        rows = dict(conn.execute("SELECT name, scopes FROM api_tokens").fetchall())
    assert rows == {"lab": ["identify", "metrics"], "ops": ["all"]}
    listing = runner.invoke(app, ["tokens", "list"], catch_exceptions=False).output
    assert any(line.count("lab") == 1 and "identify, metrics" in line for line in listing.splitlines()), listing


def test_a_piped_token_list_prints_each_token_whole_on_one_line(database_url, committed):
    """CliRunner's output is not a terminal, as a pipe: Rich would lay the table out in 80 columns, folding or
    cutting a long name. Piped, each row is one line, every value whole, its brackets kept (not read as markup)."""
    runner = CliRunner()
    name = "integração [prod] " + "n" * 100
    created = runner.invoke(app, ["tokens", "create", name, "--scope", "identify", "--scope", "metrics"],
                            catch_exceptions=False)
    assert created.exit_code == 0, created.output
    with psycopg.connect(database_url) as conn:
        prefix = conn.execute("SELECT prefix FROM api_tokens").fetchone()[0]
    listing = runner.invoke(app, ["tokens", "list"], catch_exceptions=False)
    assert listing.exit_code == 0
    rows = [line for line in listing.stdout.splitlines() if prefix in line]
    assert len(rows) == 1 and name in rows[0] and "identify, metrics" in rows[0], listing.stdout
    assert max(len(line) for line in listing.stdout.splitlines()) > 120  # wider than the 80 columns of a pipe


async def test_each_route_needs_its_scope(client, session):
    """A token may do only what its scopes say (403 naming the scope it lacks); `all` may do everything; a panel
    session is not a token and keeps its role's rights."""
    from api_helpers import add_case_and_system

    from raiox.kit.tokens import create_token

    case_id = await add_case_and_system(session)
    tokens = {s: {"Authorization": f"Bearer {await create_token(session, s, [s])}"}
              for s in ("identify", "cases", "review", "metrics")}
    tokens["all"] = {"Authorization": f"Bearer {await create_token(session, 'everything')}"}
    calls = {
        "identify": ("GET", "/implants", None),
        "cases": ("GET", f"/cases/{case_id}", None),
        "metrics": ("GET", "/metrics", None),
        "review": ("POST", f"/cases/{case_id}/reject", {"message": "Envie uma radiografia mais nítida."}),
    }
    for needed, (method, path, body) in calls.items():
        for scope, auth in tokens.items():
            if scope in (needed, "all"):
                continue
            refused = await client.request(method, path, json=body, headers=auth)
            assert refused.status_code == 403, (needed, scope, refused.text)
            assert refused.json()["error"] == "forbidden" and f"needs scope {needed!r}" in refused.json()["detail"]
        allowed = await client.request(method, path, json=body, headers=tokens[needed])
        assert allowed.status_code in (200, 204), (needed, allowed.text)
        assert (await client.request(method, path, json=body, headers=tokens["all"])).status_code in (200, 204)
    # a large upload to /identify with a token without the scope is refused before its body is read
    upload = await client.post("/identify", files={"image": ("x.png", b"\x89PNG" + b"0" * 1000)},
                               headers=tokens["cases"])
    assert upload.status_code == 403 and "needs scope 'identify'" in upload.json()["detail"]
