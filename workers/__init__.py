"""Celery adapters only: the app, house defaults, the beat schedule and thin tasks."""
