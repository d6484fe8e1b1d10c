"""Shared fixtures: the real OpenSearch upstream, the Bedrock emulator and the proxy under test."""

from tests.opensearch_node import opensearch_url  # noqa: F401
