"""`flask --app assessment_service projections ...`: rebuild a projection, show checkpoints and lag.
`flask --app assessment_service rules check [FILE]`: check a departments file before it is deployed.
`flask --app assessment_service terms check [FILE]`: check a term calendar likewise (docs/deadlines.md).
`flask --app assessment_service credential-keys create DEPT | rotate DEPT | list`: the departments'
credential signing keys (docs/diplomas.md, "The credential").
`python -m assessment_service.cli clock status | confirm --operator WHO`: the clock guard of the
date-driven jobs (shared/clock_guard.py; also as `flask --app assessment_service clock …`).

Two runners: the intake feed's projections, and `assignments`, fed by the assessment service's own
event store. `rules check` needs no app, database or settings beyond the file's place, so it also
runs as `python -m assessment_service.cli rules check FILE` (e.g. in CI, or when the deployed
file is the broken one and the app will not start)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import current_app
from flask.cli import AppGroup

from assessment_service.bootstrap import AssessmentContext
from shared.catalogue import Catalogue, check_change, check_file
from shared.config import Settings
from shared.projection import ProjectionRunner

if TYPE_CHECKING:
    from assessment_service.credential_keys import KeyStore
    from shared.clock_guard import ClockGuard

projections_cli = AppGroup("projections", help="Rebuild and inspect the read-model projections.")


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


@projections_cli.command("status")
def status() -> None:
    """Show each projection's checkpoint, the feed head and the lag."""
    ctx = _context()
    for entry in [*ctx.runner.status(), *ctx.own_runner.status()]:
        head = "?" if entry.head is None else entry.head
        lag = "?" if entry.lag is None else entry.lag
        click.echo(f"{entry.name:<14} checkpoint={entry.checkpoint:<10} head={head:<10} lag={lag}")


@projections_cli.command("rebuild")
@click.argument("name", required=False)
def rebuild(name: str | None) -> None:
    """Rebuild NAME (or every projection) from position 0."""
    ctx = _context()
    if name is None:
        _rebuild(ctx.runner, None)
        _rebuild(ctx.own_runner, None)
        return
    runner = ctx.own_runner if name in ctx.own_runner.projections else ctx.runner
    try:
        runner.resolve_names([name])
    except KeyError as exc:
        known = ", ".join([*ctx.runner.projections, *ctx.own_runner.projections])
        raise click.BadParameter(f"unknown projection {name}; known: {known}", param_hint="NAME") from exc
    _rebuild(runner, [name])


def _rebuild(runner: ProjectionRunner, names: list[str] | None) -> None:
    """Rebuild in a shadow and swap it in (ProjectionRunner.rebuild): the staff pages keep showing
    the old read model until the new one is complete."""
    selected = runner.resolve_names(names)
    head = runner.feed.head()
    started = time.monotonic()
    done = 0
    with click.progressbar(length=max(head, 1), label=f"Rebuilding {', '.join(selected)}") as bar:

        def advance(_applied: int, last_position: int) -> None:
            nonlocal done
            step = min(last_position, head) - done
            if step > 0:
                bar.update(step)
                done += step

        applied = runner.rebuild(selected, on_batch=advance)
        bar.update(max(head - done, 0))
    took = time.monotonic() - started
    rate = f" ({head / took:,.0f} events/s)" if head and took > 0 else ""
    click.echo(f"Rebuilt {', '.join(selected)} up to position {head} in {took:.2f} s{rate}, "
               f"swapped in with one transaction: {applied} event applications; "
               f"checkpoints: {runner.checkpoints()}")


rules_cli = AppGroup("rules", help="Check the departments' rule sets (config/departments.toml).")


@rules_cli.command("check", with_appcontext=False)
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--against", type=click.Path(dir_okay=False, path_type=Path),
              help="The file now deployed: also refuse a rule changed without a new version, or a "
                   "version events record that FILE no longer keeps.")
def check(file: Path | None, against: Path | None) -> None:
    """Check FILE (default: the file the services load, CIM_DEPARTMENTS_FILE) and list every
    problem with its place; exit status 1 if there is any."""
    path = file or Settings.from_env().departments_file
    problems = check_file(path)
    if not problems and against is not None:
        deployed_problems = check_file(against)
        if deployed_problems:
            raise click.BadParameter(f"the deployed file has problems itself: {deployed_problems[0]}",
                                     param_hint="--against")
        problems = [f"{path}: {p}" for p in check_change(Catalogue.load(against), Catalogue.load(path))]
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        click.echo(f"{len(problems)} problem(s) in {path}: the services would refuse to start.", err=True)
        raise SystemExit(1)
    catalogue = Catalogue.load(path)
    for dept in catalogue.departments.values():
        earlier = ", ".join(f"@{v}" for v in sorted(dept.earlier))
        click.echo(f"{dept.rules_ref:<12} {dept.name.en}" + (f" (earlier versions kept: {earlier})" if earlier else ""))
    click.echo(f"{path}: OK, {len(catalogue.departments)} rule set(s).")


terms_cli = AppGroup("terms", help="Check the term calendar deadlines are counted in (config/terms.toml).")


