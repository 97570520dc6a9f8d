"""Assessment use cases. For now: keep the read models caught up with the intake feed."""

from __future__ import annotations

import logging

from assessment_service.bootstrap import AssessmentContext
from assessment_service.logs import correlation_id_var

log = logging.getLogger(__name__)

#: A catch-up stops after this long and leaves the rest to the next wake-up or beat tick, so a
#: task never outlives the broker's visibility timeout (see workers/celery_app.py).
CATCH_UP_BUDGET_SECONDS = 30.0


def catch_up_projections(ctx: AssessmentContext, correlation_id: str | None = None) -> int:
    """Apply every intake event past each projection's checkpoint. Safe to run twice or at once."""
    token = correlation_id_var.set(correlation_id)
    try:
        applied = ctx.runner.catch_up(time_budget=CATCH_UP_BUDGET_SECONDS)
        if applied:
            log.info("projections caught up", extra={"applied": applied})
        return applied
    finally:
        correlation_id_var.reset(token)
