"""Bedrock's endpoint, resolved once per client and operation instead of before every call.

botocore runs the endpoint ruleset's machinery before each call (an event, the builtins copied,
each parameter resolved, the provider's cache consulted): ~0.04 ms hot and ~0.2 ms on the cold
core that a streamed chat at concurrency 1 runs on, to get the same URL every time. For
bedrock-runtime the ruleset reads only the client's builtins (region, FIPS, dual stack, the
endpoint URL), which are fixed for a client's life, so its answer is kept per operation. Where
that cannot be known (a context parameter, a handler that may change the builtins per call),
botocore resolves every call as before.
"""

from __future__ import annotations

from typing import Any

# Ruleset parameters whose resolution also registers a User-Agent feature id as a side effect.
FEATURE_PARAMETERS = frozenset({"AccountId", "AccountIdEndpointMode"})


def keep_resolved_endpoints(client: Any) -> None:
    """Make this client resolve each operation's endpoint once, where the answer cannot vary."""
    resolver = getattr(client, "_ruleset_resolver", None)
    if resolver is None or not reads_builtins_only(client, resolver):
        return
    construct = resolver.construct_endpoint
    kept: dict[str, Any] = {}

    async def construct_endpoint(operation_model: Any, call_args: Any, request_context: Any) -> Any:
        name = operation_model.name
        endpoint = kept.get(name)
        if endpoint is None:
            endpoint = await construct(
                operation_model=operation_model,
                call_args=call_args,
                request_context=request_context,
            )
            if not varies_per_call(operation_model):
                kept[name] = endpoint
        return endpoint

    resolver.construct_endpoint = construct_endpoint


def reads_builtins_only(client: Any, resolver: Any) -> bool:
    """Whether the client's ruleset can depend on nothing but its fixed builtins; fails closed."""
    definitions = getattr(resolver, "_param_definitions", None)
    if not isinstance(definitions, dict) or FEATURE_PARAMETERS & set(definitions):
        return False
    if client.meta.service_model.client_context_parameters:
        return False
    service = client.meta.service_model.service_id.hyphenize()
    return not has_handlers(client, f"before-endpoint-resolution.{service}")


def varies_per_call(operation: Any) -> bool:
    return bool(
        operation.static_context_parameters
        or operation.context_parameters
        or getattr(operation, "operation_context_parameters", None)
    )


def has_handlers(client: Any, event: str) -> bool:
    """Whether any handler is registered for `event`; True when that cannot be read."""
    emitter = getattr(client.meta.events, "_emitter", None)
    handlers = getattr(emitter, "_handlers", None)
    search = getattr(handlers, "prefix_search", None)
    if search is None:
        return True
    return bool(list(search(event)))
