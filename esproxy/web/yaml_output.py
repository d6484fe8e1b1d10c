"""YAML as Elasticsearch writes it (`?format=yaml`, Jackson's YAML generator).

A document opens with `---`, string values are double-quoted, keys are plain where YAML allows,
and arrays are block sequences at their key's indentation. JSON-shaped values only, so a few lines
do it exactly; a general YAML library would print strings and floats its own way.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_RESERVED = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"})


def to_yaml(body: Any) -> bytes:
    lines = ["---"]
    if is_container(body) and len(body):
        lines.extend(block(body, 0))
    else:
        lines[0] += " " + scalar(body)
    return ("\n".join(lines) + "\n").encode()


def block(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{pad}{key_text(str(key))}:"
            if is_container(item) and len(item):
                lines.append(head)
                # Sequences sit at their key's indentation, mappings one step in.
                lines.extend(block(item, indent if not isinstance(item, dict) else indent + 2))
            else:
                lines.append(f"{head} {scalar(item)}")
        return lines
    for item in value:
        if is_container(item) and len(item):
            inner = block(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines.extend(inner[1:])
        else:
            lines.append(f"{pad}- {scalar(item)}")
    return lines


def is_container(value: Any) -> bool:
    return isinstance(value, (dict, list, tuple, np.ndarray))


def scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[]"
    # JSON's string escapes are valid in YAML's double-quoted style; numbers print as in JSON.
    return orjson.dumps(value, option=_OPTIONS).decode()


def key_text(key: str) -> str:
    if _PLAIN_KEY.fullmatch(key) and key.lower() not in _RESERVED:
        return key
    return orjson.dumps(key).decode()
