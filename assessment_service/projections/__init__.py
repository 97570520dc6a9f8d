"""The assessment read models projected from the intake feed; one checkpoint each."""

from __future__ import annotations

from assessment_service.projections import activities, reports, review_queue, students
from assessment_service.projections.base import metadata
from shared.projection import Projection

ALL: tuple[Projection, ...] = (
    students.PROJECTION,
    activities.PROJECTION,
    reports.PROJECTION,
    review_queue.PROJECTION,
)

__all__ = ["ALL", "metadata"]
