"""Real Redis topologies for tests and the benchmark, started from /usr/bin/redis-server on free loopback ports,
each node in a temporary directory of its own, keeping nothing on disk:

- `redis_cluster()`: a Redis Cluster of three primaries with one replica each (`redis-cli --cluster create`).
- `redis_sentinel()`: a primary, one replica and three Sentinels watching them (quorum 2).

The timeouts that decide how fast a failover goes are short here (`NODE_TIMEOUT_MS`, `DOWN_AFTER_MS`), so that
the failover tests take seconds; docs/deployment.md says what to use in production."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support import free_port, wait_until_serving

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
# Cluster: how long a primary may be unreachable before the others mark it failed and its replica takes over.
NODE_TIMEOUT_MS = 2000
# Sentinel: how long the primary may not answer before a Sentinel thinks it down.
DOWN_AFTER_MS = 2000
SENTINEL_MASTER = "chatbot"
CREATE_OPTIONS = ("--cluster-replicas", "1", "--cluster-yes")


def in_sync(primary: redis.Redis) -> bool:
    """The primary has a replica that finished its first sync (until then it has none of the data)."""
    info = primary.info("replication")
    replicas = [info[name] for name in info if name.startswith("slave") and isinstance(info[name], dict)]
    return info["role"] == "master" and any(replica.get("state") == "online" for replica in replicas)


@dataclass
class Node:
    """One redis-server process."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, **options) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2, **options)

    def kill(self) -> None:
        """kill -9: no shutdown, no goodbye to the replicas or the cluster."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its connections but answers nothing, as a replica that lags."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def alive(self) -> bool:
        return self.process.poll() is None


class _Exited(Exception):
    """A redis-server process ended before it answered."""


def start_server(
    directory: Path, command: Callable[[int], list[str]], *, what: str, password: str | None = None, bus: bool = False
) -> Node:
    """The redis-server process `command(port)` on a free loopback port (and its cluster bus port, port + 10000,
    with `bus`), once it answers PING. A port free when chosen may be taken before the process binds it (the tests'
    own connections draw their local ports from the same range), and the process then exits: another is tried."""
    for _ in range(5):
        port = free_port(with_bus=bus)
        process = subprocess.Popen(command(port), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        node = Node(port, directory, process)

        def answers(node: Node = node) -> bool:
            if not node.alive():
                raise _Exited(f"{what} on {node.port} exited (see {directory})")
            return bool(node.client(password=password).ping())

        try:
            wait_until_serving(answers, 10, f"{what} on {port}")
        except _Exited:
            continue
        return node
    raise RuntimeError(f"{what} exited at start on five ports in a row (see {directory})")


def start_node(directory: Path, *options: str, password: str | None = None, bus: bool = False) -> Node:
    """A data node (a cluster node with `bus`), keeping nothing on disk."""
    directory.mkdir(parents=True, exist_ok=True)
    auth = ["--requirepass", password, "--masterauth", password] if password else []

    def command(port: int) -> list[str]:
        return [
            REDIS_SERVER,
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(directory / "redis.log")),
            # A replica's first sync starts at once instead of after 5 s (nothing is kept on disk anyway).
            *("--repl-diskless-sync-delay", "0"),
            *auth,
            *options,
        ]

    return start_server(directory, command, what="redis-server", password=password, bus=bus)


def stop_nodes(nodes: list[Node]) -> None:
    for node in nodes:
        if node.alive():
            node.process.terminate()
    for node in nodes:
        try:
            node.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node.kill()


@dataclass
class Cluster:
    nodes: list[Node]
    directory: Path
    password: str | None = None

    def url(self, node: Node | None = None) -> str:
        target = node or self.nodes[0]
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{target.port}/0"

    def admin_client(self, node: Node) -> redis.Redis:
        return node.client(password=self.password)

    def role(self, node: Node) -> str:
        return self.admin_client(node).info("replication")["role"]

    def primaries(self) -> list[Node]:
        return [node for node in self.nodes if node.alive() and self.role(node) == "master"]

    def replicas_of(self, primary: Node) -> list[Node]:
        found = []
        for node in self.nodes:
            if node is primary or not node.alive():
                continue
            info = self.admin_client(node).info("replication")
            if info["role"] == "slave" and int(info["master_port"]) == primary.port:
                found.append(node)
        return found

    def healthy(self) -> bool:
        """Every live node says the cluster is ok, and every live primary has a replica in sync."""
        for node in self.nodes:
            if node.alive() and self.admin_client(node).cluster("info")["cluster_state"] != "ok":
                return False
        return all(in_sync(self.admin_client(primary)) for primary in self.primaries())

    def flush(self) -> None:
        for primary in self.primaries():
            self.admin_client(primary).flushall()


@contextmanager
def redis_cluster(primaries: int = 3, password: str | None = None) -> Iterator[Cluster]:
    """A cluster of `primaries` primaries with one replica each, torn down (processes and files) on leaving."""
    directory = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
    nodes: list[Node] = []
    try:
        for index in range(2 * primaries):
            nodes.append(
                start_node(
                    directory / f"node-{index}",
                    *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                    *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                    # A replica may always take over, however long it was cut off: these nodes keep nothing anyway.
                    *("--cluster-replica-validity-factor", "0"),
                    password=password,
                    bus=True,
                )
            )
        auth = ["-a", password, "--no-auth-warning"] if password else []
        subprocess.run(
            [REDIS_CLI, *auth, "--cluster", "create", *(node.address for node in nodes), *CREATE_OPTIONS],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
        cluster = Cluster(nodes, directory, password)
        wait_until_serving(cluster.healthy, 30, "the cluster to be ok with a replica per primary")
        yield cluster
    finally:
        stop_nodes(nodes)
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class SentinelSetup:
    primary: Node
    replica: Node
    sentinels: list[Node]
    directory: Path
    password: str | None = None
    sentinel_password: str | None = None
    nodes: list[Node] = field(default_factory=list)

    @property
    def sentinel_addresses(self) -> str:
        return ",".join(node.address for node in self.sentinels)

    def sentinel_client(self, node: Node) -> redis.Redis:
        return node.client(password=self.sentinel_password)

    def current_primary_port(self) -> int:
        for node in self.sentinels:
            if node.alive():
                try:
                    _, port = self.sentinel_client(node).sentinel_get_master_addr_by_name(SENTINEL_MASTER)
                    return int(port)
                except redis.RedisError:
                    continue
        raise RuntimeError("no Sentinel answers")

    def data_node(self, port: int) -> Node:
        return next(node for node in (self.primary, self.replica) if node.port == port)

    def healthy(self) -> bool:
        primary = self.data_node(self.current_primary_port())
        if not in_sync(primary.client(password=self.password)):
            return False
        seen = [self.sentinel_client(s).sentinel_master(SENTINEL_MASTER) for s in self.sentinels if s.alive()]
        return all(int(m["num-other-sentinels"]) >= len(self.sentinels) - 1 for m in seen)


@contextmanager
def redis_sentinel(password: str | None = None, sentinel_password: str | None = None) -> Iterator[SentinelSetup]:
    """A primary, a replica and three Sentinels (quorum 2), torn down on leaving."""
    directory = Path(tempfile.mkdtemp(prefix="redis-sentinel-"))
    nodes: list[Node] = []
    try:
        primary = start_node(directory / "primary", password=password)
        nodes.append(primary)
        replica = start_node(directory / "replica", "--replicaof", "127.0.0.1", str(primary.port), password=password)
        nodes.append(replica)
        sentinels = []
        for index in range(3):
            sentinel_dir = directory / f"sentinel-{index}"
            sentinel_dir.mkdir()
            config = [
                f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary.port} 2",
                f"sentinel down-after-milliseconds {SENTINEL_MASTER} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {SENTINEL_MASTER} 10000",
                f"sentinel parallel-syncs {SENTINEL_MASTER} 1",
            ]
            if password:
                config.append(f"sentinel auth-pass {SENTINEL_MASTER} {password}")
            if sentinel_password:
                config.append(f"requirepass {sentinel_password}")
                config.append(f"sentinel sentinel-pass {sentinel_password}")
            (sentinel_dir / "sentinel.conf").write_text("\n".join(config) + "\n")
            node = start_server(
                sentinel_dir,
                lambda port, sentinel_dir=sentinel_dir: [
                    REDIS_SERVER,
                    str(sentinel_dir / "sentinel.conf"),
                    "--sentinel",
                    *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(sentinel_dir)),
                    *("--logfile", str(sentinel_dir / "sentinel.log")),
                ],
                what="sentinel",
                password=sentinel_password,
            )
            nodes.append(node)
            sentinels.append(node)
        setup = SentinelSetup(primary, replica, sentinels, directory, password, sentinel_password, nodes)
        wait_until_serving(setup.healthy, 30, "the Sentinels to see the primary, its replica and each other")
        yield setup
    finally:
        stop_nodes(nodes)
        shutil.rmtree(directory, ignore_errors=True)
