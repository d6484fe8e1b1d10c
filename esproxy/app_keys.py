"""Every typed AppKey the application holds: the inventory of its app-scoped components."""

from __future__ import annotations

from aiohttp import web

from esproxy.authorization.base import Authorizer
from esproxy.guard import Guard
from esproxy.inference.chat_service import ChatService
from esproxy.inference.embedding_cache import EmbeddingCache
from esproxy.inference.rate_limits import RateLimiters
from esproxy.inference.service import InferenceService
from esproxy.integrations.amazonbedrock.client import BedrockClients
from esproxy.limits import LimitsCoordinator
from esproxy.openai_bridge.keys import BridgeKeys
from esproxy.readiness import Readiness
from esproxy.secret_cipher import SecretCipher
from esproxy.settings import Settings
from esproxy.storage.base import EndpointStore
from esproxy.store_health import StoreHealth
from esproxy.upstream import UpstreamForwarder

SETTINGS = web.AppKey("settings", Settings)
BEDROCK_ENDPOINT_URL = web.AppKey("bedrock_endpoint_url", str)
BEDROCK_CLIENTS = web.AppKey("bedrock_clients", BedrockClients)
CIPHER = web.AppKey("cipher", SecretCipher)
FORWARDER = web.AppKey("forwarder", UpstreamForwarder)
STORE = web.AppKey("store", EndpointStore)
# The store behind the cache, for health checks that must reach the backend itself.
BACKING_STORE = web.AppKey("backing_store", EndpointStore)
# The store's and its endpoints' readiness (esproxy/store_health.py).
STORE_HEALTH = web.AppKey("store_health", StoreHealth)
INFERENCE_SERVICE = web.AppKey("inference_service", InferenceService)
# Absent when `[cache] enabled` is false.
EMBEDDING_CACHE = web.AppKey("embedding_cache", EmbeddingCache)
CHAT_SERVICE = web.AppKey("chat_service", ChatService)
# Who may call `_inference` (absent when `[auth] mode` is none), and the index no caller may name.
AUTHORIZER = web.AppKey("authorizer", Authorizer)
RESERVED_INDEX = web.AppKey("reserved_index", Guard)
# esproxy's own indices in the cluster, as app.py names them for the guard (alias, concrete).
RESERVED_NAMES = web.AppKey("reserved_names", list)
# Each endpoint's pacing, and what decides it (esproxy/limits).
RATE_LIMITERS = web.AppKey("rate_limiters", RateLimiters)
LIMITS = web.AppKey("limits", LimitsCoordinator)
# What opens the OpenAI-compatible routes to the cluster's own `openai` endpoints.
BRIDGE_KEYS = web.AppKey("bridge_keys", BridgeKeys)
# The checks behind `/_esproxy/ready`; each room adds its own (esproxy/readiness.py).
READINESS = web.AppKey("readiness", Readiness)

# Per request: the Content-Type esproxy answers in, chosen from the request's media types.
RESPONSE_TYPE = web.RequestKey("response_type", str)
# Per request: set on `_stream` routes, whose errors are server-sent events too.
STREAMING = web.RequestKey("streaming", bool)
# Per request: a small admin body the guard read whole to check it, forwarded as it is.
CHECKED_BODY = web.RequestKey("checked_body", bytes)
