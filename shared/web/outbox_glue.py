"""The web side of the outbox (shared/outbox.py): the app's Outbox, built on first use in the
identity database, and the kick after an enqueue.

With CIM_WAKEUP=celery (production, `make run`) the kick queues the delivery task by name (the
workers send; the web process never talks SMTP). With CIM_WAKEUP=none (unit tests, a single
process without workers) the kick delivers the due rows at once through the app's mailer
(`app.extensions["cim.mailer"]`), so a test sees the message when the request returns.
"""

from __future__ import annotations

import logging

from flask import current_app

from shared import task_names
from shared.clock import SystemClock
from shared.config import Settings
from shared.outbox import Message, Outbox, smtp_sender

log = logging.getLogger(__name__)


def _settings() -> Settings:
    return current_app.config["CIM_SETTINGS"]


def outbox() -> Outbox:
    """This app's outbox (tests may set `app.extensions["cim.outbox"]`)."""
    found = current_app.extensions.get("cim.outbox")
    if found is None:
        settings = _settings()
        ident = current_app.extensions.get("cim.identity")
        clock = ident.accounts.clock if ident is not None else SystemClock()
        found = Outbox.from_url(settings.identity_db_url, settings.identity_secret, clock=clock)
        found.create_schema()
        current_app.extensions["cim.outbox"] = found
    return found


def kick() -> None:
    """Tell the workers there is mail to deliver. Never raises."""
    settings = _settings()
    if settings.wakeup == "celery":
        kicker = current_app.extensions.get("cim.outbox_kick")
        if kicker is None:
            from shared.adapters.celery_wakeup import CeleryWakeUp

            kicker = CeleryWakeUp(settings.redis_url, task_name=task_names.DELIVER_OUTBOX,
                                  pending_key=task_names.OUTBOX_PENDING_KEY,
                                  pending_ttl_ms=task_names.OUTBOX_PENDING_TTL_MS)
            current_app.extensions["cim.outbox_kick"] = kicker
        kicker.after_commit()
        return
    try:
        outbox().deliver_due(smtp_sender(current_app.extensions["cim.mailer"]))
    except Exception:  # the row stays due; the next kick or a worker sends it
        log.exception("outbox: in-process delivery failed")


def enqueue(message: Message) -> bool:
    """Enqueue `message` and kick the delivery. False if its key was there already."""
    added = outbox().enqueue(message)
    if added:
        kick()
    return added
