"""esproxy: an Elasticsearch-compatible sidecar serving `_inference` for Amazon Bedrock."""

__version__ = "0.1.0"
