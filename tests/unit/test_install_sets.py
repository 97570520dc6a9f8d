"""Runtime vs development installs (issue 16): requirements.lock is the runtime (what the container
image and `make install` get) and holds no test or lint tool; requirements-run.lock adds the local
SMTP sink `make run` starts; requirements-dev.lock adds the tools. Every import of the product
resolves from the runtime lock alone."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shared.config import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import audit_deps

TOOLS = ("pytest", "hypothesis", "ruff", "mypy", "fakeredis", "aiosmtpd", "schemathesis", "import-linter",
         "pytest-timeout", "eventsourcing")
PRODUCT = ("shared", "intake_service", "assessment_service", "workers")
#: Python files outside the packages that production runs.
PRODUCT_FILES = (ROOT / "config" / "gunicorn.conf.py",)


def _own_pins(path: Path) -> set[str]:
    """Canonical names pinned in this file itself (not its -r includes)."""
    names = set()
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(canonicalize_name(Requirement(line).name))
    return names


def _runtime_names() -> set[str]:
    return set(audit_deps.read_lock(ROOT / "requirements.lock"))


def test_the_runtime_lock_holds_no_test_or_lint_tool() -> None:
    runtime = _runtime_names()
    assert {canonicalize_name(t) for t in TOOLS} & runtime == set()
    assert {canonicalize_name(t) for t in TOOLS} <= set(audit_deps.read_lock(ROOT / "requirements-dev.lock"))


def test_the_runtime_lock_is_exactly_the_closure_of_the_declared_dependencies() -> None:
    top = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    closure = audit_deps.runtime_closure(top)
    runtime = _runtime_names()
    assert closure - runtime == set(), "declared (or pulled in) but not pinned in requirements.lock"
    assert runtime - closure == set(), "pinned in requirements.lock but nothing declared needs it: a dev pin?"


def test_each_pin_is_in_one_file_only_and_the_dev_extras_are_all_pinned() -> None:
    files = [ROOT / "requirements.lock", ROOT / "requirements-run.lock", ROOT / "requirements-dev.lock"]
    seen: dict[str, str] = {}
    for path in files:
        for name in _own_pins(path):
            assert name not in seen, f"{name} pinned in {seen.get(name)} and {path.name}"
            seen[name] = path.name
    assert _own_pins(ROOT / "requirements-run.lock") == {"aiosmtpd", "atpublic", "attrs"}
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    everything = audit_deps.read_lock(ROOT / "requirements-dev.lock")
    assert {canonicalize_name(Requirement(d).name) for d in dev} - set(everything) == set()


def _third_party_imports() -> dict[str, Path]:
    found: dict[str, Path] = {}
    files = [p for package in PRODUCT for p in (ROOT / package).rglob("*.py")] + list(PRODUCT_FILES)
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in PRODUCT:
                    found.setdefault(top, path)
    return found


def test_every_import_of_the_product_comes_from_a_runtime_pin() -> None:
    runtime = _runtime_names()
    distributions = metadata.packages_distributions()
    imports = _third_party_imports()
    assert {"flask", "sqlalchemy", "celery", "weasyprint"} <= set(imports)  # the scan sees imports
    missing = {}
    for module, where in imports.items():
        owners = {canonicalize_name(d) for d in distributions.get(module, [])}
        if not owners & runtime:
            missing[module] = (sorted(owners), str(where.relative_to(ROOT)))
    assert missing == {}


#: Run in a child: block every module whose distribution is not in the runtime lock, then import
#: every product module and build both apps and the Celery app.
_CHILD = r"""
import importlib, importlib.abc, pkgutil, sys
from importlib import metadata
from packaging.utils import canonicalize_name
sys.path.insert(0, "scripts")
import audit_deps
runtime = set(audit_deps.read_lock(audit_deps.ROOT / "requirements.lock"))
owners = metadata.packages_distributions()
blocked = {m for m, ds in owners.items() if not {canonicalize_name(d) for d in ds} & runtime}
blocked -= set(sys.stdlib_module_names)
tried = []

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            tried.append(name)
            raise ImportError(f"{name} is not in the runtime lock")
        return None

sys.meta_path.insert(0, Block())
for package in ("shared", "intake_service", "assessment_service", "workers"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)
import intake_service, assessment_service
intake_service.create_app()
intake_service.create_feed_app()
assessment_service.create_app()
from workers.celery_app import app
app.loader.import_default_modules()
assert "pytest" in blocked and "ruff" not in sys.modules
print("imported", len(sys.modules), "modules; refused:", sorted(set(tried)))
"""


@pytest.mark.slow
def test_the_product_imports_and_starts_with_only_the_runtime_packages(tmp_path: Path) -> None:
    env = {**os.environ, "CIM_ENV": "test", "CIM_DATA_DIR": str(tmp_path), "CIM_WAKEUP": "none",
           "CIM_RATELIMIT_STORAGE": "memory://", "CIM_CREDENTIAL_KEYS_DIR": str(tmp_path / "keys"),
           "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run([sys.executable, "-c", _CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    # apispec tries PyYAML for its optional YAML docstrings and does without it.
    assert "refused: ['yaml']" in done.stdout or "refused: []" in done.stdout, done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_installs_the_runtime_and_the_sink_and_the_test_targets_add_the_tools(tmp_path: Path) -> None:
    def planned(target: str) -> str:
        done = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=True)
        return done.stdout

    install, run = planned("install"), planned("run")
    assert "-r requirements.lock" in install
    assert "requirements-run.lock" not in install
    assert "requirements-dev.lock" not in install
    assert "-r requirements-run.lock" in run
    assert "requirements-dev.lock" not in run
    for target in ("test", "test-fast", "lint"):
        assert "-r requirements-dev.lock" in planned(target), target


def test_the_container_image_installs_the_runtime_lock_only() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "RUN pip install --no-cache-dir -r requirements.lock" in compose
    assert "requirements-dev.lock" not in compose
    assert "requirements-run.lock" not in compose
