"""The `esproxy` command line: sub-commands only; each one loads settings and runs one app."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from aiohttp import web
from marshmallow import ValidationError
from yarl import URL

from esproxy import __version__
from esproxy.errors import ProxyError
from esproxy.observability.log_format import use_log_format
from esproxy.openai_bridge.recipe import EsEndpoint
from esproxy.settings import (
    DEFAULT_LISTEN,
    Settings,
    SettingsError,
    load_settings,
    parse_listen,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

log = logging.getLogger("esproxy")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Parser(argparse.ArgumentParser):
    """Usage mistakes get one line and exit 2, as every admin command's bad usage does."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"invalid log level [{value}]: choose from {', '.join(LOG_LEVELS)}"
        )
    return value.upper()


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        type=log_level,
        default=os.environ.get("ESPROXY_LOG_LEVEL", "INFO"),
        metavar="{" + ",".join(LOG_LEVELS) + "}",
        help="log verbosity, case-insensitive (env: ESPROXY_LOG_LEVEL; default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="esproxy", description=__doc__)
    parser.add_argument("--version", action="version", version=f"esproxy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the _inference API and forward the rest")
    serve.add_argument("--config", type=Path, help="TOML settings file (env: ESPROXY_CONFIG)")
    serve.add_argument("--listen", help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN})")
    serve.add_argument(
        "--upstream", action="append", help="cluster URL to forward to; repeat for more nodes"
    )
    serve.add_argument("--data-dir", help="where the embedded store and generated key live")
    serve.add_argument("--bedrock-endpoint-url", help="send every Bedrock call to this URL")
    serve.add_argument("--workers", type=int, help="server processes sharing the port (default 1)")
    serve.add_argument(
        "--dev", action="store_true", default=None, help="local development: bundled emulator"
    )
    add_log_level(serve)
    serve.add_argument(
        "--log-format", choices=("text", "json"), help="access and own log lines ([log] format)"
    )

    emulator = commands.add_parser(
        "bedrock-emulator",
        help="run the bundled Bedrock emulator",
        description="A stand-in for Amazon Bedrock Runtime (InvokeModel, Converse, "
        "ConverseStream) with SigV4 checks, throttling and injectable faults; its control API "
        "is under /_emulator/ (see README).",
    )
    emulator.add_argument(
        "--listen",
        default=os.environ.get("ESPROXY_EMULATOR_LISTEN", "127.0.0.1:9300"),
        metavar="HOST:PORT",
        help="address to serve on; keep it on loopback: /_emulator/requests shows prompt bodies "
        "and access key ids (env: ESPROXY_EMULATOR_LISTEN; default: %(default)s)",
    )
    emulator.add_argument(
        "--latency-ms",
        type=float,
        default=env_float("LATENCY_MS", 0.0),
        help="added delay before every answer, in milliseconds (env: ESPROXY_EMULATOR_LATENCY_MS;"
        " default: %(default)s)",
    )
    emulator.add_argument(
        "--stream-delay-ms",
        type=float,
        default=env_float("STREAM_DELAY_MS", 0.0),
        help="delay between streamed events (ConverseStream), in milliseconds (env: "
        "ESPROXY_EMULATOR_STREAM_DELAY_MS; default: %(default)s)",
    )
    emulator.add_argument(
        "--stream-burst",
        type=int,
        default=env_int("STREAM_BURST", 1),
        metavar="N",
        help="the first N events of a stream go out back to back, the delay comes before each "
        "later one (env: ESPROXY_EMULATOR_STREAM_BURST; default: %(default)s)",
    )
    emulator.add_argument(
        "--quota-per-minute",
        type=int,
        default=env_int("QUOTA_PER_MINUTE"),
        help="requests per minute per access key before Bedrock-style throttling (env: "
        "ESPROXY_EMULATOR_QUOTA_PER_MINUTE; default: no quota)",
    )
    emulator.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="ACCESS:SECRET",
        type=key_pair,
        help="verify SigV4 against this key pair; repeatable (default: accept any credentials)",
    )
    emulator.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="ROLE_ARN[#EXTERNAL_ID]",
        type=role_spec,
        help="a role that STS lets any verified caller assume (with this external id); repeatable",
    )
    emulator.add_argument(
        "--web-identity-token",
        metavar="TOKEN",
        default=os.environ.get("ESPROXY_EMULATOR_WEB_IDENTITY_TOKEN"),
        help="the one token STS AssumeRoleWithWebIdentity accepts (env: "
        "ESPROXY_EMULATOR_WEB_IDENTITY_TOKEN; default: none accepted)",
    )
    emulator.add_argument(
        "--credential-lifetime",
        type=positive_seconds,
        default=env_float("CREDENTIAL_LIFETIME", 3600.0),
        metavar="SECONDS",
        help="how long temporary credentials issued by STS live (env: "
        "ESPROXY_EMULATOR_CREDENTIAL_LIFETIME; default: %(default)s)",
    )
    emulator.add_argument(
        "--sts-listen",
        default=os.environ.get("ESPROXY_EMULATOR_STS_LISTEN"),
        metavar="HOST:PORT",
        help="address of STS, for AWS_ENDPOINT_URL_STS; STS also answers on --listen (env: "
        "ESPROXY_EMULATOR_STS_LISTEN; default: the --listen port + 1, 127.0.0.1:9301)",
    )
    add_log_level(emulator)

    commands.add_parser("generate-key", help="print a new secrets key for [secrets] key")

    commands.add_parser(
        "generate-api-key",
        help="make an API key for [auth] mode = api_keys: prints the key, then its digest",
    )
    commands.add_parser(
        "hash-api-key", help="read an API key on stdin, print the digest [auth] api_keys lists"
    )

    rotate = commands.add_parser(
        "rotate-secrets-key",
        help="re-encrypt every stored endpoint with [secrets] key (old keys in previous_keys)",
    )
    rotate.add_argument("--config", type=Path, help="TOML settings file (env: ESPROXY_CONFIG)")
    rotate.add_argument("--upstream", action="append", help="cluster URL, as for serve")
    rotate.add_argument("--data-dir", help="data dir of the embedded store, as for serve")

    bridge = commands.add_parser(
        "bridge", help="connect the cluster's own openai endpoints to esproxy's endpoints"
    )
    bridge_commands = bridge.add_subparsers(dest="bridge_command", required=True)
    create = bridge_commands.add_parser(
        "create",
        help="print (or --apply) the cluster-side openai endpoint that calls an esproxy endpoint",
    )
    create.add_argument("inference_id", help="the esproxy endpoint to open to the cluster")
    create.add_argument(
        "--es-endpoint", required=True, help="name of the endpoint to create in the cluster"
    )
    create.add_argument(
        "--url",
        help="esproxy as the cluster reaches it (default: [bridge] url, else http://LISTEN)",
    )
    create.add_argument(
        "--apply", action="store_true", help="send the PUT through esproxy to the cluster"
    )
    create.add_argument(
        "--authorization",
        default=os.environ.get("ESPROXY_BRIDGE_AUTHORIZATION"),
        help="Authorization header for --apply, e.g. 'ApiKey ...' "
        "(env: ESPROXY_BRIDGE_AUTHORIZATION)",
    )
    create.add_argument("--config", type=Path, help="TOML settings file (env: ESPROXY_CONFIG)")
    create.add_argument("--upstream", action="append", help="cluster URL, as for serve")
    create.add_argument("--data-dir", help="data dir of the embedded store, as for serve")
    return parser


