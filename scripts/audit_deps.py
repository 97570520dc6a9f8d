"""`make audit`, the dependency half: a verdict on every pinned dependency, runtime apart from dev.

requirements-dev.lock (with the locks it includes: requirements-run.lock, requirements.lock) pins
everything the dev venv holds. This splits it: the runtime set is the closure of pyproject's
`[project].dependencies` (with their extras) over the installed packages' own requirements, which
is what requirements.lock holds (tests/unit/test_install_sets.py); everything else is dev/test.
pip-audit checks each set (`--disable-pip --no-deps`: the lock is complete and exact, nothing is
resolved or installed) and writes JSON; each pin then gets one verdict:

  ok             the vulnerability service knows the version and lists no vulnerability
  VULNERABLE     it lists vulnerabilities (their ids are printed)
  not checked    the service could not answer for it (not on the index it queries, offline)

The exit status: 1 if any pin is vulnerable; 2 if any *runtime* pin could not be checked (no
answer is not a clean answer); 0 otherwise. A dev/test pin that could not be checked (aiosmtpd is
not on the index pip-audit queries) is listed and does not fail the audit. If pip-audit itself
fails (the service unreachable), every pin of that set is "not checked" with its message.

Run with the app's interpreter (it reads the installed packages' metadata):
    .venv/bin/python scripts/audit_deps.py --pip-audit var/audit-venv/bin/pip-audit
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent

#: name -> the requirement strings of the installed distribution (importlib.metadata's `requires`)
RequiresOf = Callable[[str], list[str] | None]


@dataclass(frozen=True)
class Verdict:
    name: str
    version: str
    status: str  # "ok", "VULNERABLE", "not checked"
    detail: str = ""


def installed_requires(name: str) -> list[str] | None:
    try:
        return metadata.distribution(name).requires or []
    except metadata.PackageNotFoundError:
        return None


def runtime_closure(top_level: Iterable[str], requires_of: RequiresOf = installed_requires) -> set[str]:
    """Canonical names of the top-level requirements and of everything they pull in, following
    markers (an extra counts only where it was asked for)."""
    seen: set[str] = set()
    queue: list[tuple[str, frozenset[str]]] = []
    for line in top_level:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            queue.append((req.name, frozenset(req.extras)))
    expanded: set[tuple[str, frozenset[str]]] = set()
    while queue:
        name, extras = queue.pop()
        key = (canonicalize_name(name), extras)
        if key in expanded:
            continue
        expanded.add(key)
        seen.add(key[0])
        for line in requires_of(name) or []:
            req = Requirement(line)
            wanted = req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras))
            if wanted:
                queue.append((req.name, frozenset(req.extras)))
    return seen


def read_lock(path: Path) -> dict[str, str]:
    """canonical name -> `name==version` line, from a lock of exact pins, following its
    `-r other.lock` includes (requirements-dev.lock includes requirements-run.lock, which
    includes requirements.lock)."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            pins.update(read_lock(path.parent / line.split(None, 1)[1].strip()))
            continue
        if not line or line.startswith("-"):
            continue
        pins[canonicalize_name(Requirement(line).name)] = line
    return pins


def split_lock(pins: dict[str, str], runtime: set[str]) -> tuple[list[str], list[str]]:
    run = [line for name, line in sorted(pins.items()) if name in runtime]
    dev = [line for name, line in sorted(pins.items()) if name not in runtime]
    return run, dev


def verdicts(pinned: list[str], report: dict | None, failure: str = "") -> list[Verdict]:
    """One verdict per pin, from pip-audit's JSON (`report`), or all "not checked" if it failed."""
    found = {canonicalize_name(d["name"]): d for d in (report or {}).get("dependencies", [])}
    out = []
    for line in pinned:
        req = Requirement(line)
        version = str(next(iter(req.specifier)).version) if req.specifier else "?"
        entry = found.get(canonicalize_name(req.name))
        if entry is None:
            out.append(Verdict(req.name, version, "not checked", failure or "pip-audit gave no answer for it"))
        elif entry.get("skip_reason"):
            out.append(Verdict(req.name, version, "not checked", str(entry["skip_reason"])))
        elif entry.get("vulns"):
            ids = ", ".join(v.get("id", "?") for v in entry["vulns"])
            out.append(Verdict(req.name, version, "VULNERABLE", ids))
        else:
            out.append(Verdict(req.name, version, "ok"))
    return out


def run_pip_audit(pip_audit: str, pinned: list[str], workdir: Path, kind: str) -> list[Verdict]:
    if not pinned:
        return []
    workdir.mkdir(parents=True, exist_ok=True)
    requirements, output = workdir / f"{kind}-requirements.txt", workdir / f"{kind}-audit.json"
    requirements.write_text("\n".join(pinned) + "\n")
    output.unlink(missing_ok=True)
    done = subprocess.run(  # the audit venv's own tool, our arguments, no shell
        [pip_audit, "--disable-pip", "--no-deps", "--progress-spinner", "off", "-f", "json",
         "-o", str(output), "-r", str(requirements)],
        capture_output=True, text=True, check=False,
    )
    try:
        report = json.loads(output.read_text())
    except (OSError, ValueError):
        message = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return verdicts(pinned, None, f"pip-audit failed: {message}")
    return verdicts(pinned, report)


def render(kind: str, results: list[Verdict]) -> str:
    lines = [f"{kind} dependencies ({len(results)}):"]
    width = max((len(v.name) + len(v.version) for v in results), default=0) + 3
    for v in results:
        label = f"{v.name}=={v.version}"
        lines.append(f"  {label:<{width}} {v.status}{': ' + v.detail if v.detail else ''}")
    return "\n".join(lines)


def exit_status(runtime: list[Verdict], dev: list[Verdict]) -> int:
    if any(v.status == "VULNERABLE" for v in runtime + dev):
        return 1
    if any(v.status != "ok" for v in runtime):
        return 2
    return 0


def summary(runtime: list[Verdict], dev: list[Verdict]) -> str:
    def count(results: list[Verdict], status: str) -> int:
        return sum(1 for v in results if v.status == status)

    parts = [
        f"runtime: {count(runtime, 'ok')} ok, {count(runtime, 'VULNERABLE')} vulnerable, "
        f"{count(runtime, 'not checked')} not checked",
        f"dev/test: {count(dev, 'ok')} ok, {count(dev, 'VULNERABLE')} vulnerable, "
        f"{count(dev, 'not checked')} not checked",
    ]
    unchecked = [f"{v.name}=={v.version}" for v in runtime if v.status == "not checked"]
    if unchecked:
        parts.append("could not check (runtime, so the audit fails): " + " ".join(unchecked))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pip-audit", required=True, help="the pip-audit executable")
    # The dev lock includes the others: every pin the project has.
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements-dev.lock")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "audit")
    args = parser.parse_args(argv)
    top_level = tomllib.loads(args.pyproject.read_text())["project"]["dependencies"]
    runtime_pins, dev_pins = split_lock(read_lock(args.lock), runtime_closure(top_level))
    runtime = run_pip_audit(args.pip_audit, runtime_pins, args.workdir, "runtime")
    dev = run_pip_audit(args.pip_audit, dev_pins, args.workdir, "dev")
    print(render("runtime", runtime))
    print(render("dev/test", dev))
    print(summary(runtime, dev))
    return exit_status(runtime, dev)


if __name__ == "__main__":
    sys.exit(main())
