"""What the operators and developers are told to run exists: every `raiox ...` command line quoted in README.md,
docs/*.md, the Makefile, deploy/ (scripts, roles, their templates and systemd units) and the workflows names a real
command with options it has (values of choice options among its choices), and every RAIOX_* variable named there
is a setting or a variable something really reads. A runbook step that names a renamed command, a dropped flag or
a variable nobody reads leaves an operator stuck in the middle of a deploy or a restore.

Where a command line is: in Markdown, code spans and fenced blocks; in other files, code lines, and code spans of
their comments. Placeholders (`SYSTEM_ID`, `<case id>`, `N`, `...`, `$VAR`, `{{ var }}`) stand for any value;
`[--opt]` and `a|b` in usage lines are read as the options and values they list."""

import re
from functools import cache
from pathlib import Path

import pytest

from .rendering import context
from .tooling import REPO

# not sources of command lines: binary or generated files, and the vault example's placeholders
SKIP_SUFFIXES = {".png", ".jpg", ".onnx", ".lock", ".pyc"}


def _sources() -> list[Path]:
    found = [REPO / "README.md", REPO / "Makefile", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / ".github" / "workflows").glob("*.yml")), *sorted((REPO / "scripts").glob("*.sh"))]
    found += sorted(p for p in (REPO / "deploy").rglob("*") if p.is_file() and p.suffix not in SKIP_SUFFIXES)
    return found


def _code(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of every piece of the file that is code rather than prose."""
    pieces = []
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if path.suffix == ".md":
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            prose = not fenced
        else:
            prose = line.lstrip().startswith(("#", "{#", ";"))
        if prose:
            pieces += [(number, span) for span in re.findall(r"`([^`]+)`", line)]
        else:
            pieces.append((number, line))
    return pieces


# `raiox` as the program: at the start of a piece or after a separator, a path ending in bin/ or a variable holding
# it ("$raiox"), followed by words; not the user (`sudo -u raiox bash`), a database (`raiox-pg-restore raiox latest`)
START = re.compile(r"""(?:(?<=^)|(?<=[\s(;&|`'"])|(?<=bin/)|(?<=\)/)|(?<=\}/))"""
                   r"""(?:raiox|\$\{?raiox\}?)"?(?=\s+-{0,2}[a-z])""")
NOT_THE_PROGRAM = re.compile(r"(?:-u|--user|user:|owner:|group:|chown|raiox-pg-restore(?:\s+--?\S+)*)\s*$")
# where a command line ends: shell separators, quotes, a comment, a redirection, an escaped backtick
END = re.compile(r"""['"`\\;)}]|&&|\|\||\s\|\s|\s#|\s\d?>|<<""")
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_]*|X|\.\.\.|…|\*|.*[$<>{}].*)$")


def command_lines() -> list[tuple[str, str]]:
    """(where, the words after `raiox`) of every command line in the sources."""
    found = []
    for path in _sources():
        for number, piece in _code(path):
            for match in START.finditer(piece):
                if NOT_THE_PROGRAM.search(piece[:match.start()]):
                    continue
                rest = re.sub(r"<[^<>]*>", "X", piece[match.end():])  # `<case id>`: one placeholder
                rest = _alternatives_in_brackets(rest)
                rest = END.split(rest, maxsplit=1)[0]
                found.append((f"{path.relative_to(REPO)}:{number}", rest.strip()))
    # the systemd units run `raiox` with the role's commands (ExecStart=.../venv/bin/raiox {{ unit_command }})
    for name, unit in context("raiox", {})["raiox_units"].items():
        found.append((f"deploy/roles/raiox/defaults/main.yml raiox_units.{name}", unit["command"]))
    return found


def _alternatives_in_brackets(text: str) -> str:
    """`[--limit N | --systems IDS]`: inside brackets `|` separates options, it is no pipe."""
    out, depth = [], 0
    for i, char in enumerate(text):
        depth += (char == "[") - (char == "]")
        spaced = char == "|" and depth > 0 and " " in text[max(i - 1, 0):i + 2]  # `cpu|cuda` is a value's choice
        out.append(" " if char in "[]" or spaced else char)
    return "".join(out)


