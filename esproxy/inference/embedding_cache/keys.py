"""Cache keys: a hash of everything that decides a vector, and of the scope it may be shared in.

The integration names what decides its vectors (`EmbeddingIdentity.spec`: provider, model, input
type, truncation, dimensions, embedding type, normalisation); the text is the one actually sent,
after truncation. A changed setting is a different spec, so `_update` starts a new key space.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

KEY_BYTES = 32


@dataclass(frozen=True)
class EmbeddingIdentity:
    """What an integration says about one embedding request so that it can be cached.

    `texts` are the inputs as the provider will see them, in input order; `batch_size` is how many
    inputs one provider call takes (to count the calls a hit saves).
    """

    spec: bytes
    texts: Sequence[str]
    element_type: str
    batch_size: int = 1


def canonical_spec(fields: Mapping[str, Any]) -> bytes:
    """The spec as sorted compact JSON, so equal settings always hash alike."""
    return orjson.dumps(dict(fields), option=orjson.OPT_SORT_KEYS)


def scope_of(scope: str, inference_id: str) -> bytes:
    """`endpoint` keeps entries to one endpoint; `model` shares them wherever the spec is equal."""
    return b"model" if scope == "model" else b"endpoint\x00" + inference_id.encode()


def derive_key(scope: bytes, spec: bytes, text: str) -> bytes:
    digest = hashlib.blake2b(digest_size=KEY_BYTES, person=b"esproxy-embed-1")
    for part in (scope, spec, text.encode("utf-8", "surrogatepass")):
        # Length-prefixed, so no two different triples hash the same bytes.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()
