"""Celery task names: the wire contract between the services (which send by name) and workers/."""

CATCH_UP_PROJECTIONS = "cim.projections.catch_up_projections"
