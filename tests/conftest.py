"""Shared fixtures: the real OpenSearch upstream, the Bedrock emulator and the proxy under test."""
