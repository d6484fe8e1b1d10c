"""The `[metrics]` and `[log]` settings, `--log-format`, and the price table's model lookups."""

from __future__ import annotations

import pytest

from esproxy.cli import build_parser, serve_overrides
from esproxy.observability.prices import ModelPrice, PriceTable
from esproxy.settings import SettingsError, load_settings


def test_prices_and_listen_from_a_config_file(tmp_path):
    config = tmp_path / "esproxy.toml"
    config.write_text(
        '[metrics]\nlisten = "0.0.0.0:9464"\n'
        '[metrics.prices."anthropic.claude-3-haiku-20240307-v1:0"]\n'
        "input_per_1k_tokens = 0.00025\noutput_per_1k_tokens = 0.00125\n"
        '[log]\nformat = "json"\naccess_file = "/var/log/esproxy/access.log"\n'
    )
    settings = load_settings(config, environ={})
    assert settings.metrics.listen == ("0.0.0.0", 9464)
    assert settings.metrics.prices == (
        ("anthropic.claude-3-haiku-20240307-v1:0", 0.00025, 0.00125),
    )
    assert settings.log.format == "json" and settings.log.access
    assert settings.log.access_file == "/var/log/esproxy/access.log"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ESPROXY_LOG_FORMAT": "xml"}, "log.format: Must be one of: text, json."),
        ({"ESPROXY_METRICS_LISTEN": "9464"}, "metrics.listen: expected HOST:PORT, got [9464]"),
        ({"ESPROXY_LOG_ACCESS": "maybe"}, "log.access: Not a valid boolean."),
    ],
)
def test_bad_values_name_their_setting(environ, message):
    with pytest.raises(SettingsError) as raised:
        load_settings(environ=environ)
    assert str(raised.value) == f"invalid settings: {message}"


def test_negative_price_is_refused(tmp_path):
    config = tmp_path / "esproxy.toml"
    config.write_text('[metrics.prices."m"]\ninput_per_1k_tokens = -1\n')
    with pytest.raises(SettingsError, match="input_per_1k_tokens"):
        load_settings(config, environ={})


def test_log_format_flag_overrides():
    args = build_parser().parse_args(["serve", "--log-format", "json"])
    assert load_settings(environ={}, overrides=serve_overrides(args)).log.format == "json"


def test_price_lookup_by_id_profile_and_arn():
    table = PriceTable({"anthropic.claude-3-haiku-20240307-v1:0": ModelPrice(0.00025, 0.00125)})
    haiku = ModelPrice(0.00025, 0.00125)
    assert table.price_of("anthropic.claude-3-haiku-20240307-v1:0") == haiku
    assert table.price_of("us.anthropic.claude-3-haiku-20240307-v1:0") == haiku
    arn = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"
    assert table.price_of(arn) == haiku
    assert table.price_of("amazon.titan-embed-text-v2:0") == ModelPrice(0.00002, 0.0)
    assert table.price_of("meta.llama3-8b-instruct-v1:0") == ModelPrice(0.0003, 0.0006)
    assert table.price_of("example.unknown-model-v1:0") is None