@cache
def _root():
    import typer

    from raiox.cli import app

    return typer.main.get_command(app)


def problems(words: str) -> list[str]:
    """What is wrong with `raiox WORDS` against the real command tree (empty: nothing)."""
    tokens = words.split()
    command, path = _root(), ["raiox"]
    while tokens:
        token = tokens[0]
        if hasattr(command, "commands"):  # a group: options of its own, then a subcommand
            if token.startswith("-"):
                names = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
                if token not in names:
                    return [f"`{' '.join(path)}` has no option {token}"]
                tokens.pop(0)
                continue
            word = token.rstrip(",.:")
            if PLACEHOLDER.match(word):
                return []
            if word not in command.commands:
                return [f"`{' '.join(path)}` has no command {word!r} (it has: {', '.join(sorted(command.commands))})"]
            command, path = command.commands[word], [*path, word]
            tokens.pop(0)
            if word != token:  # `reindex,` in a sentence: the command line ends there
                return []
            continue
        return _leaf_problems(command, " ".join(path), tokens)
    return []


def _leaf_problems(command, name: str, tokens: list[str]) -> list[str]:
    options = {o: p for p in command.params if p.param_type_name == "option" for o in (*p.opts, *p.secondary_opts)}
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    most = float("inf") if any(p.nargs == -1 for p in arguments) else sum(p.nargs for p in arguments)
    found, positional = [], 0
    while tokens:
        token = tokens.pop(0)
        word = token.rstrip(",.:")
        if word.startswith("-") and not re.fullmatch(r"-\d+", word):
            option_name, has_value, value = word.partition("=")
            if option_name == "--help":
                continue
            option = options.get(option_name)
            if option is None:
                found.append(f"`{name}` has no option {option_name} (it has: {', '.join(sorted(options))})")
                continue
            if not option.is_flag and option.nargs >= 1:
                if not has_value and tokens:
                    value = tokens.pop(0).rstrip(",.:")
                found += _value_problems(name, option_name, option, value)
        elif PLACEHOLDER.match(word) or not word:
            positional += 1
        else:
            positional += 1
            if positional > most:
                found.append(f"`{name}` takes {most} argument(s), got {word!r} too")
        if word != token:  # `... --dry-run.` in a sentence: the command line ends there
            break
    return found


@cache
def _domains() -> dict[tuple[str, str], set[str]]:
    """Options whose values the command checks itself (Typer sees a str): the values it accepts, from the code."""
    from raiox.kit.tokens import SCOPES
    from raiox.review.accounts import ROLES

    return {("raiox users add", "--role"): set(ROLES), ("raiox tokens create", "--scope"): set(SCOPES)}


def _value_problems(name: str, option_name: str, option, value: str) -> list[str]:
    choices = _domains().get((name, option_name))
    if not choices or not value or PLACEHOLDER.match(value):
        return []
    wrong = [v for v in value.split("|") if v not in choices and not PLACEHOLDER.match(v)]
    return [f"`{name} {option_name}` takes one of {sorted(choices)}, not {v!r}" for v in wrong]


def test_the_scan_finds_the_command_lines_of_every_kind_of_source():
    """The extraction itself: it must see the runbook's, the deploy script's, the role's and the units' commands."""
    lines = command_lines()
    assert len(lines) > 150
    where = {w.split(":")[0].split(" ")[0] for w, _ in lines}
    assert {"README.md", "docs/operations.md", "Makefile", "deploy/scripts/deploy.sh",
            "deploy/roles/raiox/tasks/main.yml", "deploy/roles/raiox/defaults/main.yml"} <= where
    words = {w for _, w in lines}
    assert "users add ana@example.com --role admin" in words  # a runbook line inside `sudo -u raiox bash -c '...'`
    assert "db upgrade" in words  # deploy.sh's "$release/venv/bin/raiox" db upgrade
    assert not [w for w in words if w.startswith(("bash", "latest", "raiox-"))]  # the user, a database, a file


