"""`raiox users add`: what it refuses before anything is stored (CliRunner; the database is never reached)."""

import pytest
from typer.testing import CliRunner

from raiox.cli import app


@pytest.fixture
def added(monkeypatch) -> list[tuple[str, str, str]]:
    """The users `raiox users add` stores (its database step replaced by a list)."""
    from raiox.review import cli as users_cli

    stored: list[tuple[str, str, str]] = []

    async def store(email: str, role: str, password: str) -> str:
        stored.append((email, role, password))
        return "created"

    monkeypatch.setattr(users_cli, "_add", store)
    return stored


def _add(*args: str, stdin: str):
    return CliRunner().invoke(app, ["users", "add", *args, "--password-stdin"], input=stdin, catch_exceptions=False)


@pytest.mark.parametrize("email", ["ops@", "@example.com", "ops", "ops@example", "o ps@example.com",
                                   "ops@@example.com", "a@b.c" + "c" * 320])
def test_an_email_without_an_address_form_is_refused(added, email):
    result = _add(email, stdin="a long enough password\n")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("EMAIL must be an e-mail address such as name@example.com")
    assert len(result.stderr.strip().splitlines()) == 1 and added == []


@pytest.mark.parametrize("password", [" a long enough password", "a long enough password ", "a long enough password\t",
                                      "\ta long enough password"])
def test_a_password_with_blanks_around_it_is_refused_as_a_paste_accident(added, password):
    result = _add("ops@example.com", stdin=password + "\n")
    assert result.exit_code == 2, result.output
    assert "the password starts or ends with a blank" in result.stderr and added == []


def test_a_valid_address_and_password_are_stored_and_the_prompt_is_checked_too(added):
    ok = _add("  Ops@Example.com ", "--role", "admin", stdin="a long enough password\r\n")
    assert ok.exit_code == 0, ok.output
    assert ok.stdout == "user ops@example.com (admin) created\n" and ok.stderr == ""  # the result on stdout
    assert added == [("ops@example.com", "admin", "a long enough password")]  # inner blanks kept, line end not
    prompted = CliRunner().invoke(app, ["users", "add", "rev@example.com"], catch_exceptions=False,
                                  input="a long enough password \na long enough password \n")
    assert prompted.exit_code == 2 and "starts or ends with a blank" in prompted.stderr
    assert len(added) == 1
