"""The kernel both services share: events, the event store, settings and errors (no Flask here)."""
