"""docs/deploy/ cannot rot: each probe path, port, flag and environment variable it names exists."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from esproxy.cli import build_parser
from esproxy.settings import environment_names, parse_listen
from esproxy.web.routes import OWN_PATHS

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"


def serve_args(argv: list[str]) -> Any:
    """Parse as `esproxy` would: an unknown flag or bad value fails the test (exit 2)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"esproxy refuses {argv}: exit {exit_.code}")
    assert args.command == "serve"
    return args


def check_environment(names: list[str]) -> None:
    known = environment_names()
    esproxy_names = [name for name in names if name.startswith("ESPROXY_")]
    assert esproxy_names, "no ESPROXY_ variable at all"
    unknown = [name for name in esproxy_names if name not in known]
    assert not unknown, f"unknown environment variables: {unknown}"


def test_the_kubernetes_sidecar_manifest():
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes-sidecar.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in documents}
    pod = kinds["StatefulSet"]["spec"]["template"]["spec"]
    containers = {container["name"]: container for container in pod["containers"]}
    esproxy, node = containers["esproxy"], containers["elasticsearch"]

    args = serve_args(esproxy["args"])
    host, port = parse_listen(args.listen)
    assert host == "0.0.0.0"
    assert [p["containerPort"] for p in esproxy["ports"]] == [port]
    # The probes: esproxy's own paths, on the port it listens on.
    probes = {"livenessProbe": "/_esproxy/health", "readinessProbe": "/_esproxy/ready"}
    for probe, path in probes.items():
        http_get = esproxy[probe]["httpGet"]
        assert http_get["path"] == path and path in OWN_PATHS
        assert http_get["port"] == port

    # The upstream is the node's HTTP port in the same pod.
    node_env = {item["name"]: item.get("value") for item in node["env"]}
    [upstream] = args.upstream
    assert upstream == f"http://127.0.0.1:{node_env['http.port']}"
    assert [p["containerPort"] for p in node["ports"]] == [int(node_env["http.port"])]

    env = {item["name"]: item for item in esproxy["env"]}
    check_environment(list(env))
    secret_ref = env["ESPROXY_SECRETS_KEY"]["valueFrom"]["secretKeyRef"]
    assert secret_ref == {"name": "esproxy", "key": "secrets-key"}  # the key from a Secret
    assert "value" not in env["ESPROXY_SECRETS_KEY"]
    assert env["ESPROXY_AUTH_MODE"]["value"] in ("upstream", "api_keys")

    # The Service sends clients to esproxy, never to the node's own port.
    [service_port] = kinds["Service"]["spec"]["ports"]
    assert service_port["targetPort"] == esproxy["ports"][0]["name"]
    # Long enough for esproxy's default shutdown grace.
    assert pod["terminationGracePeriodSeconds"] > 30


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"not a unit file line: {line}"
        current.append((key, value))
    return sections


def test_the_systemd_unit():
    service = read_unit(DEPLOY / "esproxy.service")["Service"]
    values = dict(service)
    argv = shlex.split(values["ExecStart"])
    assert argv[0].endswith("/.venv/bin/esproxy")
    args = serve_args(argv[1:])
    assert parse_listen(args.listen) == ("0.0.0.0", 9200)
    environment = [value.partition("=")[0] for key, value in service if key == "Environment"]
    check_environment(environment)
    assert values["StateDirectory"] == "esproxy"
    assert ("Environment", "ESPROXY_DATA_DIR=/var/lib/esproxy") in service
    assert values["KillSignal"] == "SIGTERM"
    assert int(values["TimeoutStopSec"]) > 30
    # The secrets key comes from a root-only file, never the unit itself.
    assert values["EnvironmentFile"] == "/etc/esproxy/secrets.env"
    assert not any("SECRETS_KEY" in value for key, value in service if key == "Environment")
