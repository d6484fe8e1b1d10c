"""Settings layering (defaults < file < environment < flags) and the errors bad values get."""

from __future__ import annotations

from pathlib import Path

import pytest

from esproxy.settings import Settings, SettingsError, load_settings

CONF = Path(__file__).resolve().parent.parent / "conf"


def test_defaults_serve_the_embedded_store_on_9200():
    settings = load_settings(environ={})
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 9200)
    assert settings.storage_backend == "sqlite"
    assert settings == Settings()


def test_shipped_config_files_load():
    dev = load_settings(CONF / "dev.toml", environ={})
    assert dev.server.dev and dev.storage_backend == "sqlite"
    example = load_settings(CONF / "example.toml", environ={})
    assert example.storage_backend == "elasticsearch"
    assert example.upstream.urls == ("https://es-node-1:9200", "https://es-node-2:9200")


def test_environment_beats_file_and_flags_beat_environment(tmp_path):
    config = tmp_path / "esproxy.toml"
    config.write_text('[server]\nlisten = "127.0.0.1:9201"\n[bedrock]\nread_timeout = 7\n')
    environ = {"ESPROXY_LISTEN": "127.0.0.1:9202", "ESPROXY_BEDROCK_READ_TIMEOUT": "8"}
    settings = load_settings(config, environ=environ)
    assert settings.server.port == 9202
    assert settings.bedrock.read_timeout == 8.0
    flagged = load_settings(config, environ=environ, overrides={"server": {"listen": "0.0.0.0:1"}})
    assert (flagged.server.host, flagged.server.port) == ("0.0.0.0", 1)


def test_config_file_from_environment(tmp_path):
    config = tmp_path / "esproxy.toml"
    config.write_text('[storage]\ndata_dir = "/srv/esproxy"\n')
    settings = load_settings(environ={"ESPROXY_CONFIG": str(config)})
    assert settings.storage.sqlite_path == Path("/srv/esproxy/endpoints.sqlite3")


def test_upstream_list_from_one_environment_variable():
    settings = load_settings(environ={"ESPROXY_UPSTREAM": "http://a:9200/, http://b:9200"})
    assert settings.upstream.urls == ("http://a:9200", "http://b:9200")
    assert settings.storage_backend == "elasticsearch"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ESPROXY_LISTEN": "nowhere"}, "server.listen: expected HOST:PORT, got [nowhere]"),
        ({"ESPROXY_SERVER_MAX_BODY_BYTES": "-1"}, "server.max_body_bytes"),
        ({"ESPROXY_STORAGE_BACKEND": "postgres"}, "storage.backend"),
        ({"ESPROXY_UPSTREAM": "ftp://x"}, "upstream.urls"),
    ],
)
def test_bad_values_name_their_setting(environ, message):
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(environ=environ)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings(broken, environ={})


def test_secrets_never_in_repr():
    settings = load_settings(
        environ={"ESPROXY_SECRETS_KEY": "c2VjcmV0", "ESPROXY_UPSTREAM_PASSWORD": "hunter2"}
    )
    assert "c2VjcmV0" not in repr(settings) and "hunter2" not in repr(settings)


def test_credentials_in_upstream_urls_are_stripped_and_used(tmp_path):
    config = tmp_path / "esproxy.toml"
    config.write_text('[upstream]\nurls = ["https://esproxy:s3cr%40t@node-1:9200/"]\n')
    settings = load_settings(
        config, environ={"ESPROXY_UPSTREAM": "https://esproxy:s3cr%40t@node-1:9200/"}
    )
    assert settings.upstream.urls == ("https://node-1:9200",)
    assert (settings.upstream.username, settings.upstream.password) == ("esproxy", "s3cr@t")
    assert "s3cr" not in repr(settings) and "s3cr" not in str(settings)
    from_file = load_settings(config, environ={})
    assert from_file.upstream.urls == ("https://node-1:9200",)
    assert "s3cr" not in repr(from_file)


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        (
            {"ESPROXY_UPSTREAM": "http://a:pw-1@x:9200,http://a:pw-2@y:9200"},
            "the URLs carry different credentials",
        ),
        (
            {"ESPROXY_UPSTREAM": "http://a:pw-1@x:9200", "ESPROXY_UPSTREAM_USERNAME": "b"},
            "credentials in a URL and in \\[upstream\\] username or api_key",
        ),
        (
            {"ESPROXY_UPSTREAM": "http://a:pw-1@x:9200", "ESPROXY_UPSTREAM_API_KEY": "k"},
            "keep only one",
        ),
    ],
)
def test_conflicting_url_credentials_are_refused_without_echoing_them(environ, problem):
    with pytest.raises(SettingsError, match=problem) as caught:
        load_settings(environ=environ)
    assert "pw-" not in str(caught.value)


def test_bedrock_identity_and_egress_settings(tmp_path):
    config = tmp_path / "esproxy.toml"
    config.write_text(
        '[bedrock]\ncredentials = "default"\nproxy_url = "http://proxy.internal:3128"\n'
        'ca_bundle = "/etc/ssl/corp.pem"\n'
        '[bedrock.endpoint_urls]\n"us-east-1" = "https://vpce-1.bedrock-runtime.us-east-1.vpce.'
        'amazonaws.com/"\n'
    )
    bedrock = load_settings(config, environ={}).bedrock
    assert bedrock.credentials == "default"
    assert bedrock.proxy_url == "http://proxy.internal:3128"
    assert bedrock.ca_bundle == "/etc/ssl/corp.pem"
    assert bedrock.endpoint_urls == {
        "us-east-1": "https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com"
    }
    from_env = load_settings(
        environ={
            "ESPROXY_BEDROCK_CREDENTIALS": "endpoint",
            "ESPROXY_BEDROCK_ENDPOINT_URLS": "eu-west-1=http://a:1, us-west-2=http://b:2",
        }
    ).bedrock
    assert from_env.credentials == "endpoint"
    assert from_env.endpoint_urls == {"eu-west-1": "http://a:1", "us-west-2": "http://b:2"}
    assert load_settings(environ={}).bedrock.credentials == "endpoint"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ESPROXY_BEDROCK_CREDENTIALS": "ambient"}, "bedrock.credentials"),
        ({"ESPROXY_BEDROCK_PROXY_URL": "socks5://p:1"}, "bedrock.proxy_url"),
        ({"ESPROXY_BEDROCK_ENDPOINT_URLS": "us-east-1"}, "expected REGION=URL, got [us-east-1]"),
        ({"ESPROXY_BEDROCK_ENDPOINT_URLS": "us-east-1=nope"}, "bedrock.endpoint_urls"),
    ],
)
def test_bad_bedrock_egress_values_name_their_setting(environ, message):
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(environ=environ)


def test_proxy_credentials_never_in_repr():
    settings = load_settings(environ={"ESPROXY_BEDROCK_PROXY_URL": "http://u:pr0xy-pw@p:3128"})
    assert "pr0xy-pw" not in repr(settings)
