"""`chunking_settings` as ES 9.x checks, stores and echoes them."""

import pytest

from esproxy.errors import ProxyError
from esproxy.inference.chunking import parse_chunking_settings

PLAINTEXT = [r"(?<!\n)\n\n(?!\n)", r"(?<!\n)\n(?!\n)"]


@pytest.mark.parametrize("given", [None, {}])
def test_missing_or_empty_settings_become_the_sentence_default(given):
    assert list(parse_chunking_settings(given).items()) == [
        ("strategy", "sentence"),
        ("max_chunk_size", 250),
        ("sentence_overlap", 1),
    ]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (
            {"overlap": 50, "max_chunk_size": 100, "strategy": "word"},
            [("strategy", "word"), ("max_chunk_size", 100), ("overlap", 50)],
        ),
        (
            {"strategy": "word", "max_chunk_size": 1000, "overlap": 1},
            [("strategy", "word"), ("max_chunk_size", 1000), ("overlap", 1)],
        ),
        (
            {"sentence_overlap": 0, "strategy": "sentence", "max_chunk_size": 20},
            [("strategy", "sentence"), ("max_chunk_size", 20), ("sentence_overlap", 0)],
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 300, "sentence_overlap": None},
            [("strategy", "sentence"), ("max_chunk_size", 300), ("sentence_overlap", 1)],
        ),
        ({"strategy": "none", "max_chunk_size": 5}, [("strategy", "none")]),
        (
            {"strategy": "recursive", "max_chunk_size": 10},
            [("strategy", "recursive"), ("max_chunk_size", 10), ("separators", PLAINTEXT)],
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 50, "separators": ["\n\n", "."]},
            [("strategy", "recursive"), ("max_chunk_size", 50), ("separators", ["\n\n", "."])],
        ),
    ],
)
def test_valid_settings_are_stored_in_es_key_order(given, stored):
    assert list(parse_chunking_settings(given).items()) == stored


def test_a_separator_group_is_stored_as_its_separators():
    stored = parse_chunking_settings(
        {"strategy": "recursive", "max_chunk_size": 50, "separator_group": " Markdown "}
    )
    assert stored["separators"][:2] == ["\n# ", "\n## "]
    assert stored["separators"][-1] == "\n" + r"^(?!\s*$).*\n={1,}\n"
    assert len(stored["separators"]) == 8


@pytest.mark.parametrize(
    ("given", "error_type", "reason"),
    [
        (
            {"max_chunk_size": 100},
            "illegal_argument_exception",
            "Can't generate Chunker without ChunkingStrategy provided",
        ),
        (
            {"strategy": "paragraph"},
            "illegal_argument_exception",
            "Invalid chunkingStrategy paragraph",
        ),
        (
            {"strategy": "Sentence"},
            "illegal_argument_exception",
            "Invalid chunkingStrategy Sentence",
        ),
        ({"strategy": 5}, "illegal_argument_exception", "Invalid chunkingStrategy 5"),
        (
            {"strategy": "sentence"},
            "validation_exception",
            "Validation Failed: 1: [chunking_settings] does not contain the required setting "
            "[max_chunk_size];",
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 10, "sentence_overlap": 2},
            "validation_exception",
            "Validation Failed: 1: [chunking_settings] Invalid value [10.0]. [max_chunk_size] must "
            "be greater than or equal to [20.0];2: sentence_overlap[2] must be either 0 or 1;",
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 0},
            "validation_exception",
            "Validation Failed: 1: [chunking_settings] Invalid value [0]. [max_chunk_size] must be "
            "a positive integer;",
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 250.0, "sentence_overlap": "1"},
            "validation_exception",
            "Validation Failed: 1: field [max_chunk_size] is not of the expected type. The value "
            "[250.0] cannot be converted to a [Integer];2: field [sentence_overlap] is not of the "
            "expected type. The value [1] cannot be converted to a [Integer];",
        ),
        (
            # Unknown keys come first, listed in the order of ES's HashMap copy.
            {
                "strategy": "sentence",
                "max_chunk_size": 5,
                "sentence_overlap": 1,
                "foo": 1,
                "bar": 2,
            },
            "validation_exception",
            "Validation Failed: 1: Sentence based chunking settings can not have the following "
            "settings: [bar, foo];2: [chunking_settings] Invalid value [5.0]. [max_chunk_size] "
            "must be greater than or equal to [20.0];",
        ),
        (
            {"strategy": "word", "max_chunk_size": 100, "overlap": 51},
            "validation_exception",
            "Validation Failed: 1: [chunking_settings] Invalid value [51.0]. [overlap] must be "
            "less than or equal to [50.0];",
        ),
        (
            {"strategy": "word", "max_chunk_size": 100},
            "validation_exception",
            "Validation Failed: 1: [chunking_settings] does not contain the required setting "
            "[overlap];",
        ),
        (
            # ES reads overlap only once max_chunk_size is valid.
            {"strategy": "word", "max_chunk_size": 9, "zzz": 0, "aaa": 0},
            "validation_exception",
            "Validation Failed: 1: Word based chunking settings can not have the following "
            "settings: [aaa, zzz];2: [chunking_settings] Invalid value [9.0]. [max_chunk_size] "
            "must be greater than or equal to [10.0];",
        ),
        (
            {
                "strategy": "recursive",
                "max_chunk_size": 50,
                "separators": [],
                "separator_group": "x",
            },
            "validation_exception",
            "Validation Failed: 1: [chunking_settings] Invalid value [x] received. "
            "[separator_group] must be one of [markdown, plaintext];2: Recursive chunking settings "
            "can not have an empty list of separators;",
        ),
        (
            {
                "strategy": "recursive",
                "max_chunk_size": 50,
                "separators": ["a"],
                "separator_group": "markdown",
            },
            "validation_exception",
            "Validation Failed: 1: Recursive chunking settings can not have both separators and "
            "separator_set;",
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 50, "separators": [1, "a", None]},
            "validation_exception",
            "Validation Failed: 1: field [separators] is not of the expected type. The value [1] "
            "cannot be converted to a [String];2: field [separators] is not of the expected type. "
            "The value [null] cannot be converted to a [String];",
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 50, "separators": "\n"},
            "validation_exception",
            "Validation Failed: 1: field [separators] is not of the expected type. The value [\n] "
            "cannot be converted to a [List];",
        ),
        (
            "sentence",
            "status_exception",
            "field [chunking_settings] is not of the expected type. The value [sentence] cannot be "
            "converted to a [Map]",
        ),
    ],
)
def test_invalid_settings_fail_with_es_texts(given, error_type, reason):
    with pytest.raises(ProxyError) as raised:
        parse_chunking_settings(given)
    assert (raised.value.status, raised.value.error_type, raised.value.reason) == (
        400,
        error_type,
        reason,
    )
