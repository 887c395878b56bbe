"""Render the Ansible role templates the way Ansible would, with test values (Jinja2 + role defaults)."""

import re
from pathlib import Path

import jinja2
import yaml

from .tooling import REPO

ROLES = REPO / "deploy" / "roles"


def _regex_replace(value: str, pattern: str, repl: str) -> str:
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
    since a default may refer to one defined further down). Values that are Jinja expressions themselves (the
    inventory's, from `inventory_values`) are resolved with them; one that needs Ansible's own filters is left out."""
    env = environment(role)
    ctx = {"inventory_hostname": "test-host"}
    expressions = {}
    for key, value in values.items():
        if _templated(value):
            expressions[key] = value
        else:
            ctx[key] = value
    pending = {**{k: v for k, v in defaults(role).items() if k not in values}, **expressions}
    for _ in range(5):
        for key, value in list(pending.items()):
            try:
                ctx[key] = _resolve(env, value, ctx)
            except jinja2.TemplateError:
                continue
            del pending[key]
    if missing := sorted(set(pending) - set(expressions)):
        raise AssertionError(f"role {role}: unresolvable defaults {missing}")
    return ctx


def _templated(value) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


INVENTORY = REPO / "deploy" / "inventory"


def inventory_groups() -> tuple[dict[str, list[str]], dict[str, dict]]:
    """The example inventory (Terraform's shape): group -> its hosts (children's included), host -> its own vars."""
    tree = yaml.safe_load((INVENTORY / "hosts.yml.example").read_text())["all"]
    groups: dict[str, list[str]] = {}
    hosts: dict[str, dict] = {}

    def walk(name: str, node: dict) -> list[str]:
        members = []
        for host, host_vars in (node.get("hosts") or {}).items():
            hosts[host] = host_vars or {}
            members.append(host)
        for child, child_node in (node.get("children") or {}).items():
            members += walk(child, child_node or {})
        # a group listed twice (under `all` with its hosts, under `app` as a child) has the hosts of both
        groups[name] = list(dict.fromkeys([*groups.get(name, []), *members]))
        return groups[name]

    walk("all", tree)
    return groups, hosts


def inventory_values(host: str) -> dict:
    """What Ansible gives HOST from the example inventory, as `render`/`context` values: group_vars of `all`, then of
    its parent groups, then of its own groups, its host vars, and the vault example's placeholders standing for the
    vault; with `groups`, `hostvars` (host vars only) and `group_names`. Jinja values are resolved by `context`, with
    the role defaults they may refer to."""
    groups, hosts = inventory_groups()
    mine = [g for g in groups if host in groups[g] and g != "all"]
    # parents (more hosts) before children: a child group's vars win, as in Ansible
    order = ["all", *sorted(mine, key=lambda g: -len(groups[g]))]
    values = yaml.safe_load((INVENTORY / "group_vars" / "all" / "vault.yml.example").read_text())
    for group in order:
        path = INVENTORY / "group_vars" / group / "main.yml"
        if path.exists():
            values.update(yaml.safe_load(path.read_text()) or {})
    values.update(hosts[host])
    return {**values, "inventory_hostname": host, "groups": groups, "hostvars": hosts, "group_names": mine}


def render(role: str, template: str, values: dict) -> str:
    return environment(role).get_template(template).render(**context(role, values))


def _resolve(env: jinja2.Environment, value, context: dict):
    if isinstance(value, str) and "{{" in value:
        single = re.fullmatch(r"\s*\{\{(.*)\}\}\s*", value, flags=re.S)
        if single and "{{" not in single[1]:
            # one expression keeps its type, as in Ansible (`raiox_secrets: "{{ vault_prod }}"` is a dict)
            result = env.compile_expression(single[1], undefined_to_none=False)(**context)
            if isinstance(result, jinja2.Undefined):
                result._fail_with_undefined_error()
            return result
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
