"""infra/ (Terraform, DigitalOcean): parse the HCL and hold the firewall to the plan.

Inbound traffic allowed, and nothing else: SSH only from var.operator_cidrs; 80/443 from
anywhere to the web hosts (API and admin droplets); 5432 to the db droplet only from droplets
tagged API or admin. The checker also runs on mutated copies, to show it catches a change that
opens PostgreSQL or SSH to the world.
"""

import re
import shutil
from pathlib import Path

import hcl2
import yaml

from .tooling import REPO

INFRA = REPO / "infra"
WORLD = {"0.0.0.0/0", "::/0"}
DROPLETS = {"core-db-prod", "core-api-prod", "core-api-stage", "admin-panel"}


def _unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


def load(tf_dir: Path) -> dict:
    merged: dict = {"resource": {}, "variable": {}, "locals": {}, "terraform": [], "provider": []}
    for path in sorted(tf_dir.glob("*.tf")):
        with path.open() as fh:
            doc = _unquote(hcl2.load(fh))
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                merged["resource"].setdefault(rtype, {}).update(named)
        for block in doc.get("variable", []):
            merged["variable"].update(block)
        for block in doc.get("locals", []):
            merged["locals"].update(block)
        merged["terraform"] += doc.get("terraform", [])
        merged["provider"] += doc.get("provider", [])
    return merged


class Resolver:
    """Turns `${digitalocean_tag.role[local.tag_api].id}` into the tag name it stands for."""

    def __init__(self, tf: dict):
        self.variables = {name: spec.get("default") for name, spec in tf["variable"].items()}
        self.locals = tf["locals"]

    def text(self, value: str) -> str:
        value = re.sub(r"\$\{var\.(\w+)\}", lambda m: str(self.variables[m.group(1)]), value)
        return re.sub(r"\$\{local\.(\w+)\}", lambda m: self.text(self.locals[m.group(1)]), value)

    def tag(self, ref: str) -> str:
        match = re.fullmatch(r"\$\{digitalocean_tag\.role\[local\.(\w+)\]\.id\}", ref)
        if match:
            return self.text(self.locals[match.group(1)])
        match = re.fullmatch(r'\$\{digitalocean_tag\.role\["([^"]+)"\]\.id\}', ref)
        if match:
            return match.group(1)
        return self.text(ref)


def _ports(rule: dict) -> set[str]:
    return {str(rule.get("port_range", "")).strip()}


def firewall_violations(tf_dir: Path) -> list[str]:
    tf = load(tf_dir)
    res = Resolver(tf)
    problems: list[str] = []
    tag_db, tag_api, tag_admin = (res.text(tf["locals"][k]) for k in ("tag_db", "tag_api", "tag_admin"))
    web_tags = {tag_api, tag_admin}

    droplet_tags = {name: {res.tag(res.text(t)) for t in spec["tags"]}
                    for name, spec in tf["locals"]["droplets"].items()}
    if set(droplet_tags) != DROPLETS:
        problems.append(f"droplets are {sorted(droplet_tags)}, expected {sorted(DROPLETS)}")

    firewalls = tf["resource"].get("digitalocean_firewall", {})
    if not firewalls:
        return problems + ["no digitalocean_firewall"]
    covered: set[str] = set()
    for name, fw in firewalls.items():
        targets = {res.tag(t) for t in fw.get("tags", [])}
        if fw.get("droplet_ids"):
            problems.append(f"{name}: targets droplets by id; use tags")
        covered |= targets
        for dyn in fw.get("dynamic", []):
            if "inbound_rule" in dyn:
                problems.append(f"{name}: dynamic inbound_rule cannot be checked; write the rules out")
        for rule in fw.get("inbound_rule", []):
            port = str(rule.get("port_range", "")).strip()
            proto = rule.get("protocol")
            addrs = rule.get("source_addresses")
            stags = {res.tag(t) for t in rule.get("source_tags", [])}
            extra = [k for k in ("source_droplet_ids", "source_load_balancer_uids", "source_kubernetes_ids")
                     if rule.get(k)]
            where = f"{name}: inbound {proto}/{port}"
            if proto != "tcp" or extra:
                problems.append(f"{where}: only tcp rules with addresses or tags are allowed")
            elif port == "22":
                if addrs != "${var.operator_cidrs}" or stags:
                    problems.append(f"{where}: SSH must come from var.operator_cidrs only (got {addrs} {stags})")
            elif port in ("80", "443"):
                if set(addrs or []) != WORLD or stags:
                    problems.append(f"{where}: web ports are open to 0.0.0.0/0 and ::/0")
                if not targets or not targets <= web_tags:
                    problems.append(f"{where}: web ports only on the web hosts (tags {sorted(web_tags)}), "
                                    f"not {sorted(targets)}")
            elif port == "5432":
                if addrs:
                    problems.append(f"{where}: PostgreSQL open to addresses {addrs}")
                if not stags or not stags <= web_tags:
                    problems.append(f"{where}: PostgreSQL only from tags {sorted(web_tags)}, got {sorted(stags)}")
                if targets != {tag_db}:
                    problems.append(f"{where}: PostgreSQL only on the db host, not {sorted(targets)}")
            else:
                problems.append(f"{where}: port not in the plan")
    for droplet, tags in droplet_tags.items():
        if not tags & covered:
            problems.append(f"droplet {droplet} is behind no firewall")
    if tag_db in covered and any(
        res.tag(t) == tag_db for fw in firewalls.values() for t in fw.get("tags", [])
        if any(str(r.get("port_range")) in ("80", "443") for r in fw.get("inbound_rule", []))
    ):
        problems.append("the db host receives web ports")
    if droplet_tags.get("core-db-prod", set()) & web_tags:
        problems.append("core-db-prod carries a web tag")
    return problems


