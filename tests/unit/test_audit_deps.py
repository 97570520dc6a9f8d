"""`make audit`'s dependency half (scripts/audit_deps.py, issue 18.9): a verdict on every runtime
pin, runtime apart from dev/test, and a pin the index does not know (aiosmtpd) listed as "not
checked" instead of failing the whole audit. pip-audit is replaced by a fake executable that
answers from a table, as the real one writes its JSON."""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "audit_deps", Path(__file__).resolve().parents[2] / "scripts" / "audit_deps.py")
assert _spec is not None
assert _spec.loader is not None
audit_deps = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("audit_deps", audit_deps)  # dataclasses look their module up there
_spec.loader.exec_module(audit_deps)

LOCK = """\
aiosmtpd==1.4.6
blinker==1.9.0
click==8.5.1
Flask==3.1.3
itsdangerous==2.2.0
Jinja2==3.1.6
MarkupSafe==3.0.4
pytest==9.0.3
Werkzeug==3.1.9
"""
RUNTIME = {"blinker", "click", "flask", "itsdangerous", "jinja2", "markupsafe", "werkzeug"}


def fake_pip_audit(tmp_path: Path, answers: dict[str, dict], *, crash: bool = False) -> str:
    """An executable taking pip-audit's arguments: for each pin of `-r`, the entry in `answers`
    (default: known, no vulnerabilities), written as JSON to `-o`."""
    table = tmp_path / "answers.json"
    table.write_text(json.dumps(answers))
    script = tmp_path / "pip-audit"
    script.write_text(f"""#!{sys.executable}
import json, sys
args = sys.argv[1:]
if {crash!r}:
    sys.stderr.write("ConnectionError: pypi.org unreachable\\n")
    sys.exit(1)
answers = json.load(open({str(table)!r}))
pins = [l.strip() for l in open(args[args.index("-r") + 1]) if l.strip()]
deps = []
for pin in pins:
    name, version = pin.split("==")
    deps.append({{"name": name.lower(), "version": version, "vulns": [], **answers.get(name.lower(), {{}})}})
json.dump({{"dependencies": deps, "fixes": []}}, open(args[args.index("-o") + 1], "w"))
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], pip_audit: str) -> tuple[int, str]:
    (tmp_path / "requirements.lock").write_text(LOCK)
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["flask==3.1.3"]\n')
    status = audit_deps.main(["--pip-audit", pip_audit, "--lock", str(tmp_path / "requirements.lock"),
                              "--pyproject", str(tmp_path / "pyproject.toml"), "--workdir", str(tmp_path / "w")])
    return status, capsys.readouterr().out


Capture = pytest.CaptureFixture[str]
NOT_ON_INDEX = {"skip_reason": "Dependency not found on PyPI and could not be audited: aiosmtpd (1.4.6)"}


def test_a_dev_dependency_missing_from_the_index_does_not_fail_the_audit(tmp_path: Path, capsys: Capture) -> None:
    status, out = run(tmp_path, capsys, fake_pip_audit(tmp_path, {"aiosmtpd": NOT_ON_INDEX}))
    assert status == 0, out
    runtime_part, dev_part = out.split("dev/test dependencies")
    for name in ("Flask==3.1.3", "Werkzeug==3.1.9", "Jinja2==3.1.6", "MarkupSafe==3.0.4"):
        assert f"{name}" in runtime_part
    assert runtime_part.count(" ok") == len(RUNTIME)  # a verdict on every runtime pin
    assert "aiosmtpd==1.4.6" in dev_part
    assert "not checked: Dependency not found on PyPI" in dev_part
    assert "pytest==9.0.3" in dev_part
    assert "runtime: 7 ok, 0 vulnerable, 0 not checked" in out


def test_a_runtime_dependency_that_could_not_be_checked_fails_and_is_named(tmp_path: Path, capsys: Capture) -> None:
    skipped = {"skip_reason": "Dependency not found on PyPI and could not be audited: werkzeug (3.1.9)"}
    status, out = run(tmp_path, capsys, fake_pip_audit(tmp_path, {"werkzeug": skipped}))
    assert status == 2
    assert "could not check (runtime, so the audit fails): Werkzeug==3.1.9" in out


def test_a_vulnerable_pin_fails_with_its_ids(tmp_path: Path, capsys: Capture) -> None:
    vulnerable = {"vulns": [{"id": "GHSA-xxxx-0000-test", "fix_versions": ["9.9"]}]}
    status, out = run(tmp_path, capsys, fake_pip_audit(tmp_path, {"jinja2": vulnerable}))
    assert status == 1
    assert "Jinja2==3.1.6" in out
    assert "VULNERABLE: GHSA-xxxx-0000-test" in out


def test_an_unreachable_service_is_not_a_clean_result(tmp_path: Path, capsys: Capture) -> None:
    status, out = run(tmp_path, capsys, fake_pip_audit(tmp_path, {}, crash=True))
    assert status == 2
    assert "not checked: pip-audit failed: ConnectionError: pypi.org unreachable" in out
    assert "runtime: 0 ok, 0 vulnerable, 7 not checked" in out


def test_the_runtime_set_is_the_closure_of_the_declared_dependencies() -> None:
    requires = {
        "app-lib": ["helper>=1", "extra-only; extra == 'fast'", "win-only; sys_platform == 'win32'"],
        "helper": ["leaf"],
        "leaf": [],
        "extra-only": [],
    }
    assert audit_deps.runtime_closure(["app-lib==1"], requires.get) == {"app-lib", "helper", "leaf"}
    assert audit_deps.runtime_closure(["app-lib[fast]==1"], requires.get) == {
        "app-lib", "helper", "leaf", "extra-only"}


def test_the_real_lock_splits_runtime_from_dev() -> None:
    root = Path(audit_deps.ROOT)
    import tomllib

    top = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    runtime, dev = audit_deps.split_lock(audit_deps.read_lock(root / "requirements-dev.lock"),
                                         audit_deps.runtime_closure(top))
    runtime_names = {line.split("==")[0].lower() for line in runtime}
    dev_names = {line.split("==")[0].lower() for line in dev}
    assert {"flask", "werkzeug", "celery", "kombu", "psycopg-binary", "cryptography", "pypdf"} <= runtime_names
    assert {"aiosmtpd", "pytest", "hypothesis", "ruff", "mypy", "schemathesis"} <= dev_names
