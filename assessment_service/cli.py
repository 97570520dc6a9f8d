"""`flask --app assessment_service projections ...`: rebuild a projection, show checkpoints and lag.

Two runners: the intake feed's projections, and `assignments`, fed by the assessment service's own
event store."""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import AppGroup

from assessment_service.bootstrap import AssessmentContext
from shared.projection import ProjectionRunner

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
    selected = runner.resolve_names(names)
    head = runner.feed.head()
    started = time.monotonic()
    runner.reset(selected)
    done = 0
    with click.progressbar(length=max(head, 1), label=f"Rebuilding {', '.join(selected)}") as bar:

        def advance(_applied: int, last_position: int) -> None:
            nonlocal done
            step = min(last_position, head) - done
            if step > 0:
                bar.update(step)
                done += step

        applied = runner.catch_up(selected, on_batch=advance)
        bar.update(max(head - done, 0))
    took = time.monotonic() - started
    rate = f" ({head / took:,.0f} events/s)" if head and took > 0 else ""
    click.echo(f"Rebuilt {', '.join(selected)} up to position {head} in {took:.2f} s{rate}: "
               f"{applied} event applications; checkpoints: {runner.checkpoints()}")
