"""Command line: builds a Config and a uvicorn server, nothing more."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from gateway.cli import admin, embedded_store, route
from gateway.cli.embedded_store import EmbeddedStore, EmbeddedStoreError
from gateway.cli.listeners import run_server
from gateway.config import Config, ConfigError, ServerConfig, load_config
from gateway.observability.metrics import MULTIPROC_ENV
from gateway.server.protocol import protocol_for

log = logging.getLogger("gateway")
CONFIG_ENV = "O1GW_CONFIG"
LOG_LEVEL_ENV = "O1GW_LOG_LEVEL"


def read_config(path: str | None, env: Mapping[str, str]) -> Config:
    """Find and load the config: --config, $O1GW_CONFIG, ./config/gateway.yaml, the packaged copy."""
    chosen = path or env.get(CONFIG_ENV)
    if chosen:
        file = Path(chosen)
        if not file.is_file():
            raise ConfigError(f"{chosen}: config file not found")
        return load_config(file.read_text(), env, source=str(file))
    local = Path("config/gateway.yaml")
    if local.is_file():
        return load_config(local.read_text(), env, source=str(local))
    return load_config(_packaged_config(), env, source="packaged config/gateway.yaml")


def _packaged_config() -> str:
    try:  # installed: config/ travels in the wheel as gateway._config
        return resources.files("gateway._config").joinpath("gateway.yaml").read_text()
    except ModuleNotFoundError:  # running from a source checkout
        return (Path(__file__).resolve().parents[2] / "config" / "gateway.yaml").read_text()


def worker_app() -> Starlette:
    """App factory for uvicorn worker processes; `serve` passes its choices through the env."""
    from gateway.app import create_app

    # Spawned workers start with bare logging: without this their warnings would be lost.
    configure_logging(os.environ.get(LOG_LEVEL_ENV, "info"))
    app = create_app(read_config(None, os.environ))
    tune_gc()
    return app


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def tune_gc() -> None:
    """Make the cyclic GC cheap for a long-running proxy.

    Under load the cycle collector takes a noticeable share of the CPU: each proxied request
    makes many short-lived objects, and every few hundred allocations start a collection that
    walks them. Freezing what startup allocated (modules, config, app) takes it out of every
    collection, and collecting the young generation less often lowers the CPU per request
    without letting memory grow (the benchmarks measure both).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="o1-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="YAML config file (default: config/gateway.yaml)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="also listen on this port, for GET /metrics alone and without a key (keep it internal)",
    )
    serve.add_argument(
        "--simulate", action="store_true", help="serve from the built-in simulated upstream"
    )
    serve.add_argument("--log-level", default="info")

    simulate = sub.add_parser("simulate", help="run the simulated OpenAI upstream alone")
    simulate.add_argument("--config")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=9000)
    simulate.add_argument(
        "--request-log", type=int, help="remember this many requests at /_sim/requests"
    )
    simulate.add_argument("--latency-ms", type=float)
    simulate.add_argument("--log-level", default="warning")

    hash_key = sub.add_parser(
        "hash-key",
        help="print the SHA-256 digest of a key, for the sha256 of a key in a teams file",
    )
    hash_key.add_argument("key")
    admin.add_commands(sub)
    route.add_command(sub)

    args = parser.parse_args(argv)
    configure_logging(args.log_level if "log_level" in args else "info")
    if args.command in admin.COMMANDS:
        return admin.run(args)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "route":
            return route.run(args, read_config(args.config, os.environ), sys.stdin, sys.stdout)
    except ConfigError as exc:
        print(f"o1-gateway: config error: {exc}", file=sys.stderr)
        return 2
    from gateway.teams.store import key_digest

    print(key_digest(args.key))
    return 0