def listen_address(value: str) -> tuple[str, int]:
    try:
        return parse_listen(value)
    except ValidationError as error:
        raise SettingsError(f"--listen: {' '.join(map(str, error.messages))}") from None


def key_pair(value: str) -> tuple[str, str]:
    access, sep, secret = value.partition(":")
    if not sep or not access or not secret:
        # Never echo the value: it holds a secret key.
        raise argparse.ArgumentTypeError("expected ACCESS_KEY:SECRET_KEY")
    return access, secret


def role_spec(value: str) -> tuple[str, str | None]:
    from esproxy.bedrock_emulator.identities import parse_role

    try:
        return parse_role(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got [{value}]")
    return seconds


def env_float(name: str, default: float) -> float:
    value = os.environ.get(f"ESPROXY_EMULATOR_{name}")
    try:
        return default if value is None else float(value)
    except ValueError:
        raise SettingsError(f"ESPROXY_EMULATOR_{name}: not a number: [{value}]") from None


def env_int(name: str, default: int | None = None) -> int | None:
    value = os.environ.get(f"ESPROXY_EMULATOR_{name}")
    try:
        return int(value) if value else default
    except ValueError:
        raise SettingsError(f"ESPROXY_EMULATOR_{name}: not an integer: [{value}]") from None


def serve_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Only the flags that were given, so they override the file and the environment."""
    overrides: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            overrides.setdefault(section, {})[key] = value

    put("server", "listen", getattr(args, "listen", None))
    put("server", "dev", getattr(args, "dev", None))
    put("server", "workers", getattr(args, "workers", None))
    put("upstream", "urls", args.upstream)
    put("storage", "data_dir", args.data_dir)
    put("bedrock", "endpoint_url", getattr(args, "bedrock_endpoint_url", None))
    put("log", "format", getattr(args, "log_format", None))
    return overrides


def serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, overrides=serve_overrides(args))
    use_log_format(settings.log.format)
    if settings.server.dev:
        print(
            "esproxy dev mode: bundled Bedrock emulator, any AWS credentials accepted "
            "— not for production",
            file=sys.stderr,
        )
    if settings.server.workers > 1:
        from esproxy.workers import run_workers

        asyncio.run(check_upstreams_of(settings))  # once, before any worker starts
        return run_workers(settings.server.workers, partial(serve_worker, settings, args.log_level))
    serve_one(settings)
    return 0


def serve_worker(settings: Settings, log_level: str, reports: Connection) -> None:
    """A spawned worker: it tells the parent when it listens, or its startup mistake's one line,
    which the parent prints last before it exits 1, as a single process would."""
    from esproxy.errors import ProxyError
    from esproxy.startup_checks import StartupError
    from esproxy.workers import LISTENING

    configure_logging(log_level)  # a spawned worker starts with logging unconfigured
    use_log_format(settings.log.format)
    try:
        serve_one(settings, checked=True, on_listening=lambda: reports.send(LISTENING))
    except (StartupError, ProxyError, SettingsError) as error:
        reports.send(f"esproxy: {error}")
        sys.exit(1)


def serve_one(
    settings: Settings, *, checked: bool = False, on_listening: Callable[[], None] | None = None
) -> None:
    """One server process; with several workers, each shares the port through SO_REUSEPORT."""
    run_until_stopped(serve_until_stopped(settings, checked=checked, on_listening=on_listening))


async def check_upstreams_of(settings: Settings) -> None:
    from esproxy.startup_checks import check_upstreams
    from esproxy.upstream_session import tls_option

    if settings.upstream.urls:
        await check_upstreams(settings.upstream, await tls_option(settings.upstream))


def run_until_stopped(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a server until SIGTERM or SIGINT, then let its cleanup close connections gracefully."""
    loop = new_event_loop()
    main = loop.create_task(coroutine)
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass  # SIGTERM or SIGINT: the task's cleanup below closes connections gracefully
    finally:
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError, web.GracefulExit, KeyboardInterrupt):
            loop.run_until_complete(main)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    if not main.cancelled() and main.exception() is not None:
        raise main.exception()  # type: ignore[misc]