@pytest.mark.parametrize("words, wrong", [
    ("catalog stat", "has no command 'stat'"),
    ("catalog reindex --emebdder raiox-v12", "has no option --emebdder"),
    ("users add EMAIL --role superuser", "not 'superuser'"),
    ("users add EMAIL --role reviewer|owner", "not 'owner'"),
    ("tokens create NAME --scope cases --scope everything", "not 'everything'"),
    ("db upgrade head", "takes 0 argument(s)"),
    ("--verbose serve", "has no option --verbose"),
])
def test_the_check_sees_a_wrong_command_line(words, wrong):
    found = problems(words)
    assert found and wrong in found[0], found


@pytest.mark.parametrize("words", [
    "--debug COMMAND ...", "catalog demo --if-empty --refs N --restored N --limit N --systems demo-001,demo-002",
    "catalog remove-reference SYSTEM_ID REF_ID REF_ID ... --yes", "users add EMAIL --role reviewer|admin",
    "tokens create jotform-ops --scope cases --scope review", "catalog reindex, which embeds only what is missing",
    "serve --host $(HOST) --port $(PORT)", "cases purge --case X", "vision",
])
def test_the_check_accepts_what_the_docs_write(words):
    assert problems(words) == []


def test_every_raiox_command_line_in_the_docs_and_deploy_files_exists():
    wrong = [f"{where}: raiox {words}: {problem}" for where, words in command_lines() for problem in problems(words)]
    assert not wrong, "\n".join(wrong)


# --- RAIOX_* variables -------------------------------------------------------------------------------------------

NAME = re.compile(r"RAIOX_[A-Z0-9_]*[A-Z0-9](?:_\*)?")


def _settings() -> set[str]:
    from raiox.kit.settings import Settings

    return {f"RAIOX_{name.upper()}" for name in Settings.model_fields}


def _read_by_code() -> set[str]:
    """Variables something reads besides the settings: the code's own (`envvar=`, os.environ, the tests'), the shell
    scripts' (`${RAIOX_X:-default}`, `$RAIOX_X`) and the role tasks' shell (which may set one in `environment:`)."""
    read = set()
    for path in [*(REPO / "src").rglob("*.py"), *(REPO / "tests").rglob("*.py")]:
        if path.name != Path(__file__).name:
            read |= set(re.findall(r"""["'](RAIOX_[A-Z0-9_]+)["']""", path.read_text(encoding="utf-8")))
    shell = [*(REPO / "deploy" / "scripts").glob("*.sh"), *(REPO / "deploy" / "roles").glob("*/tasks/*.yml")]
    for path in shell:
        read |= set(re.findall(r"\$\{?(RAIOX_[A-Z0-9_]+)", path.read_text(encoding="utf-8")))
    return read


def test_every_raiox_variable_in_the_docs_and_deploy_files_is_a_setting_or_is_read():
    known = _settings() | _read_by_code()
    unknown = []
    for path in [*_sources(), REPO / ".env.example"]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in NAME.findall(line):
                if name.endswith("_*"):  # `RAIOX_SMTP_*`: a family of settings
                    ok = any(k.startswith(name[:-1]) for k in known)
                else:
                    ok = name in known
                if not ok:
                    unknown.append(f"{path.relative_to(REPO)}:{number}: {name}")
    assert not unknown, "variables that are neither a setting nor read by anything:\n" + "\n".join(unknown)


@pytest.mark.parametrize("template, reader", [
    ("raiox/templates/deploy.env.j2", "deploy.sh"), ("pg_backup/templates/backup.env.j2", "pg-backup.sh"),
])
def test_every_variable_a_settings_file_writes_is_read_by_its_script(template, reader):
    """deploy.env is sourced by deploy.sh, backup.env by the backup and restore scripts: a name they do not read
    (a rename on one side only) is a setting the host silently ignores."""
    written = set(re.findall(r"^(RAIOX_[A-Z0-9_]+)=", (REPO / "deploy" / "roles" / template).read_text(), flags=re.M))
    scripts = REPO / "deploy" / "scripts"
    readers = [scripts / reader] + ([scripts / "pg-restore.sh"] if reader == "pg-backup.sh" else [])
    read = set()
    for script in readers:
        read |= set(re.findall(r"\$\{?(RAIOX_[A-Z0-9_]+)", script.read_text()))
    assert written and written <= read, sorted(written - read)