def _serve(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.simulate:
        env["O1GW__SIMULATE"] = "true"
    if args.config:
        env[CONFIG_ENV] = str(Path(args.config).resolve())
    if args.metrics_port is not None:
        # Through the environment, so the app (and every worker process) has it in its config.
        env["O1GW__SERVER__METRICS_PORT"] = str(args.metrics_port)
    config = read_config(None, env)
    server = config.server
    server = dataclasses.replace(
        server,
        host=args.host or server.host,
        port=args.port or server.port,
        workers=args.workers or server.workers,
    )
    if config.simulate:
        reason = "--simulate given" if args.simulate else "OPENAI_API_KEY is not set"
        log.warning("%s: serving from the built-in simulated upstream, not OpenAI", reason)
    else:
        log.info("upstream %s via %s", config.upstream.base_url, config.upstream.client)
    store = None
    if not config.redis.url:
        try:
            store = _embedded_store(config, server.workers)
        except EmbeddedStoreError as exc:
            print(f"o1-gateway: {exc}", file=sys.stderr)
            return 2
        if store is not None:
            env["REDIS_URL"] = store.url
            config = dataclasses.replace(
                config, redis=dataclasses.replace(config.redis, url=store.url)
            )
    try:
        _run(config, server, env, args.log_level)
    finally:
        if store is not None:
            store.stop()  # after the workers: their last settles land first
    return 0


def _embedded_store(config: Config, workers: int) -> EmbeddedStore | None:
    """Without REDIS_URL: the store `serve` starts itself, or None for the in-memory one."""
    directory = config.redis.embedded_dir
    binary = embedded_store.redis_server() if directory else None
    if binary is None:
        why = "redis-server is not on PATH" if directory else "redis.embedded_dir is empty"
        if workers > 1:
            raise EmbeddedStoreError(
                f"--workers {workers} needs one store that all workers share, and REDIS_URL is "
                f"not set and {why}: set REDIS_URL to a Redis server, or install redis-server "
                "(the gateway then starts one itself), or run one worker"
            )
        log.warning(
            "REDIS_URL is not set and %s: teams, keys and spend are kept in this process's "
            "memory and lost when the gateway stops",
            why,
        )
        return None
    store = embedded_store.start(Path(directory).expanduser(), binary)
    log.info(
        "REDIS_URL is not set: the gateway's own redis-server keeps teams, keys and spend in %s",
        store.directory,
    )
    return store


def _run(config: Config, server: ServerConfig, env: dict[str, str], log_level: str) -> None:
    metrics = None
    if server.metrics_port:
        if server.metrics_port == server.port:
            raise ConfigError("--metrics-port: must differ from the API port")
        metrics = (server.metrics_host or server.host, server.metrics_port)
    # Worker processes inherit the limit.
    needed = server.max_connections + config.upstream.pool_size + 256  # and Redis, logs, ...
    if raise_open_files(needed) < needed:
        log.warning(
            "open files limited to %d: fewer than server.max_connections + upstream.pool_size",
            resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        )
    common: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "log_level": log_level,
        "loop": "uvloop",
        "http": protocol_for(server),
        "access_log": False,
        # No X-Forwarded-For rewriting: the gateway does not use client addresses.
        "proxy_headers": False,
        "timeout_graceful_shutdown": int(server.shutdown_timeout_s),
    }
    if server.workers > 1:
        # Workers are separate processes: they rebuild the same config from the environment,
        # and keep their metrics in files a scrape adds up (see gateway.observability.metrics).
        configured = env.get(MULTIPROC_ENV)
        env[MULTIPROC_ENV] = _metrics_dir(configured)
        env[LOG_LEVEL_ENV] = log_level
        os.environ.update(env)
        try:
            run_server(
                "gateway.cli.main:worker_app",
                metrics,
                factory=True,
                workers=server.workers,
                **common,
            )
        finally:
            if not configured:  # the temporary one made for this run, not the operator's
                shutil.rmtree(env[MULTIPROC_ENV], ignore_errors=True)
    else:
        from gateway.app import create_app

        app = create_app(config)
        tune_gc()
        run_server(app, metrics, **common)


def raise_open_files(needed: int) -> int:
    """Lift the soft open-files limit towards `needed` (as far as the hard limit allows), and
    return it: every client and upstream connection is an open file, and a soft limit of 1024,
    still common, would refuse clients long before `server.max_connections`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return needed
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def _metrics_dir(configured: str | None) -> str:
    """A directory for multiprocess metrics, emptied: files of an earlier run would add their
    counts to this one's (a container restart keeps its emptyDir)."""
    path = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="o1gw-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return str(path)


def _simulate(args: argparse.Namespace) -> int:
    from gateway.simulator import create_simulator

    config = read_config(args.config, os.environ).simulator
    if args.request_log is not None:
        config = dataclasses.replace(config, request_log=args.request_log)
    if args.latency_ms is not None:
        config = dataclasses.replace(config, latency_ms=args.latency_ms)
    log.warning(
        "simulated OpenAI upstream on http://%s:%d/v1 (keys: %s)",
        args.host,
        args.port,
        ", ".join(config.api_keys),
    )
    uvicorn.run(
        create_simulator(config),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        loop="uvloop",
        http="httptools",
        access_log=False,
    )
    return 0
