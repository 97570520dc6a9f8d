"""The assessment read models projected from the intake feed; one checkpoint each."""

from __future__ import annotations

from assessment_service.projections import (
    activities,
    assignments,
    deadlines,
    diplomas,
    presentations,
    report_rounds,
    reports,
    review_queue,
    statistics,
    students,
)
from assessment_service.projections.base import metadata
from shared.catalogue import Catalogue
from shared.projection import Projection


def build(catalogue: Catalogue) -> tuple[Projection, ...]:
    """The read models, the review queue checking reports against `catalogue`'s rule sets."""
    return (
        students.PROJECTION,
        activities.PROJECTION,
        reports.PROJECTION,
        review_queue.build(catalogue.rule_set),
        report_rounds.PROJECTION,
        deadlines.BASIS,
        statistics.PROJECTION,
    )


def own(catalogue: Catalogue) -> tuple[Projection, ...]:
    """The read models of the assessment service's OWN store (staff decisions, presentations),
    eligibility for the diploma following `catalogue`'s rule sets."""
    return (*assignments.OWN, presentations.build(catalogue.rule_set), deadlines.PROJECTION, diplomas.PROJECTION,
            statistics.OWN, review_queue.build_rulings(catalogue.rule_set))


#: The read models with the shipped departments file's rule sets (read on first use).
ALL: tuple[Projection, ...] = (
    students.PROJECTION,
    activities.PROJECTION,
    reports.PROJECTION,
    review_queue.PROJECTION,
    report_rounds.PROJECTION,
    deadlines.BASIS,
    statistics.PROJECTION,
)

__all__ = ["ALL", "build", "metadata", "own"]
