"""The one beat schedule. Every entry expires, so ticks queued while workers were down do not pile up."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from shared import task_names

#: How often beat runs the catch-up: the backstop that heals any lost wake-up (Redis restarted
#: without AOF lost its whole queue in a measurement here). A lost message delays by at most this.
CATCH_UP_EVERY_SECONDS = 3.0
#: How often beat runs the outbox delivery (docs/mail.md): a lost kick delays a mail by at most
#: this, and a row waiting out its backoff is sent within this of becoming due.
DELIVER_OUTBOX_EVERY_SECONDS = 5.0

#: How often eligible students are issued their diploma (and renders due are queued).
ISSUE_DIPLOMAS_EVERY_SECONDS = 60.0

#: How often new completions get their deadline.
SET_DEADLINES_EVERY_SECONDS = 60.0

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "catch-up-projections": {
        "task": task_names.CATCH_UP_PROJECTIONS,
        "schedule": CATCH_UP_EVERY_SECONDS,
        # The tick also brings the status view and the own-store projection up to date.
        "kwargs": {"backstop": True},
        # A tick not started within a few periods is worthless (a newer one is queued): drop it
        # instead of running a backlog of identical catch-ups after an outage.
        "options": {"expires": CATCH_UP_EVERY_SECONDS * 3},
    },
    "dispose-due-records": {
        "task": task_names.DISPOSE_DUE_RECORDS,
        # Once a day at 03:15 UTC, outside office hours. Disposal is due by the day, not the
        # second: a run missed while workers were down is done by the next one.
        "schedule": crontab(hour=3, minute=15),
        # Expire after 6 h: a tick held back by an outage should not start in the middle of the
        # working day on top of the next one (the next day's run catches up anyway).
        "options": {"expires": 6 * 3600},
    },
    "sweep-deadlines": {
        "task": task_names.SWEEP_DEADLINES,
        # Daily at 04:30 UTC (05:30/06:30 in Lund, the same date): reminders and deregistrations
        # are due by the day. Idempotent per student stream, so a second beat changes nothing.
        "schedule": crontab(hour=4, minute=30),
        "options": {"expires": 6 * 3600},
    },
    "set-deadlines": {
        "task": task_names.SET_DEADLINES,
        # New completions get their deadline within a minute (reads only completions not yet set).
        "schedule": SET_DEADLINES_EVERY_SECONDS,
        "options": {"expires": SET_DEADLINES_EVERY_SECONDS * 2},
    },
    "remind-overdue-reviews": {
        "task": task_names.REMIND_OVERDUE_REVIEWS,
        # Daily at 05:00 UTC (06:00/07:00 in Lund): overdue is by the day. Keyed by assessor and
        # milestone date in the outbox (docs/mail.md), so a second beat or a rerun sends nothing.
        "schedule": crontab(hour=5, minute=0),
        "options": {"expires": 6 * 3600},
    },
    "send-coordinator-digests": {
        "task": task_names.SEND_COORDINATOR_DIGESTS,
        # Mondays at 05:30 UTC (06:30/07:30 in Lund, the same Monday). Keyed by coordinator and
        # ISO week: a run later in the week (after an outage) sends what was not sent, once.
        "schedule": crontab(hour=5, minute=30, day_of_week="mon"),
        "options": {"expires": 12 * 3600},
    },
    "issue-diplomas": {
        "task": task_names.ISSUE_DIPLOMAS,
        # Within a minute of eligibility. Decided on each department's diploma stream with its
        # version, so a second beat or a retried tick issues no second number.
        "schedule": ISSUE_DIPLOMAS_EVERY_SECONDS,
        "options": {"expires": ISSUE_DIPLOMAS_EVERY_SECONDS * 2},
    },
    "deliver-outbox": {
        "task": task_names.DELIVER_OUTBOX,
        "schedule": DELIVER_OUTBOX_EVERY_SECONDS,
        "options": {"expires": DELIVER_OUTBOX_EVERY_SECONDS * 3},
    },
}
