"""botocore's User-Agent, built once per client and feature set instead of twice per call.

botocore rebuilds the whole header before every call (and aiobotocore once more while it serializes
the request): OS, Python and SDK versions, config and the call's feature ids, each component
sanitized character by character. That was ~8% of esproxy's CPU per completion call. Only the
feature ids change from one call to the next, so the header is kept per set of them: Bedrock gets
the same string botocore would build.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.context import get_context  # type: ignore[import-untyped, unused-ignore]

# A handful of feature sets ever occur (retry mode, client options); bounded all the same.
MAX_VARIANTS = 64


def memoize_user_agent(client: Any) -> None:
    """Make `client` reuse the User-Agent it built for the same feature ids.

    Leaves the client as it is when botocore no longer has the creator this relies on.
    """
    creator = getattr(client, "_user_agent_creator", None)
    build = getattr(creator, "to_string", None)
    if creator is None or build is None or not hasattr(creator, "_client_features"):
        return
    creator.to_string = memoized(build, lambda: features_of(creator))


def features_of(creator: Any) -> frozenset[str]:
    """The feature ids botocore's `to_string` would put in the header now."""
    context = get_context()
    own = creator._client_features or ()
    return frozenset(own).union(() if context is None else context.features)


def memoized(build: Callable[[], str], key: Callable[[], frozenset[str]]) -> Callable[[], str]:
    built: dict[frozenset[str], str] = {}

    def to_string() -> str:
        features = key()
        text = built.get(features)
        if text is None:
            text = build()
            if len(built) < MAX_VARIANTS:
                built[features] = text
        return text

    return to_string
