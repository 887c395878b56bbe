"""requirements/prod.lock, the production lock deploy.sh installs (`pip install --require-hashes`), against
pyproject.toml: every base dependency pinned at a version its range admits, every pin exact and hashed, nothing
pinned for raiox that pyproject.toml no longer names, no extra's package (torch), made for the Python CI runs.
Offline: it reads the files only. When it fails, run `make lock` and commit the diff (docs/operations.md)."""

import re
import tomllib
from dataclasses import dataclass, field

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .tooling import REPO

LOCK = REPO / "requirements" / "prod.lock"
BUILD_LOCK = REPO / "requirements" / "build.lock"
PYPROJECT = REPO / "pyproject.toml"
VIA_RAIOX = "raiox (pyproject.toml)"


@dataclass
class Pin:
    name: str
    line: str
    version: str | None = None
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def parse_lock(text: str) -> dict[str, Pin]:
    """name -> Pin of a pip-compile / `uv pip compile --generate-hashes` output (continued lines joined)."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            comment = line.lstrip("#").strip()
            if current is None:
                continue
            if comment.startswith("via"):
                in_via = True
                rest = comment[len("via"):].strip()
                if rest:
                    current.via.append(rest)
            elif in_via and comment:
                current.via.append(comment)
            continue
        in_via = False
        if line.startswith("--hash="):
            assert current is not None, f"a hash before any requirement: {line}"
            current.hashes.append(line.removeprefix("--hash=").rstrip(" \\"))
            continue
        requirement, _, rest = line.rstrip(" \\").partition(" --hash=")
        req = Requirement(requirement)
        specs = list(req.specifier)
        current = Pin(canonicalize_name(req.name), line,
                      specs[0].version if len(specs) == 1 and specs[0].operator == "==" else None)
        if rest:
            current.hashes.extend(h.strip() for h in ("--hash=" + rest).split("--hash=") if h.strip())
        assert current.name not in pins, f"{current.name} pinned twice"
        pins[current.name] = current
    return pins


def base_dependencies() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return [Requirement(dep) for dep in project["dependencies"]]


@pytest.fixture(scope="module")
def pins() -> dict[str, Pin]:
    assert LOCK.exists(), "requirements/prod.lock is missing: run `make lock`"
    return parse_lock(LOCK.read_text())


def build_requirements() -> list[Requirement]:
    return [Requirement(req) for req in tomllib.loads(PYPROJECT.read_text())["build-system"]["requires"]]


def drift(pins: dict[str, Pin], required: list[Requirement] | None = None) -> list[str]:
    """What the lock gets wrong against pyproject.toml's base dependencies (or REQUIRED) and pip's hash-checking
    mode."""
    problems = []
    for req in base_dependencies() if required is None else required:
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req} is not in the lock")
        elif pin.version is None or not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{req} is pinned at {pin.line}")
    for pin in pins.values():
        if pin.version is None:
            problems.append(f"not an exact pin: {pin.line}")
        if not pin.hashes:
            problems.append(f"no hash (pip --require-hashes refuses it): {pin.line}")
        problems.extend(f"{pin.name}: not a sha256 hash: {h}" for h in pin.hashes
                        if not re.fullmatch(r"sha256:[0-9a-f]{64}", h))
    return problems


def test_every_base_dependency_is_pinned_within_its_range_and_every_pin_hashed(pins):
    assert len(pins) > len(base_dependencies())
    problems = drift(pins)
    assert not problems, "requirements/prod.lock is stale (run `make lock`):\n" + "\n".join(problems)


def test_the_lock_pins_for_raiox_exactly_what_pyproject_names(pins):
    """A dependency removed from pyproject.toml but still pinned for raiox: the lock was not regenerated."""
    locked_for_raiox = {name for name, pin in pins.items() if VIA_RAIOX in pin.via}
    assert locked_for_raiox == {canonicalize_name(req.name) for req in base_dependencies()}


def test_no_extra_only_package_is_locked(pins):
    """Production installs no training or test stack: torch and its kin live in extras only."""
    for name in ("torch", "torchvision", "open-clip-torch", "pytest", "ruff"):
        assert name not in pins, f"{name} is in the production lock"


def test_the_lock_is_made_for_the_python_ci_runs():
    """Its header's command names the Python it resolved for: the floor of requires-python, CI's container."""
    header = LOCK.read_text().split("\n\n", 1)[0]
    made_for = re.search(r"--python-version (\d+\.\d+)", header)
    assert made_for, f"the lock's header names no --python-version:\n{header}"
    requires = SpecifierSet(tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"])
    assert Version(made_for[1]) in requires
    ci = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    assert f"container: python:{made_for[1]}-" in ci
    assert f"LOCK_PYTHON := {made_for[1]}" in (REPO / "Makefile").read_text()


HASH = "    --hash=sha256:" + "0" * 64 + "\n"


@pytest.mark.parametrize("edit, problem", [
    (lambda t: re.sub(r"(?m)^fastapi==\S+", "fastapi==0.100.0", t), "fastapi>=0.165 is pinned at fastapi==0.100.0"),
    (lambda t: re.sub(r"(?m)^alembic==", "alembic-gone==", t), "alembic>=1.13 is not in the lock"),
    (lambda t: re.sub(r"(?m)^(pgvector==\S+) \\\n(    --hash=\S+( \\)?\n)+", r"\1\n", t), "no hash"),
    (lambda t: t + "extra-thing>=1 \\\n" + HASH, "not an exact pin: extra-thing>=1"),
])
def test_drift_is_found(pins, edit, problem):
    """The check above against the real lock edited as a stale one would be: it must see each problem."""
    edited = edit(LOCK.read_text())
    assert edited != LOCK.read_text()
    assert any(problem in line for line in drift(parse_lock(edited))), drift(parse_lock(edited))


def test_parse_lock_reads_hashes_and_via_lists():
    pins = parse_lock("# header\nanyio==4.0 \\\n    --hash=sha256:" + "a" * 64 + " \\\n    --hash=sha256:" + "b" * 64
                      + "\n    # via\n    #   fastapi\n    #   raiox (pyproject.toml)\n"
                      + "foo==1 ; sys_platform == 'win32'\n")
    assert pins["anyio"].version == "4.0" and len(pins["anyio"].hashes) == 2
    assert pins["anyio"].via == ["fastapi", VIA_RAIOX]
    assert pins["foo"].version == "1" and pins["foo"].hashes == []


def test_the_build_lock_pins_the_build_backend_within_its_range_and_hashed():
    """deploy.sh builds the release with requirements/build.lock's backend (--no-build-isolation), hash-checked like
    the dependencies: it pins pyproject.toml's build-system.requires (and what they need), for the lock's Python."""
    assert BUILD_LOCK.exists(), "requirements/build.lock is missing: run `make lock`"
    pins = parse_lock(BUILD_LOCK.read_text())
    problems = drift(pins, build_requirements())
    assert not problems, "requirements/build.lock is stale (run `make lock`):\n" + "\n".join(problems)
    assert {canonicalize_name(req.name) for req in build_requirements()} <= set(pins)
    made_for = re.search(r"--python-version (\d+\.\d+)", BUILD_LOCK.read_text().split("\n\n", 1)[0])
    assert made_for and made_for[0] in LOCK.read_text().split("\n\n", 1)[0]


def test_build_lock_drift_is_found():
    edited = re.sub(r"(?m)^setuptools==\S+", "setuptools==68.0.0", BUILD_LOCK.read_text())
    assert any("is pinned at setuptools==68.0.0" in line for line in drift(parse_lock(edited), build_requirements()))


def test_make_lock_writes_the_build_lock_and_deploy_builds_with_it():
    """`make lock` regenerates both locks from pyproject.toml (and checks both for wheels), CI fails when either
    changes, and deploy.sh installs the build lock hash-checked before it builds the release without isolation."""
    makefile = (REPO / "Makefile").read_text()
    assert "BUILD_LOCK := requirements/build.lock" in makefile
    assert re.search(r'\["build-system"\]\["requires"\].*\n.*uv pip compile - .*--generate-hashes', makefile)
    assert "-o $(BUILD_LOCK)" in makefile and "for lock in $(LOCK) $(BUILD_LOCK); do" in makefile
    ci = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    assert 'cp requirements/build.lock "$RUNNER_TEMP/build.lock.committed"' in ci and "for lock in prod build" in ci
    deploy = (REPO / "deploy" / "scripts" / "deploy.sh").read_text()
    assert "build_lock=requirements/build.lock" in deploy
    install = deploy[deploy.index("install_project() {"):]
    hashed = install.index('pip_install --require-hashes -r "$release/src/$build_lock"')
    assert hashed < install.index('pip_install --no-deps --no-build-isolation "$release/src"\n')