async def serve_until_stopped(
    settings: Settings, *, checked: bool = False, on_listening: Callable[[], None] | None = None
) -> None:
    from esproxy.app import create_app, create_runner

    server = settings.server
    if not checked:
        await check_upstreams_of(settings)
    runner = create_runner(
        create_app(settings),
        handle_signals=True,
        access_log=None,
        # A client that goes away cancels its handler, and so its Bedrock call.
        handler_cancellation=True,
        shutdown_timeout=server.shutdown_grace_seconds,
    )
    await runner.setup()
    freeze_startup_objects()
    try:
        site = web.TCPSite(
            runner, server.host, server.port, reuse_port=server.workers > 1, backlog=1024
        )
        await start_site(site, server.host, server.port)
        log.info("esproxy %s listening on http://%s:%d", __version__, server.host, server.port)
        if on_listening is not None:
            on_listening()
        await asyncio.Event().wait()
    finally:
        log.info("esproxy stopping: finishing requests in flight, then closing")
        await runner.cleanup()
        log.info("esproxy stopped")


def freeze_startup_objects() -> None:
    """Keep what startup made (modules, the app, schemas: ~80k objects) out of every later GC pass.

    A full collection walks every tracked object: ~100 ms on the loop with all of them, during
    which no request moves; once frozen, it walks only what serving has made since. Collected once
    first, so that startup's garbage is not kept.
    """
    gc.collect()
    gc.freeze()


async def start_site(site: web.TCPSite, host: str, port: int) -> None:
    from esproxy.startup_checks import listen_failure

    try:
        await site.start()
    except OSError as error:
        raise listen_failure(host, port, error) from None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (Linux and macOS): ~10-20% less CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def check_emulator_numbers(args: argparse.Namespace) -> None:
    """Numbers the emulator would take silently and then misbehave on (a negative sleep, a quota
    of 0); the flags and their environment variables alike."""
    for flag, value, least in (
        ("--latency-ms", args.latency_ms, 0),
        ("--stream-delay-ms", args.stream_delay_ms, 0),
        ("--stream-burst", args.stream_burst, 1),
        ("--quota-per-minute", args.quota_per_minute, 1),
    ):
        if value is not None and not value >= least:
            env = "ESPROXY_EMULATOR_" + flag.removeprefix("--").replace("-", "_").upper()
            raise SettingsError(f"{flag} (or {env}): must be at least {least}, got [{value}]")