def test_firewall_matches_the_plan():
    assert firewall_violations(INFRA) == []


def _mutated(tmp_path: Path, old: str, new: str) -> Path:
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy)
    text = (copy / "firewall.tf").read_text()
    assert old in text
    (copy / "firewall.tf").write_text(text.replace(old, new, 1))
    return copy


def test_opening_postgres_to_the_world_is_caught(tmp_path):
    copy = _mutated(tmp_path, 'port_range  = "5432"\n', 'port_range  = "5432"\n    source_addresses = ["0.0.0.0/0"]\n')
    assert any("PostgreSQL open to addresses" in p for p in firewall_violations(copy))


def test_ssh_from_anywhere_and_extra_ports_are_caught(tmp_path):
    copy = _mutated(tmp_path, "source_addresses = var.operator_cidrs", 'source_addresses = ["0.0.0.0/0"]')
    assert any("SSH must come from var.operator_cidrs" in p for p in firewall_violations(copy))
    copy2 = _mutated(tmp_path / "b", 'port_range       = "443"', 'port_range       = "8000"')
    assert any("port not in the plan" in p for p in firewall_violations(copy2))


def test_postgres_on_a_web_firewall_is_caught(tmp_path):
    copy = _mutated(tmp_path, 'port_range       = "80"', 'port_range       = "5432"')
    assert any("PostgreSQL" in p for p in firewall_violations(copy))


def test_variables_carry_the_plans_defaults():
    tf = load(INFRA)
    variables = tf["variable"]
    assert variables["region"]["default"] == "nyc3"
    assert variables["db_size"]["default"].endswith("2gb")
    assert variables["api_size"]["default"].endswith("4gb")
    assert variables["image"]["default"] == "ubuntu-24-04-x64"
    assert "default" not in variables["operator_cidrs"], "the operator CIDR must be chosen, never defaulted"
    assert "0.0.0.0/0" in str(variables["operator_cidrs"]["validation"]), "validation must refuse the world"
    droplet = tf["resource"]["digitalocean_droplet"]["host"]
    assert droplet["ssh_keys"] == "${var.ssh_key_fingerprints}"
    assert droplet["vpc_uuid"] == "${digitalocean_vpc.main.id}"
    assert "digitalocean_spaces_bucket" in tf["resource"]


def test_no_state_or_secret_committed():
    tf = load(INFRA)
    backend = tf["terraform"][0]["backend"][0]
    assert "s3" in backend, "state lives remotely (Spaces)"
    assert tf["provider"][0]["digitalocean"] == {}, "the provider takes its token from DIGITALOCEAN_TOKEN"
    for path in INFRA.rglob("*"):
        assert not path.name.endswith((".tfstate", ".tfstate.backup")), path
        assert path.name not in ("terraform.tfvars", "backend.hcl"), path
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"dop_v1_[0-9a-f]{20,}", text), f"DigitalOcean token in {path}"
            assert not re.search(r"(?i)secret_key\s*=\s*\"[A-Za-z0-9/+]{20,}\"", text), f"key in {path}"


# python3 of each DigitalOcean image slug the variable could name (the distribution's own, as the role reads it)
IMAGE_PYTHON = {"ubuntu-20-04-x64": "3.8", "ubuntu-22-04-x64": "3.10", "ubuntu-24-04-x64": "3.12",
                "debian-11-x64": "3.9", "debian-12-x64": "3.11"}


def test_the_image_variable_accepts_only_images_whose_python_the_raiox_role_accepts():
    """A droplet of an image whose python3 the raiox role refuses (raiox_python_versions: Ubuntu 22.04's 3.10) is
    refused at `terraform plan`, with the reason, not after it is created and the deploy stops."""
    spec = load(INFRA)["variable"]["image"]
    (validation,) = spec["validation"]
    accepted = re.fullmatch(r"\$\{contains\((\[[^\]]*\]), var\.image\)\}", validation["condition"])
    assert accepted, validation["condition"]
    images = re.findall(r'"([^"]+)"', accepted[1])
    defaults = yaml.safe_load((REPO / "deploy" / "roles" / "raiox" / "defaults" / "main.yml").read_text())
    assert images and spec["default"] in images
    for image in images:
        assert IMAGE_PYTHON.get(image) in defaults["raiox_python_versions"], image
    message = validation["error_message"]
    assert "raiox_python_versions" in message and "3.10" in message
    assert all(image in message for image in images)
