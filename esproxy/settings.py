"""esproxy's configuration: frozen dataclasses, loaded from TOML, environment and flags.

Layers, later ones winning: built-in defaults, the TOML file, `ESPROXY_<SECTION>_<KEY>` environment
variables (plus the short aliases below), then command-line flags. marshmallow validates the merged
result, so a bad value names its section and key whatever layer it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate
from yarl import URL

DEFAULT_LISTEN = "127.0.0.1:9200"

# Short environment names for the settings people set most; every setting also has its long name.
ENV_ALIASES = {
    "ESPROXY_LISTEN": ("server", "listen"),
    "ESPROXY_DEV": ("server", "dev"),
    "ESPROXY_UPSTREAM": ("upstream", "urls"),
    "ESPROXY_DATA_DIR": ("storage", "data_dir"),
    "ESPROXY_SECRETS_KEY": ("secrets", "key"),
}


class SettingsError(Exception):
    """A configuration that cannot start esproxy; the message says which setting and why."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 9200
    dev: bool = False
    workers: int = 1
    max_body_bytes: int = 100 * 1024 * 1024
    body_timeout_seconds: float = 60.0
    shutdown_grace_seconds: float = 30.0


@dataclass(frozen=True)
class UpstreamSettings:
    urls: tuple[str, ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    verify_certs: bool = True
    ca_certs: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 300.0


@dataclass(frozen=True)
class StorageSettings:
    backend: str | None = None  # None: sqlite without an upstream, elasticsearch with one
    data_dir: Path = Path("data")
    index: str = ".esproxy-inference"
    cache_seconds: float = 5.0

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "endpoints.sqlite3"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "secrets.key"


@dataclass(frozen=True)
class SecretsSettings:
    key: str | None = field(default=None, repr=False)
    previous_keys: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class BedrockSettings:
    endpoint_url: str | None = None
    max_pool_connections: int = 64
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_retries: int = 3
    queue_capacity: int = 2000
    max_concurrent_calls: int = 256
    # Identity and egress (esproxy/integrations/amazonbedrock/credentials.py).
    credentials: str = "endpoint"  # or "default": keyless endpoints use the AWS default chain
    proxy_url: str | None = field(default=None, repr=False)  # may hold proxy credentials
    ca_bundle: str | None = None
    endpoint_urls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthSettings:
    """Who may call esproxy's own `_inference` API (esproxy/web/authorization.py decides)."""

    mode: str | None = None  # None: upstream with a cluster, else see conf/example.toml
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # SHA-256 hex digests
    cache_seconds: float = 30.0
    cache_size: int = 10_000
    refresh_seconds: float = 60.0
    check_timeout: float = 10.0
    # Upstream mode: a cluster that shows no security leaves `_inference` open only when this is
    # set; otherwise `_inference` answers 503 there (esproxy never goes open by itself).
    allow_unsecured_cluster: bool = False


@dataclass(frozen=True)
class EmulatorKnobs:
    """The in-process Bedrock emulator that `--dev` starts."""

    latency_ms: float = 0.0
    stream_delay_ms: float = 0.0


@dataclass(frozen=True)
class LimitsSettings:
    """How each endpoint's rate is kept (esproxy/limits): per process, or for the deployment."""

    mode: str | None = None  # None: cluster with an upstream, local without
    index: str = ".esproxy-leases"
    lease_seconds: float = 5.0


@dataclass(frozen=True)
class CacheSettings:
    """The embedding cache (esproxy/inference/embedding_cache/)."""

    enabled: bool = True
    memory_bytes: int = 64 * 1024 * 1024
    scope: str = "endpoint"  # or "model": shared by endpoints with the same model and options
    cluster: bool = False  # the shared tier in the upstream cluster (sidecar mode only)
    index: str = ".esproxy-embedding-cache"
    ttl_seconds: float = 7 * 24 * 3600.0
    sweep_seconds: float = 3600.0


@dataclass(frozen=True)
class BridgeSettings:
    """The OpenAI-compatible routes (esproxy/openai_bridge/)."""

    enabled: bool = True
    revoked: tuple[str, ...] = ()  # nonces of bridge keys that no longer open anything
    url: str | None = None  # esproxy as the cluster reaches it, for `esproxy bridge create`


@dataclass(frozen=True)
class LogSettings:
    """The access log (esproxy/observability/access_log.py)."""

    format: str = "text"  # "text" or "json"; also the format of esproxy's own log lines
    access: bool = True
    access_file: str = "-"  # "-" is standard output
    forwarded: bool = True  # also log requests forwarded to the cluster (the hot path)


@dataclass(frozen=True)
class MetricsSettings:
    """`/_esproxy/metrics` and the price table behind the estimated Bedrock cost."""

    enabled: bool = True
    listen: tuple[str, int] | None = None  # also served, without auth, on this address
    # Model id -> (input, output) US dollars per 1,000 tokens; merged over the built-in table.
    prices: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    storage: StorageSettings = StorageSettings()
    secrets: SecretsSettings = SecretsSettings()
    bedrock: BedrockSettings = BedrockSettings()
    emulator: EmulatorKnobs = EmulatorKnobs()
    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()
    cache: CacheSettings = CacheSettings()
    bridge: BridgeSettings = BridgeSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()

    @property
    def storage_backend(self) -> str:
        if self.storage.backend:
            return self.storage.backend
        return "elasticsearch" if self.upstream.urls else "sqlite"

    @property
    def limits_mode(self) -> str:
        if self.limits.mode:
            return self.limits.mode
        return "cluster" if self.upstream.urls else "local"


class CommaList(fields.List):  # type: ignore[type-arg]
    """A list that also accepts one comma-separated string, as environment variables give it."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return super()._deserialize(value, attr, data, **kwargs)


def positive() -> validate.Range:
    return validate.Range(min=0, min_inclusive=False)


def check_listen(value: str) -> None:
    parse_listen(value)


class ServerSchema(Schema):
    listen = fields.String(validate=check_listen)
    dev = fields.Boolean()
    workers = fields.Integer(validate=validate.Range(min=1, max=256))
    max_body_bytes = fields.Integer(validate=positive())
    body_timeout_seconds = fields.Float(validate=positive())
    shutdown_grace_seconds = fields.Float(validate=validate.Range(min=0))

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> ServerSettings:
        if "listen" in data:
            data["host"], data["port"] = parse_listen(data.pop("listen"))
        return ServerSettings(**data)


class UpstreamSchema(Schema):
    urls = CommaList(fields.Url(require_tld=False, schemes={"http", "https"}))
    username = fields.String(allow_none=True)
    password = fields.String(allow_none=True)
    api_key = fields.String(allow_none=True)
    verify_certs = fields.Boolean()
    ca_certs = fields.String(allow_none=True)
    connect_timeout = fields.Float(validate=positive())
    read_timeout = fields.Float(validate=positive())

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> UpstreamSettings:
        if "urls" in data:
            urls, credentials = strip_userinfo(data["urls"])
            data["urls"] = urls
            if credentials is not None:
                adopt_url_credentials(data, credentials)
        return UpstreamSettings(**data)


def strip_userinfo(urls: list[str]) -> tuple[tuple[str, ...], tuple[str, str] | None]:
    """The URLs without `user:password@`, and the one pair of credentials they carried.

    Credentials never stay in a URL, where reprs, logs and error texts would show them. Errors
    here never quote a URL, for the same reason.
    """
    stripped: list[str] = []
    found: set[tuple[str, str]] = set()
    for text in urls:
        url = URL(text)
        if url.user is not None or url.password is not None:
            found.add((url.user or "", url.password or ""))
            url = url.with_user(None)
        stripped.append(str(url).rstrip("/"))
    if len(found) > 1:
        raise ValidationError(
            "the URLs carry different credentials; give esproxy's one cluster user as "
            "[upstream] username and password instead",
            "urls",
        )
    return tuple(stripped), next(iter(found), None)


def adopt_url_credentials(data: dict[str, Any], credentials: tuple[str, str]) -> None:
    """`https://user:password@node` means username and password, unless those are set too."""
    if data.get("username") is not None or data.get("api_key") is not None:
        raise ValidationError(
            "credentials in a URL and in [upstream] username or api_key: keep only one",
            "urls",
        )
    data["username"], data["password"] = credentials


class StorageSchema(Schema):
    backend = fields.String(
        allow_none=True, validate=validate.OneOf(["sqlite", "elasticsearch", "memory"])
    )
    data_dir = fields.String()
    index = fields.String(validate=validate.Length(min=1))
    cache_seconds = fields.Float(validate=validate.Range(min=0))

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> StorageSettings:
        if "data_dir" in data:
            data["data_dir"] = Path(data["data_dir"])
        return StorageSettings(**data)


class SecretsSchema(Schema):
    key = fields.String(allow_none=True)
    previous_keys = CommaList(fields.String())

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> SecretsSettings:
        if "previous_keys" in data:
            data["previous_keys"] = tuple(data["previous_keys"])
        return SecretsSettings(**data)


class RegionUrls(fields.Dict):
    """A region -> URL table; environment variables give it as `region=url,region=url`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            pairs = [part.strip() for part in value.split(",") if part.strip()]
            table = {}
            for pair in pairs:
                region, sep, url = pair.partition("=")
                if not sep:
                    raise ValidationError(f"expected REGION=URL, got [{pair}]")
                table[region.strip()] = url.strip()
            value = table
        return super()._deserialize(value, attr, data, **kwargs)  # type: ignore[no-untyped-call]


class BedrockSchema(Schema):
    endpoint_url = fields.Url(require_tld=False, allow_none=True, schemes={"http", "https"})
    credentials = fields.String(validate=validate.OneOf(["endpoint", "default"]))
    proxy_url = fields.Url(require_tld=False, allow_none=True, schemes={"http", "https"})
    ca_bundle = fields.String(allow_none=True, validate=validate.Length(min=1))
    endpoint_urls = RegionUrls(
        keys=fields.String(validate=validate.Length(min=1)),
        values=fields.Url(require_tld=False, schemes={"http", "https"}),
    )
    max_pool_connections = fields.Integer(validate=positive())
    connect_timeout = fields.Float(validate=positive())
    read_timeout = fields.Float(validate=positive())
    max_retries = fields.Integer(validate=validate.Range(min=0, max=10))
    queue_capacity = fields.Integer(validate=validate.Range(min=0))
    max_concurrent_calls = fields.Integer(validate=positive())

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> BedrockSettings:
        if "endpoint_urls" in data:
            data["endpoint_urls"] = {k: v.rstrip("/") for k, v in data["endpoint_urls"].items()}
        return BedrockSettings(**data)


class AuthSchema(Schema):
    mode = fields.String(allow_none=True, validate=validate.OneOf(["upstream", "api_keys", "none"]))
    # The error never echoes the value: it may be a key pasted in place of its digest.
    api_keys = CommaList(
        fields.String(
            validate=validate.Regexp(
                r"\A[0-9a-fA-F]{64}\Z",
                error="must be the SHA-256 hex digest of a key (esproxy hash-api-key), not a key",
            )
        )
    )
    cache_seconds = fields.Float(validate=validate.Range(min=0))
    cache_size = fields.Integer(validate=positive())
    refresh_seconds = fields.Float(validate=positive())
    check_timeout = fields.Float(validate=positive())
    allow_unsecured_cluster = fields.Boolean()

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> AuthSettings:
        if "api_keys" in data:
            data["api_keys"] = tuple(digest.lower() for digest in data["api_keys"])
        return AuthSettings(**data)


class EmulatorSchema(Schema):
    latency_ms = fields.Float(validate=validate.Range(min=0))
    stream_delay_ms = fields.Float(validate=validate.Range(min=0))

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> EmulatorKnobs:
        return EmulatorKnobs(**data)


class LimitsSchema(Schema):
    mode = fields.String(allow_none=True, validate=validate.OneOf(["local", "cluster"]))
    index = fields.String(validate=validate.Length(min=1))
    lease_seconds = fields.Float(validate=validate.Range(min=0.2, max=3600))

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> LimitsSettings:
        return LimitsSettings(**data)


class CacheSchema(Schema):
    enabled = fields.Boolean()
    memory_bytes = fields.Integer(validate=validate.Range(min=0))
    scope = fields.String(validate=validate.OneOf(("endpoint", "model")))
    cluster = fields.Boolean()
    index = fields.String(validate=validate.Length(min=1))
    ttl_seconds = fields.Float(validate=positive())
    sweep_seconds = fields.Float(validate=positive())

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> CacheSettings:
        return CacheSettings(**data)


class BridgeSchema(Schema):
    enabled = fields.Boolean()
    revoked = CommaList(fields.String(validate=validate.Length(min=1)))
    url = fields.Url(require_tld=False, schemes={"http", "https"})

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> BridgeSettings:
        if "revoked" in data:
            data["revoked"] = tuple(data["revoked"])
        return BridgeSettings(**data)


class LogSchema(Schema):
    format = fields.String(validate=validate.OneOf(["text", "json"]))
    access = fields.Boolean()
    access_file = fields.String(validate=validate.Length(min=1))
    forwarded = fields.Boolean()

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> LogSettings:
        return LogSettings(**data)


class PriceSchema(Schema):
    input_per_1k_tokens = fields.Float(validate=validate.Range(min=0), load_default=0.0)
    output_per_1k_tokens = fields.Float(validate=validate.Range(min=0), load_default=0.0)


class MetricsSchema(Schema):
    enabled = fields.Boolean()
    listen = fields.String(allow_none=True, validate=check_listen)
    prices = fields.Dict(keys=fields.String(), values=fields.Nested(PriceSchema))

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> MetricsSettings:
        if data.get("listen") is not None:
            data["listen"] = parse_listen(data["listen"])
        if "prices" in data:
            data["prices"] = tuple(
                (model, price["input_per_1k_tokens"], price["output_per_1k_tokens"])
                for model, price in data["prices"].items()
            )
        return MetricsSettings(**data)


class SettingsSchema(Schema):
    server = fields.Nested(ServerSchema)
    upstream = fields.Nested(UpstreamSchema)
    storage = fields.Nested(StorageSchema)
    secrets = fields.Nested(SecretsSchema)
    bedrock = fields.Nested(BedrockSchema)
    emulator = fields.Nested(EmulatorSchema)
    auth = fields.Nested(AuthSchema)
    limits = fields.Nested(LimitsSchema)
    cache = fields.Nested(CacheSchema)
    bridge = fields.Nested(BridgeSchema)
    log = fields.Nested(LogSchema)
    metrics = fields.Nested(MetricsSchema)

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> Settings:
        return Settings(**data)


SECTIONS: dict[str, type[Schema]] = {
    "server": ServerSchema,
    "upstream": UpstreamSchema,
    "storage": StorageSchema,
    "secrets": SecretsSchema,
    "bedrock": BedrockSchema,
    "emulator": EmulatorSchema,
    "auth": AuthSchema,
    "limits": LimitsSchema,
    "cache": CacheSchema,
    "bridge": BridgeSchema,
    "log": LogSchema,
    "metrics": MetricsSchema,
}


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValidationError(f"expected HOST:PORT, got [{value}]")
    return host.strip("[]") or "127.0.0.1", int(port)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise SettingsError(f"cannot read config file [{path}]: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file [{path}] is not valid TOML: {error}") from None


def read_environment(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Every `ESPROXY_<SECTION>_<KEY>` and alias that names a known setting."""
    found: dict[str, dict[str, Any]] = {}
    for section, schema in SECTIONS.items():
        for key in schema().fields:
            name = f"ESPROXY_{section}_{key}".upper()
            if name in environ:
                found.setdefault(section, {})[key] = environ[name]
    for name, (section, key) in ENV_ALIASES.items():
        if name in environ:
            found.setdefault(section, {})[key] = environ[name]
    return found


# Read outside the settings schema: by load_settings and by the command line.
OTHER_ENVIRONMENT = frozenset({"ESPROXY_CONFIG", "ESPROXY_LOG_LEVEL"})


def environment_names() -> frozenset[str]:
    """Every environment variable esproxy serve reads (docs/deploy is checked against it)."""
    names = {
        f"ESPROXY_{section}_{key}".upper()
        for section, schema in SECTIONS.items()
        for key in schema().fields
    }
    return frozenset(names | set(ENV_ALIASES) | OTHER_ENVIRONMENT)


def merge(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            if not isinstance(values, Mapping):
                raise SettingsError(f"[{section}] must be a table of settings")
            merged.setdefault(section, {}).update(values)
    return merged


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Defaults < config file < environment < overrides (the command-line flags)."""
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get("ESPROXY_CONFIG"):
        config_file = Path(environ["ESPROXY_CONFIG"])
    from_file = read_toml(config_file) if config_file else {}
    raw = merge(from_file, read_environment(environ), overrides or {})
    try:
        settings: Settings = SettingsSchema().load(raw)
    except ValidationError as error:
        raise SettingsError(f"invalid settings: {describe(error.messages)}") from None
    return settings


def describe(messages: Any, prefix: str = "") -> str:
    """Flatten marshmallow's nested messages into `[section] key: problem` text."""
    if isinstance(messages, Mapping):
        parts = [
            describe(value, f"{prefix}.{key}" if prefix else str(key))
            for key, value in messages.items()
        ]
        return "; ".join(parts)
    if isinstance(messages, list):
        return f"{prefix}: " + " ".join(str(m) for m in messages)
    return f"{prefix}: {messages}"
