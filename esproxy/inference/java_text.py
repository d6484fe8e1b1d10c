"""Values printed the way Java prints them inside Elasticsearch's error messages.

`Double.toString`, `Map.toString` in `java.util.HashMap` iteration order, `List.toString`, and the
Java class a parsed JSON value would have. Nothing here knows about HTTP or settings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

INT_RANGE = range(-(2**31), 2**31)
LONG_RANGE = range(-(2**63), 2**63)
_DEFAULT_TABLE = 16
_LOAD_FACTOR = 0.75
_TRIMMED = "".join(chr(code) for code in range(0x21))


def java_double(value: float) -> str:
    """`Double.toString`: shortest round-trip digits, scientific below 1e-3 and from 1e7."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return f"{sign}0.0"
    digits, exponent = shortest_digits(abs(value))
    if 1e-3 <= abs(value) < 1e7:
        return sign + plain_notation(digits, exponent)
    mantissa = digits[0] + "." + (digits[1:] or "0")
    return f"{sign}{mantissa}E{exponent}"


def shortest_digits(value: float) -> tuple[str, int]:
    """Significant digits and the power of ten of the first one (Python's repr is shortest too)."""
    mantissa, _, exp = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    exponent = int(exp or 0) + len(whole) - 1
    digits = (whole + fraction).lstrip("0")
    exponent -= len(whole + fraction) - len((whole + fraction).lstrip("0"))
    return digits.rstrip("0") or "0", exponent


def plain_notation(digits: str, exponent: int) -> str:
    if exponent < 0:
        return "0." + "0" * (-exponent - 1) + digits
    whole = digits[: exponent + 1].ljust(exponent + 1, "0")
    return whole + "." + (digits[exponent + 1 :] or "0")


def java_trim(text: str) -> str:
    """`String.trim()`: strips code points up to U+0020, unlike `str.strip()`."""
    return text.strip(_TRIMMED)


def java_enum_name(text: str) -> str:
    """The constant name ES's `valueOf(name.trim().toUpperCase(Locale.ROOT))` looks up."""
    return java_trim(text).upper()


def java_type(value: Any) -> str:
    """The simple class name Jackson's map parsing gives a JSON value (`null` for None)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        if value in INT_RANGE:
            return "Integer"
        return "Long" if value in LONG_RANGE else "BigInteger"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, str):
        return "String"
    if isinstance(value, Mapping):
        return "HashMap"
    return "ArrayList"


# Deeper values are cut short in messages: Java would print them whole, Python's stack cannot.
MAX_RENDER_DEPTH = 64
# Map entries whose values never appear in a message, wherever the map turns up in a body.
SECRET_NAMES = frozenset({"access_key", "secret_key"})
REDACTED = "<redacted>"


def render_java_value(value: Any, depth: int = 0) -> str:
    """`String.valueOf(value)` for a value parsed from JSON into Java maps and lists."""
    if depth > MAX_RENDER_DEPTH and isinstance(value, Mapping | list | tuple):
        return "{...}" if isinstance(value, Mapping) else "[...]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, Mapping):
        return render_java_map(value, depth=depth)
    return render_java_list(value, depth)


def render_java_list(values: Iterable[Any], depth: int = 0) -> str:
    return "[" + ", ".join(render_java_value(v, depth + 1) for v in values) + "]"


def render_java_map(
    mapping: Mapping[str, Any], *, table_size: int | None = None, depth: int = 0
) -> str:
    """`HashMap.toString()`; `table_size` defaults to what parsing `mapping` alone would build."""
    size = table_size or grown_table_size(len(mapping))
    keys = hash_map_order(list(mapping), size)
    return "{" + ", ".join(f"{k}={render_entry(k, mapping[k], depth)}" for k in keys) + "}"


def render_entry(key: str, value: Any, depth: int) -> str:
    return REDACTED if key in SECRET_NAMES else render_java_value(value, depth + 1)


def grown_table_size(entries: int) -> int:
    """The bucket count of a `new HashMap<>()` after `entries` puts (removals never shrink it)."""
    size = _DEFAULT_TABLE
    while entries > _LOAD_FACTOR * size:
        size *= 2
    return size


def copied_table_size(entries: int) -> int:
    """The bucket count of `new HashMap<>(map)` on JDK 19+: ceil(n / 0.75), up to a power of 2."""
    wanted = math.ceil(entries / _LOAD_FACTOR)
    size = 1
    while size < wanted:
        size *= 2
    return size


def hash_map_order(keys: Sequence[str], table_size: int) -> list[str]:
    """Iteration order of a HashMap holding `keys` (put in this order): bucket, then insertion.

    Tree bins (8 or more keys in one bucket) are not modelled; maps in requests never get there.
    """
    buckets: dict[int, list[str]] = {}
    for key in keys:
        buckets.setdefault(spread(string_hash(key)) & (table_size - 1), []).append(key)
    return [key for index in sorted(buckets) for key in buckets[index]]


def string_hash(text: str) -> int:
    """`String.hashCode()` over UTF-16 code units, as an unsigned 32-bit value."""
    units = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return h


def spread(h: int) -> int:
    """`HashMap.hash`: the high half folded into the low half, `h ^ (h >>> 16)`."""
    return h ^ (h >> 16)


def lucene_similarity(a: str, b: str) -> float:
    """Lucene's `LevenshteinDistance.getDistance`: 1 - edits / the longer length."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            cost = previous[j - 1] + (char_a != char_b)
            current.append(min(previous[j] + 1, current[j - 1] + 1, cost))
        previous = current
    return 1 - previous[-1] / max(len(a), len(b), 1)
