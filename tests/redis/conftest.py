"""A real multi-node Redis Cluster for the tests that run on one (admission's script, the
whole gateway end to end)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.conftest import free_port

NODES = 3


def redis_cli(*args: str) -> str:
    return subprocess.run(
        ["redis-cli", *args], capture_output=True, text=True, timeout=30, check=True
    ).stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[int]]:
    """Three masters on loopback, slots split evenly; yields their ports."""
    yield from running_cluster()


def running_cluster(replicas: int = 0, node_timeout_ms: int = 15_000) -> Iterator[list[int]]:
    """A cluster of three masters, each with `replicas` replicas, for as long as the generator
    runs; yields the nodes' ports. A replica takes over a master that does not
    answer for `node_timeout_ms`."""
    binary = shutil.which("redis-server")
    if binary is None or shutil.which("redis-cli") is None:
        pytest.fail(
            "redis-server and redis-cli are needed: the README's test command installs them"
        )
    ports = [cluster_port() for _ in range(NODES * (1 + replicas))]
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for port in ports:
                procs.append(
                    subprocess.Popen(
                        [
                            binary,
                            "--port",
                            str(port),
                            "--bind",
                            "127.0.0.1",
                            "--cluster-enabled",
                            "yes",
                            "--cluster-config-file",
                            f"nodes-{port}.conf",
                            "--cluster-node-timeout",
                            str(node_timeout_ms),
                            "--dir",
                            tmp,
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                        ],
                        stdout=subprocess.DEVNULL,
                    )
                )
            for port in ports:
                wait_for(lambda p=port: ping(p), f"node {port} to start")
            redis_cli(
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            )
            for port in ports:
                wait_for(
                    lambda p=port: "cluster_state:ok" in redis_cli("-p", str(p), "cluster", "info"),
                    f"node {port} to see the cluster ok",
                )
                # A replica's first sync begins seconds after it joins (diskless, delayed): a
                # master that died before would leave its replica empty.
                wait_for(lambda p=port: synced(p), f"node {port}'s replication to be up")
            yield ports
        finally:
            # Always stop the nodes, whatever failed above.
            for proc in procs:
                proc.kill()
            for proc in procs:
                proc.wait()


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = free_port()
        if port + 10_000 > 65_535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


def synced(port: int) -> bool:
    """A master, or a replica whose link to its master is up."""
    info = redis_cli("-p", str(port), "info", "replication")
    return "role:master" in info or "master_link_status:up" in info


def ping(port: int) -> bool:
    try:
        return redis_cli("-p", str(port), "ping").strip() == "PONG"
    except subprocess.CalledProcessError:
        return False


def wait_for(condition: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
