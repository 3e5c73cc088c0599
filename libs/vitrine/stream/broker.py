"""A real single-node Apache Kafka broker (KRaft) run from Maven Central jars, for dev, demo and tests.

The jars are resolved once per machine by `make kafka-jars` (deploy/kafka/pom.xml) into a cache
directory; this module formats a storage directory, starts `java -cp <jars> kafka.Kafka` with a small
heap, waits until the broker answers, and stops it (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import socket
import string
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from vitrine.errors import ConfigError, VitrineError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DEPLOY_DIR = REPO_ROOT / "deploy" / "kafka"
DEFAULT_KAFKA_LIB = Path.home() / ".cache" / "vitrine" / "kafka" / "lib"


class BrokerError(VitrineError):
    code = "broker_error"


def free_port() -> int:
    """A port the OS says is free now (bind to port 0); the broker binds it moments later."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kafka_classpath(lib_dir: Path | None = None) -> str:
    lib = Path(lib_dir or os.environ.get("VITRINE_KAFKA_LIB") or DEFAULT_KAFKA_LIB)
    if not any(lib.glob("kafka_2.13-*.jar")):
        raise ConfigError(
            f"no Kafka jars in {lib}: run `make kafka-jars` (resolves them from Maven Central) "
            "or set VITRINE_KAFKA_LIB to a folder with kafka_2.13 and its dependencies"
        )
    return f"{lib}/*"


@dataclass
class BrokerConfig:
    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "384m"
    lib_dir: Path | None = None
    deploy_dir: Path = DEFAULT_DEPLOY_DIR
    extra_properties: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"


class LocalKafkaBroker:
    """Start/stop one broker process. Usable as a context manager."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return self.config.bootstrap_servers

    @property
    def pid_file(self) -> Path:
        return self.config.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.config.data_dir / "broker.log"

    def render_properties(self) -> Path:
        template_path = self.config.deploy_dir / "server.properties"
        if not template_path.is_file():
            raise ConfigError(f"broker template {template_path} not found")
        text = string.Template(template_path.read_text()).substitute(
            port=self.config.port,
            controller_port=self.config.controller_port,
            log_dir=self.config.data_dir / "kraft-logs",
        )
        extra = "".join(f"{k}={v}\n" for k, v in self.config.extra_properties.items())
        out = self.config.data_dir / "server.properties"
        out.write_text(text + "\n" + extra)
        return out

    def _java(self, *args: str) -> list[str]:
        log4j = self.config.deploy_dir / "log4j2.yaml"
        return [
            "java",
            f"-Xmx{self.config.heap}",
            f"-Xms{min_heap(self.config.heap)}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # faster start, ample speed for a dev broker
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            kafka_classpath(self.config.lib_dir),
            *args,
        ]

    def format_storage(self, properties: Path) -> None:
        if (self.config.data_dir / "kraft-logs" / "meta.properties").exists():
            return  # already formatted: keep the data (restart keeps topics and offsets)
        cluster_id = "-"
        while cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid(): "-..." reads as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        cmd = self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties))
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {result.stderr.strip() or result.stdout}")

    def start(self, timeout_s: float = 60.0) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        properties = self.render_properties()
        self.format_storage(properties)
        with self.log_file.open("ab") as log_out:
            self._process = subprocess.Popen(
                self._java("kafka.Kafka", str(properties)),
                stdout=log_out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the broker directly
            )
        self.pid_file.write_text(
            json.dumps({"pid": self._process.pid, "bootstrap_servers": self.bootstrap_servers})
        )
        self.wait_ready(timeout_s)
        log.info("Kafka broker ready on %s (pid %d)", self.bootstrap_servers, self._process.pid)

    def wait_ready(self, timeout_s: float) -> None:
        from kafka.admin import KafkaAdminClient

        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(f"Kafka broker exited with {self._process.returncode}; see {self.log_file}")
            try:
                # a plain TCP probe first: kafka-python logs every refused connection as an error
                socket.create_connection(("127.0.0.1", self.config.port), timeout=1).close()
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=3000)
                try:
                    admin.list_topics()
                finally:
                    admin.close()
                return
            except Exception as e:  # not up yet: connection refused, no controller yet, ...
                last_error = e
                time.sleep(0.3)
        raise BrokerError(
            f"Kafka broker not ready after {timeout_s:.0f}s ({last_error}); see {self.log_file}"
        )

    def stop(self, grace_s: float = 20.0) -> None:
        pid = self._process.pid if self._process else read_pid(self.pid_file)
        if pid is None:
            return
        stop_pid(pid, grace_s)
        if self._process is not None:
            self._process.wait(timeout=5)
            self._process = None
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, for fault-injection tests."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def __enter__(self) -> LocalKafkaBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def min_heap(heap: str) -> str:
    return "64m" if heap[-1] in "mM" and int(heap[:-1]) >= 64 else heap


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(json.loads(pid_file.read_text())["pid"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def stop_pid(pid: int, grace_s: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # reap if it is our child, so kill(pid, 0) stops succeeding on a zombie
        try:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
        except ChildProcessError:
            pass
        time.sleep(0.1)
    log.warning("broker pid %d did not stop in %.0fs; killing it", pid, grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
