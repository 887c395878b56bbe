"""Render the Ansible role templates the way Ansible would, with test values (Jinja2 + role defaults)."""

from pathlib import Path

import jinja2
import yaml

from .tooling import REPO

ROLES = REPO / "deploy" / "roles"


def _regex_replace(value: str, pattern: str, repl: str) -> str:
    import re

    return re.sub(pattern, repl, value)


def environment(role: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLES / role / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,  # Ansible's template module default
    )
    env.filters["regex_replace"] = _regex_replace
    env.filters["combine"] = lambda first, *others: {k: v for d in (first, *others) for k, v in d.items()}
    return env


def defaults(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}


def context(role: str, values: dict) -> dict:
    """Test values, plus the role defaults with their own Jinja expressions resolved (in passes,
    since a default may refer to one defined further down)."""
    env = environment(role)
    ctx = {"inventory_hostname": "test-host", **values}
    pending = {k: v for k, v in defaults(role).items() if k not in ctx}
    for _ in range(5):
        for key, value in list(pending.items()):
            try:
                ctx[key] = _resolve(env, value, ctx)
            except jinja2.UndefinedError:
                continue
            del pending[key]
    if pending:
        raise AssertionError(f"role {role}: unresolvable defaults {sorted(pending)}")
    return ctx


def render(role: str, template: str, values: dict) -> str:
    return environment(role).get_template(template).render(**context(role, values))


def _resolve(env: jinja2.Environment, value, context: dict):
    if isinstance(value, str) and "{{" in value:
        return env.from_string(value).render(**context)
    if isinstance(value, dict):
        return {k: _resolve(env, v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(env, v, context) for v in value]
    return value


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
