"""Adapters to the world outside the domain: event stores, mailer, wake-up sender."""
