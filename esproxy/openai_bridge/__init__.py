"""An OpenAI-compatible surface over esproxy's endpoints, under `/_esproxy/openai/v1/`.

Elasticsearch's own `openai` service takes a `url`; pointed here, the cluster's `semantic_text`
fields and `inference` processors reach Bedrock through esproxy's endpoints, with their limits,
cache and metrics. The OpenAI `model` is an esproxy inference id.
"""
