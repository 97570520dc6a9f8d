"""The assessment service's web layer: JSON API and pages."""
