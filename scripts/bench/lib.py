"""Shared helpers for the benchmarks under scripts/bench/ (run by the bench venv's Python).

Processes: every one is started in its own session and killed, with its children, when the
benchmark exits for any reason (normal end, exception, SIGINT/SIGTERM/SIGHUP). Load generators
and drivers that need aiohttp or aiobotocore run under the project's .venv, so they use exactly
the versions esproxy uses; this module needs only the standard library (and matplotlib to plot).
"""

# ruff: noqa: RUF001 - the tables print the multiplication sign and an en dash on purpose

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import platform
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "bench"
PROJECT_PY = str(REPO / ".venv" / "bin" / "python")
CACHE = REPO / ".cache" / "bench"
# Quick runs are for working on the harness: their results never replace the recorded ones.
RESULTS = (
    CACHE / "quick"
    if (os.environ.get("BENCH_QUICK") == "1" or "--quick" in sys.argv)
    else REPO / "docs" / "bench"
)
WRK_LUA = str(BENCH / "wrk.lua")
# The contender (the proxy under test) gets core 1; load generators and upstreams share core 0.
LOAD_CPU = "0"
PROXY_CPU = "1"

_procs: list[subprocess.Popen[bytes]] = []
_tmpdirs: list[tempfile.TemporaryDirectory[str]] = []


def quick() -> bool:
    """BENCH_QUICK=1 (or --quick) shortens every run, for building and debugging the harness."""
    return os.environ.get("BENCH_QUICK") == "1" or "--quick" in sys.argv


def all_features() -> bool:
    """BENCH_FEATURES=all (set by scripts/bench/all): every esproxy runs with every feature on."""
    features = os.environ.get("BENCH_FEATURES") or "default"
    if features not in ("all", "default"):
        print(f"bench: BENCH_FEATURES=[{features}]: use all or default", file=sys.stderr)
        sys.exit(2)
    return features == "all"


def features_env(name: str, log_dir: Path) -> dict[str, str]:
    """The settings that turn every feature on, as one deployment would run them: metrics, the
    JSON access log written to a file (forwarded requests too), the embedding cache with its
    defaults, and the OpenAI-compatible bridge. Cluster mode with leases needs an OpenSearch node
    as the store: the benchmarks that have one add it (ESPROXY_UPSTREAM). A bench's own settings
    (e.g. the observability A/B's `off`) win over these."""
    if not all_features():
        return {}
    return {
        "ESPROXY_METRICS_ENABLED": "true",
        "ESPROXY_LOG_ACCESS": "true",
        "ESPROXY_LOG_FORMAT": "json",
        "ESPROXY_LOG_ACCESS_FILE": str(log_dir / f"{name}-access.log"),
        "ESPROXY_LOG_FORWARDED": "true",
        "ESPROXY_CACHE_ENABLED": "true",
        "ESPROXY_BRIDGE_ENABLED": "true",
    }


def tmpdir(prefix: str) -> Path:
    """A temporary directory removed at exit (kept with BENCH_KEEP=1, e.g. to read logs)."""
    if os.environ.get("BENCH_KEEP") == "1":
        path = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
        print(f"keeping {path}", file=sys.stderr)
        return path
    d = tempfile.TemporaryDirectory(prefix=f"bench-{prefix}-")
    _tmpdirs.append(d)
    return Path(d.name)