def run_emulator(args: argparse.Namespace) -> int:
    from esproxy.bedrock_emulator import EmulatorSettings, create_emulator_app

    host, port = listen_address(args.listen)
    if args.sts_listen is None:
        sts = (host, port + 1 if 0 < port < 65535 else 0)
    else:
        try:
            sts = parse_listen(args.sts_listen)
        except ValidationError as error:
            raise SettingsError(f"--sts-listen: {' '.join(map(str, error.messages))}") from None
    check_emulator_numbers(args)
    settings = EmulatorSettings(
        latency_ms=args.latency_ms,
        stream_delay_ms=args.stream_delay_ms,
        stream_burst=args.stream_burst,
        quota_per_minute=args.quota_per_minute,
        keys=dict(args.key),
        roles=dict(args.role),
        web_identity_token=args.web_identity_token,
        credential_lifetime_s=args.credential_lifetime,
    )
    bedrock = create_emulator_app(settings)
    run_until_stopped(
        serve_emulator(bedrock, host, port, sts=sts, sts_optional=args.sts_listen is None)
    )
    return 0


async def serve_emulator(
    app: web.Application,
    host: str,
    port: int,
    *,
    sts: tuple[str, int] | None = None,
    sts_optional: bool = False,
) -> None:
    """Bedrock on `host:port`, and STS on `sts` as well; when the STS port was not asked for and
    is taken, STS answers on the Bedrock port alone."""
    from esproxy.bedrock_emulator import create_sts_app
    from esproxy.startup_checks import StartupError

    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    sts_runner = web.AppRunner(create_sts_app(app), access_log=None)
    await runner.setup()
    await sts_runner.setup()
    try:
        await start_site(web.TCPSite(runner, host, port), host, port)
        log.info("Bedrock emulator listening on http://%s:%d", host, port)
        if sts is not None:
            try:
                await start_site(web.TCPSite(sts_runner, *sts), *sts)
            except StartupError as error:
                if not sts_optional:
                    raise
                log.warning("%s; STS answers on the Bedrock port only", error)
            else:
                log.info("STS listening on http://%s:%d", sts[0], sts_runner.addresses[-1][1])
        await asyncio.Event().wait()
    finally:
        await sts_runner.cleanup()
        await runner.cleanup()
        log.info("Bedrock emulator stopped")


def generate_key(_: argparse.Namespace) -> int:
    from esproxy.secret_cipher import generate_key_text

    print(generate_key_text())
    return 0


def generate_api_key(_: argparse.Namespace) -> int:
    from esproxy.authorization.api_keys import generate_api_key as new_key
    from esproxy.authorization.api_keys import hash_api_key

    key = new_key()
    print(f"key:    {key}\ndigest: {hash_api_key(key)}")
    return 0


def hash_api_key(_: argparse.Namespace) -> int:
    from esproxy.authorization.api_keys import hash_api_key as digest
    from esproxy.authorization.api_keys import weak_key_reason

    # From stdin, never argv: command lines end up in shell history and process lists.
    key = sys.stdin.readline().strip()
    if not key:
        print("esproxy: no API key on standard input", file=sys.stderr)
        return 2
    if (reason := weak_key_reason(key)) is not None:
        print(f"esproxy: refusing the key: {reason}", file=sys.stderr)
        return 2
    print(digest(key))
    return 0


def rotate_secrets_key(args: argparse.Namespace) -> int:
    from esproxy.errors import ProxyError

    settings = load_settings(args.config, overrides=serve_overrides(args))
    # Only warnings and errors: the store's request log is for the server.
    logging.getLogger("esproxy").setLevel(logging.WARNING)
    try:
        return asyncio.run(rotate_configured_store(settings))
    except ProxyError as error:
        print(f"esproxy: {error.reason}", file=sys.stderr)
        return 1


