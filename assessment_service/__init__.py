"""The assessment service: serves the read side (review queue, student overviews) projected from
the intake feed, and records what staff decide (assignment, conflicts of interest) and which staff
viewed whose personal data in its own store. Never imports intake_service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from shared.config import ROOT, Settings


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the assessment app. Nothing connects at import; `overrides` swap in fakes for tests
    (feed=, batch_size=, context=, identity=, clock=). Importing review_pages and round_pages adds
    their routes to the pages blueprint."""
    import assessment_service.web.rule_set_pages as rule_set_pages  # the rule sets staff read
    from assessment_service.bootstrap import build_context
    from assessment_service.cli import projections_cli, rules_cli
    from assessment_service.web import api, pages, privacy, review_pages, reviews_api, round_pages  # noqa: F401
    from shared.clock import SystemClock
    from shared.web.auth import identity_from_settings
    from shared.web.setup import configure_web

    settings = settings or Settings.from_env()
    settings.check_production_safety()
    # One stylesheet for both services' pages, kept in shared/static.
    app = Flask(__name__, static_folder=str(ROOT / "shared" / "static"))
    context = overrides.get("context") or build_context(settings, **overrides)
    app.extensions["cim.assessment"] = context
    app.extensions["cim.department_of"] = department_finder(context)
    # Report PDFs come from the intake (assessment_service/intake_files.py); tests swap this.
    from assessment_service.intake_files import http_fetcher

    app.extensions["cim.intake_files"] = overrides.get("intake_files") or http_fetcher(settings)
    identity = overrides.get("identity") or identity_from_settings(settings, overrides.get("clock") or SystemClock())
    # Rulings on new activity kinds; the queue table, bulk assignment and the agenda; presentations.
    from assessment_service.web import (  # noqa: F401  # noqa: F401  (diploma_api: on api.bp)
        diploma_api,
        diploma_pages,
        presentation_api,
        presentation_pages,
        queue_pages,
        ruling_api,
        ruling_pages,
        statistics_pages,
    )

    configure_web(app, settings, identity, name="assessment",
                  api_blueprints=(api.bp, ruling_api.bp, queue_pages.api_bp, rule_set_pages.api_bp))
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(privacy.bp)
    app.register_blueprint(ruling_api.bp)  # rulings on new activity kinds
    app.register_blueprint(ruling_pages.bp)
    app.register_blueprint(presentation_pages.bp)
    app.register_blueprint(queue_pages.bp)
    app.register_blueprint(queue_pages.api_bp)
    app.register_blueprint(rule_set_pages.bp)
    app.register_blueprint(rule_set_pages.api_bp)
    from assessment_service import calendar_feeds, deadline_services
    from assessment_service.cli import clock_cli, credential_keys_cli, terms_cli
    from assessment_service.web import deadline_pages

    app.register_blueprint(deadline_pages.bp)  # deadlines, what if, the personal calendar (issue 13)
    app.cli.add_command(terms_cli)  # check a term calendar before deploying it
    app.cli.add_command(credential_keys_cli)  # the diploma credentials' signing keys
    app.cli.add_command(clock_cli)  # the clock guard of the date-driven jobs
    calendar_feeds.create_schema(context.engine)
    deadline_services.calendar(context)  # a broken terms file stops the start, naming the term and field
    from assessment_service.web import mail_pages  # the outbox and the mail templates (docs/mail.md)

    app.register_blueprint(mail_pages.bp)
    app.register_blueprint(diploma_pages.bp)  # diplomas and their public verification (docs/diplomas.md)
    from assessment_service.web import admin_pages  # accounts, roles and API tokens (issue 16)

    app.register_blueprint(admin_pages.bp)
    from shared.web import staff_setup  # the set-up link of a new member of staff (docs/security.md)

    app.register_blueprint(staff_setup.bp)
    app.register_blueprint(statistics_pages.bp)  # CIM in numbers (docs/statistics.md)
    install_readiness(app, settings, context)
    app.cli.add_command(projections_cli)
    app.cli.add_command(rules_cli)  # check a departments file before deploying it
    return app


def install_readiness(app: Flask, settings: Settings, context: Any) -> None:
    """/health and /ready (shared/web/health.py): the read-model database, Redis, the intake
    feed, and every projection within READY_MAX_LAG events of the feed head."""
    import sqlalchemy as sa

    from shared.web.health import READY_MAX_LAG, install_health, redis_check, storage_checks
    from shared.web.metrics import install_metrics

    def database() -> str | None:
        with context.reader.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return None

    def feed() -> str | None:
        context.feed.head()
        return None

    def projections() -> str | None:
        behind = []
        for entry in [*context.runner.status(), *context.own_runner.status()]:
            if entry.lag is None:
                return "feed head unknown"
            if entry.lag > READY_MAX_LAG:
                behind.append(f"{entry.name} lag {entry.lag} > {READY_MAX_LAG}")
        return "; ".join(behind) or None

    install_health(app, {"database": database, "redis": redis_check(settings.redis_url), "feed": feed,
                         "projections": projections, **storage_checks(settings.assessment_db_url)})

    def projection_metrics() -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        lag = GaugeMetricFamily("cim_projection_lag_events", "Events between the feed head and the checkpoint",
                                labels=["projection"])
        checkpoint = GaugeMetricFamily("cim_projection_checkpoint", "Last feed position applied",
                                       labels=["projection"])
        for entry in [*context.runner.status(), *context.own_runner.status()]:
            checkpoint.add_metric([entry.name], entry.checkpoint)
            if entry.lag is not None:
                lag.add_metric([entry.name], entry.lag)
        from shared.web.outbox_glue import outbox_metrics

        return [lag, checkpoint, *outbox_metrics()]

    install_metrics(app, "assessment", projection_metrics)


def department_finder(context: Any) -> Callable[[str], str | None]:
    from assessment_service import queries
    from shared.validation import is_uuid

    def department_of(student_id: str) -> str | None:
        if not is_uuid(student_id):
            return None
        with context.reader.connect() as conn:
            return queries.department_of(conn, student_id)

    return department_of
