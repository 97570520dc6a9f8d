"""`flask --app assessment_service projections ...`: rebuild a projection, show checkpoints and lag."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from assessment_service.bootstrap import AssessmentContext

projections_cli = AppGroup("projections", help="Rebuild and inspect the read-model projections.")


def _context() -> AssessmentContext:
    return current_app.extensions["cim.assessment"]


@projections_cli.command("status")
def status() -> None:
    """Show each projection's checkpoint, the feed head and the lag."""
    for entry in _context().runner.status():
        head = "?" if entry.head is None else entry.head
        lag = "?" if entry.lag is None else entry.lag
        click.echo(f"{entry.name:<14} checkpoint={entry.checkpoint:<10} head={head:<10} lag={lag}")


@projections_cli.command("rebuild")
@click.argument("name", required=False)
def rebuild(name: str | None) -> None:
    """Rebuild NAME (or every projection) from position 0."""
    runner = _context().runner
    names = [name] if name else None
    try:
        selected = runner.resolve_names(names)
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="NAME") from None
    head = runner.feed.head()
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
    click.echo(f"Applied {applied} events; checkpoints: {runner.checkpoints()}")
