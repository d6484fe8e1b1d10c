"""Adapters selected by an endpoint's `service` value."""
