"""Java renderings inside ES messages; expectations were printed by a JVM (jshell)."""

import pytest

from esproxy.inference.java_text import (
    copied_table_size,
    grown_table_size,
    hash_map_order,
    java_double,
    java_enum_name,
    java_type,
    render_java_map,
    render_java_value,
    string_hash,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (1.5, "1.5"),
        (1.0e-4, "1.0E-4"),
        (1.0e7, "1.0E7"),
        (0.001, "0.001"),
        (9999999.0, "9999999.0"),
        (123.456, "123.456"),
        (1.0e21, "1.0E21"),
        (1.0e-7, "1.0E-7"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-0.0, "-0.0"),
        (0.0, "0.0"),
        (100.0, "100.0"),
        (2.5e-3, "0.0025"),
        (-4.5e-4, "-4.5E-4"),
        (1.7976931348623157e308, "1.7976931348623157E308"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (float("nan"), "NaN"),
    ],
)
def test_doubles_print_as_java_double_to_string(value, text):
    assert java_double(value) == text


@pytest.mark.parametrize(
    ("keys", "order"),
    [
        (["extra_key"], ["extra_key"]),
        (["b", "a", "c"], ["a", "b", "c"]),
        (
            ["service", "service_settings", "task_settings", "extra_key", "another"],
            ["service_settings", "service", "another", "task_settings", "extra_key"],
        ),
        (["foo", "bar", "baz", "qux", "quux"], ["bar", "quux", "qux", "foo", "baz"]),
        (["é", "😀", "x"], ["😀", "x", "é"]),
        (
            [
                "zeta",
                "alpha",
                "mid",
                "omega",
                "beta",
                "gamma",
                "delta",
                "epsilon",
                "eta",
                "theta",
                "iota",
                "kappa",
                "lambda",
                "mu",
            ],
            [
                "zeta",
                "iota",
                "delta",
                "mu",
                "mid",
                "theta",
                "omega",
                "epsilon",
                "lambda",
                "eta",
                "alpha",
                "kappa",
                "beta",
                "gamma",
            ],
        ),
    ],
)
def test_keys_iterate_in_java_hash_map_order(keys, order):
    assert hash_map_order(keys, grown_table_size(len(keys))) == order


def test_a_map_keeps_the_table_it_grew_to_after_removals():
    # 14 puts grow the table to 32 buckets; removing 11 keys does not shrink it.
    assert hash_map_order(["zeta", "lambda", "mu"], grown_table_size(14)) == [
        "zeta",
        "mu",
        "lambda",
    ]
    assert hash_map_order(["zeta", "lambda", "mu"], grown_table_size(3)) == ["zeta", "lambda", "mu"]


@pytest.mark.parametrize(("entries", "size"), [(0, 16), (12, 16), (13, 32), (24, 32), (25, 64)])
def test_tables_double_past_three_quarters_full(entries, size):
    assert grown_table_size(entries) == size


@pytest.mark.parametrize(("entries", "size"), [(1, 2), (3, 4), (4, 8), (5, 8), (7, 16)])
def test_copied_maps_are_presized(entries, size):
    assert copied_table_size(entries) == size


def test_string_hash_is_java_string_hash_code():
    assert string_hash("extra_key") == -252978768 % 2**32
    assert string_hash("😀") == 1772899  # two UTF-16 code units


def test_maps_lists_and_scalars_render_like_to_string():
    nested = {"foo": {"x": [1, 2.0, None, True, "s"], "y": 1.0e-4}, "bar": 1.0e7, "baz": 12.5}
    assert (
        render_java_map(nested)
        == "{bar=1.0E7, foo={x=[1, 2.0, null, true, s], y=1.0E-4}, baz=12.5}"
    )
    assert render_java_value(None) == "null"
    assert render_java_value(False) == "false"
    assert render_java_value([]) == "[]"
    assert render_java_value({}) == "{}"


@pytest.mark.parametrize(
    ("value", "java"),
    [
        ("s", "String"),
        (True, "Boolean"),
        (1, "Integer"),
        (2**31, "Long"),
        (2**63, "BigInteger"),
        (1.0, "Double"),
        ({}, "HashMap"),
        ([], "ArrayList"),
        (None, "null"),
    ],
)
def test_values_have_the_java_class_jackson_gives_them(value, java):
    assert java_type(value) == java


@pytest.mark.parametrize(
    ("text", "name"), [(" Cohere ", "COHERE"), ("\tcohere\n", "COHERE"), ("\u00a0x", "\u00a0X")]
)
def test_enum_names_trim_like_java_string_trim(text, name):
    assert java_enum_name(text) == name