async def rotate_configured_store(settings: Settings) -> int:
    """Rotate the store the settings name; see esproxy/key_rotation.py for the steps."""
    from esproxy.app import build_cipher, open_admin_store, previous_keys
    from esproxy.key_rotation import rotate_key_file, rotate_secrets
    from esproxy.secret_cipher import parse_key, read_key_file_keys

    async with open_admin_store(settings) as (store, described):
        print(f"rotating the secrets key of the endpoints in the {described}")
        if not await store.list():
            print(
                f"esproxy: the {described} holds no endpoints: nothing was rotated; check "
                "--data-dir or --upstream",
                file=sys.stderr,
            )
            return 1
        key_file = settings.storage.key_file.resolve()
        if settings.storage_backend == "sqlite" and key_file.exists():
            new_key = parse_key(settings.secrets.key) if settings.secrets.key else None
            report, primary = await rotate_key_file(
                store, key_file, read_key_file_keys(key_file), new_key, previous_keys(settings)
            )
            kept = " and still the old ones" if report.unreadable else ""
            print(f"key file [{key_file}] now holds key [{primary.key_id}]{kept}")
        else:
            report = await rotate_secrets(store, build_cipher(settings, create_key_file=False))
    print(
        f"re-encrypted {len(report.resealed)} endpoints; {len(report.current)} already used the "
        f"current key; {len(report.unreadable)} could not be read"
    )
    for inference_id, reason in report.unreadable.items():
        print(f"  {inference_id}: {reason}", file=sys.stderr)
    return 1 if report.unreadable else 0


def bridge_create(args: argparse.Namespace) -> int:
    from esproxy.openai_bridge import recipe

    settings = load_settings(args.config, overrides=serve_overrides(args))
    # Only warnings and errors: the store's request log is for the server.
    logging.getLogger("esproxy").setLevel(logging.WARNING)
    base_url = args.url or settings.bridge.url
    if base_url is None:
        base_url = f"http://{settings.server.host}:{settings.server.port}"
    url = URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        print(
            f"esproxy: --url must be an http(s) URL of esproxy, not [{base_url}]", file=sys.stderr
        )
        return 2
    try:
        endpoint = asyncio.run(bridge_endpoint(settings, args, base_url))
        if not args.apply:
            print(f"PUT {endpoint.path}")
            print(json.dumps(endpoint.body, indent=2))
            return 0
        answer = asyncio.run(recipe.apply(endpoint, base_url, args.authorization))
    except ProxyError as error:
        print(f"esproxy: {error.reason}", file=sys.stderr)
        return 1
    print(f"created {endpoint.path} in the cluster: {json.dumps(answer)}")
    return 0


async def bridge_endpoint(
    settings: Settings, args: argparse.Namespace, base_url: str
) -> EsEndpoint:
    """Read the esproxy endpoint, checking its seal, and mint its bridge key: the store and key
    the server uses, and none of the server's parts."""
    from esproxy.app import build_bridge_keys, build_cipher, open_admin_store
    from esproxy.inference.models import EndpointConfig
    from esproxy.openai_bridge.recipe import es_endpoint
    from esproxy.sealed_records import open_record

    async with open_admin_store(settings) as (store, _):
        record = await store.get(args.inference_id)
    cipher = build_cipher(settings, create_key_file=False)
    open_record(cipher, record)  # a record changed outside esproxy is refused here too
    config = EndpointConfig.from_dict(record.config)
    key = build_bridge_keys(settings, cipher).mint(config.inference_id)
    return es_endpoint(config, args.es_endpoint, base_url, key)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
    )


COMMANDS = {
    "serve": serve,
    "bedrock-emulator": run_emulator,
    "generate-key": generate_key,
    "rotate-secrets-key": rotate_secrets_key,
    "generate-api-key": generate_api_key,
    "hash-api-key": hash_api_key,
    "bridge": bridge_create,
}


def main(argv: Sequence[str] | None = None) -> int:
    from esproxy.errors import ProxyError
    from esproxy.startup_checks import StartupError

    try:
        args = build_parser().parse_args(argv)
        level = log_level(getattr(args, "log_level", "INFO"))  # the environment's default too
    except (SettingsError, argparse.ArgumentTypeError) as error:
        print(f"esproxy: {error}", file=sys.stderr)
        return 2
    configure_logging(level)
    try:
        return COMMANDS[args.command](args)
    except SettingsError as error:
        print(f"esproxy: {error}", file=sys.stderr)
        return 2
    except (StartupError, ProxyError) as error:
        print(f"esproxy: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        # A bug, or a fault nothing above words: one line, with the traceback at DEBUG.
        log.debug("esproxy %s failed", args.command, exc_info=True)
        print(
            f"esproxy: {args.command} failed: {type(error).__name__}: {error} (run with "
            "--log-level DEBUG for details)",
            file=sys.stderr,
        )
        return 1
