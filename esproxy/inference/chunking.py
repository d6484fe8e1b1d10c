"""`chunking_settings` of text_embedding endpoints, checked and echoed as Elasticsearch 9.x does.

Follows the newest ES source (x-pack core `ChunkingSettingsBuilder`): `word` and `recursive` have
a lower bound only, where the reference's older versions also capped `max_chunk_size` at 300.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import Schema, ValidationError, validates_schema

from esproxy.errors import BadRequest, ValidationFailed
from esproxy.inference.java_text import (
    copied_table_size,
    grown_table_size,
    hash_map_order,
    java_enum_name,
    render_java_value,
)
from esproxy.inference.setting_fields import (
    CHUNKING_SETTINGS,
    JavaEnum,
    JavaPositiveInteger,
    JavaSetting,
    JavaStringList,
    SettingsSchema,
    load_settings,
    require_map,
)

DEFAULT_CHUNKING = {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
# What ES assumes for endpoints stored before 8.16, which have no chunking_settings at all.
LEGACY_CHUNKING = {"strategy": "word", "max_chunk_size": 250, "overlap": 100}

SEPARATOR_GROUPS = {
    "plaintext": [r"(?<!\n)\n\n(?!\n)", r"(?<!\n)\n(?!\n)"],
    "markdown": [
        "\n# ",
        "\n## ",
        "\n### ",
        "\n#### ",
        "\n##### ",
        "\n###### ",
        "\n" + r"^(?!\s*$).*\n-{1,}\n",
        "\n" + r"^(?!\s*$).*\n={1,}\n",
    ],
}


def illegal_argument(reason: str) -> BadRequest:
    return BadRequest(reason, error_type="illegal_argument_exception")


def parse_chunking_settings(value: Any) -> dict[str, Any]:
    """The settings to store and echo, in ES's key order; `{}`, null or absent give the default."""
    settings = require_map(value, CHUNKING_SETTINGS)
    if not settings:
        return dict(DEFAULT_CHUNKING)
    if "strategy" not in settings:
        raise illegal_argument("Can't generate Chunker without ChunkingStrategy provided")
    strategy = render_java_value(settings["strategy"])
    parser = STRATEGIES.get(strategy)
    if parser is None:
        raise illegal_argument(f"Invalid chunkingStrategy {strategy}")
    return parser(settings)


def parse_none(settings: Mapping[str, Any]) -> dict[str, Any]:
    # ES's builder returns its `none` instance without reading the map, so other keys are ignored.
    return {"strategy": "none"}


class WordSchema(SettingsSchema):
    max_chunk_size = JavaPositiveInteger(CHUNKING_SETTINGS, required=True, minimum=10)

    @validates_schema(pass_original=True)
    def check_overlap(self, data: dict[str, Any], original: Mapping[str, Any], **_: Any) -> None:
        # ES reads `overlap` only once `max_chunk_size` is valid; its limit depends on it.
        overlap = JavaPositiveInteger(
            CHUNKING_SETTINGS,
            required=True,
            maximum=data["max_chunk_size"] // 2,
            data_key="overlap",
        )
        try:
            overlap.deserialize(original.get("overlap"))
        except ValidationError as error:
            raise ValidationError(error.messages, field_name="overlap") from None


def parse_word(settings: Mapping[str, Any]) -> dict[str, Any]:
    loaded = load_strategy(WordSchema(), settings, "Word based", extra={"overlap"})
    return {"strategy": "word", **loaded, "overlap": settings["overlap"]}


class SentenceOverlap(JavaSetting):
    java_class = "Integer"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def check(self, value: Any) -> Any:
        if value not in (0, 1):
            raise ValidationError(f"sentence_overlap[{value}] must be either 0 or 1")
        return value


class SentenceSchema(SettingsSchema):
    max_chunk_size = JavaPositiveInteger(CHUNKING_SETTINGS, required=True, minimum=20)
    sentence_overlap = SentenceOverlap(CHUNKING_SETTINGS)


def parse_sentence(settings: Mapping[str, Any]) -> dict[str, Any]:
    loaded = load_strategy(SentenceSchema(), settings, "Sentence based")
    overlap = 1 if loaded["sentence_overlap"] is None else loaded["sentence_overlap"]
    return {
        "strategy": "sentence",
        "max_chunk_size": loaded["max_chunk_size"],
        "sentence_overlap": overlap,
    }


def separator_group(name: str) -> str:
    key = java_enum_name(name).lower()
    if key not in SEPARATOR_GROUPS:
        raise ValueError(name)
    return key


class RecursiveSchema(SettingsSchema):
    max_chunk_size = JavaPositiveInteger(CHUNKING_SETTINGS, required=True, minimum=10)
    separator_group = JavaEnum(CHUNKING_SETTINGS, separator_group, list(SEPARATOR_GROUPS))
    separators = JavaStringList(CHUNKING_SETTINGS)

    @validates_schema(skip_on_field_errors=False)
    def check_separators(self, data: dict[str, Any], **_: Any) -> None:
        group, separators = data.get("separator_group"), data.get("separators")
        problems = []
        if group is not None and separators is not None:
            problems.append(
                "Recursive chunking settings can not have both separators and separator_set"
            )
        if group is None and separators == []:
            problems.append("Recursive chunking settings can not have an empty list of separators")
        if problems:
            raise ValidationError(problems)


def parse_recursive(settings: Mapping[str, Any]) -> dict[str, Any]:
    loaded = load_strategy(RecursiveSchema(), settings, "Recursive")
    group, separators = loaded["separator_group"], loaded["separators"]
    if group is not None:
        separators = SEPARATOR_GROUPS[group]
    elif separators is None:
        separators = SEPARATOR_GROUPS["plaintext"]
    return {
        "strategy": "recursive",
        "max_chunk_size": loaded["max_chunk_size"],
        "separators": list(separators),
    }


def load_strategy(
    schema: Schema,
    settings: Mapping[str, Any],
    label: str,
    extra: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any]:
    """ES lists keys the strategy does not know first, then the field errors, all in one error."""
    unknown = unknown_keys(settings, set(schema.fields) | {"strategy"} | set(extra))
    first = [f"{label} chunking settings can not have the following settings: {unknown}"]
    first = first if unknown != "[]" else []
    try:
        loaded = load_settings(schema, settings)
    except ValidationFailed as failed:
        raise ValidationFailed(first + failed.messages) from None
    if first:
        raise ValidationFailed(first)
    return loaded


def unknown_keys(settings: Mapping[str, Any], known: set[str]) -> str:
    """`Arrays.toString` of the unknown keys, in the order of ES's `new HashMap<>(map)` copy."""
    original = hash_map_order(list(settings), grown_table_size(len(settings)))
    copied = hash_map_order(original, copied_table_size(len(settings)))
    return "[" + ", ".join(key for key in copied if key not in known) + "]"


STRATEGIES: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "none": parse_none,
    "word": parse_word,
    "sentence": parse_sentence,
    "recursive": parse_recursive,
}