@terms_cli.command("check", with_appcontext=False)
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def check_terms(file: Path | None) -> None:
    """Check FILE (default: the file the services load, CIM_TERMS_FILE) and list every problem
    with its place; exit status 1 if there is any."""
    import tomllib

    from assessment_service.terms import TermCalendar, problems

    path = file or Settings.from_env().terms_file
    try:
        with path.open("rb") as handle:
            found = problems(tomllib.load(handle))
    except (OSError, tomllib.TOMLDecodeError) as err:
        found = [str(err)]
    if found:
        for problem in found:
            click.echo(problem, err=True)
        click.echo(f"{len(found)} problem(s) in {path}: the services would refuse to start.", err=True)
        raise SystemExit(1)
    calendar = TermCalendar.load(path)
    first, last = calendar.terms[0], calendar.terms[-1]
    click.echo(f"{path}: OK, {len(calendar.terms)} terms, {first.code} ({first.starts}) to {last.code} ({last.ends}).")


credential_keys_cli = AppGroup("credential-keys", help="Make, rotate and list the departments' diploma "
                               "credential signing keys (CIM_CREDENTIAL_KEYS_DIR).")


def _key_store_for(department: str | None) -> KeyStore:
    """The key store of the settings; with `department`, refuse a code the catalogue lacks."""
    from assessment_service.credential_keys import KeyStore

    settings = Settings.from_env()
    if department is not None:
        known = Catalogue.load(settings.departments_file).departments
        if department not in known:
            raise click.BadParameter(f"unknown department {department}; known: {', '.join(sorted(known))}",
                                     param_hint="DEPT")
    return KeyStore(settings.credential_keys_dir)


@credential_keys_cli.command("create", with_appcontext=False)
@click.argument("department", metavar="DEPT")
def create_credential_key(department: str) -> None:
    """Make DEPT's first credential signing key (refused if it has one: rotate instead)."""
    from datetime import UTC, datetime

    from assessment_service.credential_keys import KeyStoreError

    store = _key_store_for(department)
    try:
        info = store.create(department, now=datetime.now(UTC))
    except KeyStoreError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{department}: made {info.kid} ({info.public_key_multibase}) in {store.directory}")


@credential_keys_cli.command("rotate", with_appcontext=False)
@click.argument("department", metavar="DEPT")
def rotate_credential_key(department: str) -> None:
    """Make a new current key for DEPT; earlier keys keep verifying what they signed."""
    from datetime import UTC, datetime

    from assessment_service.credential_keys import KeyStoreError

    store = _key_store_for(department)
    try:
        info = store.rotate(department, now=datetime.now(UTC))
    except KeyStoreError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{department}: {info.kid} ({info.public_key_multibase}) is now current; "
               f"the earlier keys' public halves are kept")


@credential_keys_cli.command("list", with_appcontext=False)
def list_credential_keys() -> None:
    """Every department's keys: id, made, current or retired, public key (never a private one)."""
    from assessment_service.credential_keys import KeyStoreError

    store = _key_store_for(None)
    departments = store.departments()
    if not departments:
        click.echo(f"No credential keys in {store.directory}.")
        return
    for department in departments:
        try:
            keys = store.keys(department)
        except KeyStoreError as err:
            click.echo(f"{department}: {err}", err=True)
            continue
        for info in keys:
            state = "current" if info.current else f"retired {info.retired or ''}".strip()
            click.echo(f"{department:<8} {info.kid:<7} made {info.created}  {state:<28} {info.public_key_multibase}")


clock_cli = AppGroup("clock", help="The clock guard of the date-driven jobs (docs/operations.md, \"The clock guard\").")


def _clock_guard() -> ClockGuard:
    from shared.clock_guard import ClockGuard

    settings = Settings.from_env()
    return ClockGuard.from_url(settings.identity_db_url, max_jump_days=settings.clock_jump_days)


@clock_cli.command("status", with_appcontext=False)
def clock_status() -> None:
    """Each date-driven job's last run, and what the guard holds. Exit 1 when something is held."""
    guard = _clock_guard()
    click.echo(f"today {guard.today()}; a date more than {guard.max_jump_days} days after the last run is held "
               f"(CIM_CLOCK_JUMP_DAYS)")
    rows = guard.status()
    if not rows:
        click.echo("No date-driven job has run yet.")
    held = False
    for row in rows:
        state = f"HELD on {row.held_date}" if row.held_date else "ok"
        accepted = f"; accepted {row.accepted_date} by {row.accepted_by}" if row.accepted_date else ""
        click.echo(f"{row.job:<26} last run {row.last_date or '—'}  {state}{accepted}")
        held = held or row.held_date is not None
    if held:
        click.echo("If the date is right: python -m assessment_service.cli clock confirm --operator NAME")
        raise SystemExit(1)


@clock_cli.command("confirm", with_appcontext=False)
@click.option("--operator", required=True, help="Who confirms the date (kept with the confirmation).")
def clock_confirm(operator: str) -> None:
    """Confirm the held date is right: the held jobs act on their next run (the next beat tick)."""
    guard = _clock_guard()
    try:
        confirmed = guard.confirm(operator)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--operator") from err
    if not confirmed:
        click.echo("Nothing is held: there is nothing to confirm.")
        return
    for hold in confirmed:
        click.echo(f"{hold.job}: {hold.held_date} confirmed (last run {hold.reference or '—'}); "
                   f"it acts on its next run")


if __name__ == "__main__":  # pragma: no cover - `python -m assessment_service.cli rules check FILE`
    click.Group(commands={"rules": rules_cli, "terms": terms_cli, "credential-keys": credential_keys_cli,
                          "clock": clock_cli})()
