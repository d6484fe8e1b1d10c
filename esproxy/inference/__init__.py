"""Integration-neutral inference: models, request schemas, the service and rate limits."""