def start(
    name: str,
    argv: Sequence[str],
    *,
    cpus: str | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    stdout: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a process pinned to `cpus` (taskset execs, so the pid is the program's own)."""
    full = ["taskset", "-c", cpus, *argv] if cpus else list(argv)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        full,
        stdout=stdout if stdout is not None else out,
        stderr=out,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # its own process group: stop() kills workers/children too
    )
    proc.name = name  # type: ignore[attr-defined]
    _procs.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    else:  # the leader is gone; its group (e.g. spawned workers) may not be
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    if proc in _procs:
        _procs.remove(proc)


def stop_all() -> None:
    for proc in reversed(list(_procs)):
        stop(proc)
    for d in _tmpdirs:
        d.cleanup()
    _tmpdirs.clear()


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


atexit.register(stop_all)
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    """Until `url` answers anything over HTTP; fails early if `proc` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{getattr(proc, 'name', proc.args)} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def http(
    method: str,
    url: str,
    body: Any = None,
    timeout: float = 30,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def proc_status(pid: int, field: str) -> int:
    """A `/proc/<pid>/status` memory field (VmRSS, VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def group_pids(pid: int) -> list[int]:
    """The process and its descendants (esproxy --workers N runs N children)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    pids = [pid]
    for child in out.stdout.split():
        pids += group_pids(int(child))
    return pids


def cpu_seconds(proc: subprocess.Popen[bytes] | None) -> float:
    """User + system CPU time used so far by a process and its descendants that are alive."""
    if proc is None:
        return 0.0
    total = 0
    for pid in group_pids(proc.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


# ---- esproxy, the emulator, nginx -----------------------------------------------------------


def esproxy(
    name: str,
    *args: str,
    cpus: str | None = PROXY_CPU,
    env: dict[str, str] | None = None,
    log_dir: Path,
    experiment: dict[str, str] | None = None,
) -> tuple[str, subprocess.Popen[bytes]]:
    """`esproxy serve` on a free port; returns its URL once /_esproxy/health answers.

    `experiment`: BENCH_EXP_* knobs for scripts/bench/esproxy_experiment.py, which applies a
    proposed change from outside esproxy/ so that its gain can be measured.
    """
    port = free_port()
    data = tmpdir(name)
    launcher = [str(BENCH / "esproxy_experiment.py")] if experiment else ["-m", "esproxy"]
    proc = start(
        name,
        [
            PROJECT_PY,
            *launcher,
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(data),
            "--log-level",
            "WARNING",
            *args,
        ],
        cpus=cpus,
        env={
            "ESPROXY_AUTH_MODE": "none",
            **features_env(name, log_dir),
            **(env or {}),
            **(experiment or {}),
        },
        log=log_dir / f"{name}.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/_esproxy/health", proc)
    return url, proc


def opensearch_node(logs: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """The OpenSearch 2.19.6 test node on core 0; returns its URL once it is ready."""
    node = start(
        "opensearch",
        [str(REPO / "scripts" / "opensearch-node")],
        cpus=LOAD_CPU,
        stdout=subprocess.PIPE,
        log=logs / "opensearch.log",
    )
    assert node.stdout is not None
    began = time.monotonic()
    ready, _, _ = select.select([node.stdout], [], [], 240)  # the URL is printed once ready
    url = node.stdout.readline().decode().strip() if ready else ""
    if not url.startswith("http"):
        raise RuntimeError("the OpenSearch node did not start")
    print(f"  OpenSearch node ready in {time.monotonic() - began:.0f} s", flush=True)
    return url, node


def secrets_key() -> str:
    """A fresh `esproxy generate-key`, for a store in the cluster."""
    return subprocess.run(
        [PROJECT_PY, "-m", "esproxy", "generate-key"], capture_output=True, text=True, check=True
    ).stdout.strip()


def ensure_uvloop() -> None:
    target = CACHE / "uvloop"
    if not (target / "uvloop").is_dir():
        subprocess.run(
            [PROJECT_PY, "-m", "pip", "install", "-q", "--target", str(target), "uvloop"],
            check=True,
        )


def emulator(
    name: str, *args: str, cpus: str | None = LOAD_CPU, log_dir: Path, port: int = 0
) -> tuple[str, subprocess.Popen[bytes]]:
    port = port or free_port()
    proc = start(
        name,
        [
            PROJECT_PY,
            "-m",
            "esproxy",
            "bedrock-emulator",
            "--listen",
            f"127.0.0.1:{port}",
            "--log-level",
            "WARNING",
            *args,
        ],
        cpus=cpus,
        log=log_dir / f"{name}.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/_emulator/faults", proc)
    return url, proc


NGINX_MAIN = """
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_max_body_size 0;
  {http}
}}
"""


def nginx(name: str, http_block: str, *, cpus: str, workers: int = 1) -> subprocess.Popen[bytes]:
    d = tmpdir(name)
    conf = d / "nginx.conf"
    conf.write_text(NGINX_MAIN.format(workers=workers, dir=d, http=http_block))
    return start(name, ["nginx", "-c", str(conf), "-p", str(d)], cpus=cpus, log=d / "stderr.log")


def nginx_proxy(name: str, upstream: str, *, cpus: str = PROXY_CPU) -> tuple[str, Any]:
    """nginx as a streaming reverse proxy: keep-alive to the upstream, no request buffering."""
    port = free_port()
    host = upstream.split("//", 1)[1]
    proc = nginx(
        name,
        f"""
  upstream backend {{ server {host}; keepalive 256; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
    }}
  }}""",
        cpus=cpus,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url, proc)
    return url, proc


# ---- wrk ------------------------------------------------------------------------------------


def wrk(
    url: str,
    *,
    connections: int,
    duration: float,
    method: str = "GET",
    body: str | None = None,
    content_type: str = "application/json",
    rate: float = 0,
    header: str | None = None,
    cpus: str = LOAD_CPU,
    measure: subprocess.Popen[bytes] | None = None,
) -> dict[str, Any]:
    """One wrk run (1 thread) through scripts/bench/wrk.lua; `rate` > 0 paces a fixed total rate.

    Returns requests, rps, errors and latency percentiles in ms (p50, p90, p99, p999, max), and
    with `measure`, the CPU that process (and its children) spent per request: unlike throughput,
    that cost hardly moves when other work shares the machine.
    """
    env = {
        "WRK_METHOD": method,
        "WRK_CONTENT_TYPE": content_type,
        "WRK_RATE": str(rate),
        "WRK_HEADER": header or "",
    }
    if body is not None:
        f = tmpdir("wrk-body") / "body"
        f.write_text(body)
        env["WRK_BODY_FILE"] = str(f)
    argv = [
        "taskset",
        "-c",
        cpus,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "30s",
        "-s",
        WRK_LUA,
        url,
    ]
    cpu_before = cpu_seconds(measure)
    out = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=duration + 60
    )
    cpu = cpu_seconds(measure) - cpu_before
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    raw = json.loads(line[len("WRKJSON ") :])
    secs = raw["duration_us"] / 1e6
    # No completed request (all slower than the run): no latency to report, not zero.
    lat = {k: v / 1000 if raw["requests"] else float("nan") for k, v in raw["latency_us"].items()}
    errors = sum(raw["errors"].values())
    return {
        "requests": raw["requests"],
        "rps": raw["requests"] / secs,
        "errors": errors,
        "error_detail": raw["errors"],
        "latency_ms": lat,
        "connections": connections,
        "duration_s": secs,
        "target_rate": rate or None,
        "cpu_ms_per_request": cpu * 1000 / raw["requests"] if measure and raw["requests"] else None,
    }


# ---- results --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "load_avg_at_start": [round(x, 2) for x in load],
        "noisy": load[0] >= 0.5,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "quick": quick(),
        "features": "all" if all_features() else "default",
    }


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(no_nan(data), indent=2, allow_nan=False) + "\n")
    return path


# What a load reading of 0.5 or more says; it includes the benchmark's own processes.
BUSY = "busy: the 1-minute load includes the benchmark's own processes of the minute before"


def publish(name: str, report: Any, *args: Any, recorded: dict[str, Any] | None = None) -> str:
    """Print what `report(*args)` prints, and keep it as the latest result: docs/bench/<name>.md,
    and the block between `<!-- bench:<name> -->` and `<!-- /bench:<name> -->` in
    docs/benchmarks.md (the prose around it is left alone). `recorded`: the machine the results
    were taken on, when that was not now (a re-rendered summary)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report(*args)
    info = recorded or machine()
    head = (
        f"_Recorded {info['when']} on {info['cpus']} cores, 1-minute load "
        f"{info['load_avg_at_start'][0]} at the end"
        f"{f' ({BUSY})' if info['noisy'] else ''}"
        f"{'; QUICK run, not representative' if info['quick'] else ''}._\n"
    )
    text = head + buf.getvalue().rstrip() + "\n"
    print(text, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    doc = REPO / "docs" / "benchmarks.md"
    if quick():
        return text
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    if doc.exists():
        page = doc.read_text()
        if begin in page and end in page:
            before, rest = page.split(begin, 1)
            after = rest.split(end, 1)[1]
            doc.write_text(f"{before}{begin}\n{text}{end}{after}")
    return text


def no_nan(value: Any) -> Any:
    """NaN (no measurement) as JSON null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [no_nan(v) for v in value]
    return value


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (also readable in a terminal)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    line = lambda r: "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(list(headers)), sep, *(line(r) for r in cells)])


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if value is None:
        return "–"
    return str(value)


def ratio(a: float | None, b: float | None) -> float:
    return a / b if a is not None and b else float("nan")


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def banner(title: str) -> None:
    info = machine()
    print(
        f"# {title}  ({info['when']}, load {info['load_avg_at_start']}, "
        f"{info['cpus']} cpus{', QUICK' if info['quick'] else ''})",
        flush=True,
    )
    if info["noisy"]:
        print("note: the machine is busy (1-min load >= 0.5); numbers will be noisy", flush=True)


def refuse_unknown_options(script: str, argv: list[str], options: dict[str, bool]) -> None:
    """One line and exit 2 for an option the script does not take: these scripts read their
    options by name, so a mistyped one (or `--help`) would otherwise start a full run."""
    i = 0
    while i < len(argv):
        takes_value = options.get(argv[i])
        if takes_value is None:
            print(
                f"{script}: unknown argument [{argv[i]}]; options: {', '.join(options)}",
                file=sys.stderr,
            )
            sys.exit(2)
        if takes_value and i + 1 >= len(argv):
            print(f"{script}: {argv[i]} needs a value", file=sys.stderr)
            sys.exit(2)
        i += 2 if takes_value else 1
