"""A whole local vitrine stack as real processes: Kafka broker, encoder(s), recommender(s).

Used by `vitrine demo`, the end-to-end tests and the benchmarks, so all three exercise the services
exactly as they are deployed (separate processes talking over Kafka and gRPC).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vitrine.errors import VitrineError
from vitrine.stream.broker import BrokerConfig, LocalKafkaBroker, free_port
from vitrine.stream.kafka import KafkaSettings, TopicNames
from vitrine.stream.topics import ensure_catalog_topics

log = logging.getLogger(__name__)


class StackError(VitrineError):
    code = "stack_error"


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int
    grpc_port: int | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def grpc_target(self) -> str:
        if self.grpc_port is None:
            raise StackError(f"{self.name} has no gRPC port")
        return f"127.0.0.1:{self.grpc_port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self, grace_s: float = 20.0) -> int:
        """SIGTERM (graceful: finish batch, commit, leave group), SIGKILL after the grace period."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", self.name, grace_s)
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def hangup(self) -> None:
        """SIGHUP: the recommender re-reads its configuration (hot reload of models and variants)."""
        if self.alive():
            self.process.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """SIGKILL: a crash, for fault-injection tests."""
        if self.alive():
            self.process.kill()
            self.process.wait()

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The current value of one series on the service's /metrics page (0 if absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        wanted = labels or {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in wanted.items()):
                    return float(sample.value)
        return 0.0

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class LocalStack:
    work_dir: Path
    model_dir: Path
    partitions: int = 2
    broker: LocalKafkaBroker | None = None
    topics: TopicNames = field(default_factory=TopicNames)
    services: list[ServiceProcess] = field(default_factory=list)
    owns_broker: bool = True  # False after attach_broker: stop() leaves a shared broker running

    @property
    def kafka(self) -> KafkaSettings:
        if self.broker is None:
            raise StackError("the broker is not started")
        return KafkaSettings(self.broker.bootstrap_servers)

    def start_broker(self) -> LocalKafkaBroker:
        self.broker = LocalKafkaBroker(BrokerConfig(self.work_dir / "kafka", free_port(), free_port()))
        self.broker.start()
        ensure_catalog_topics(self.kafka, self.topics, self.partitions)
        return self.broker

    def attach_broker(self, broker: LocalKafkaBroker) -> LocalKafkaBroker:
        """Use a broker that is already running (e.g. a test session's); `stop()` leaves it running."""
        self.broker = broker
        self.owns_broker = False
        ensure_catalog_topics(self.kafka, self.topics, self.partitions)
        return broker

    def _spawn(
        self, name: str, service: str, args: list[str], metrics_port: int, grpc_port: int | None = None
    ) -> ServiceProcess:
        log_path = self.work_dir / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                # `vitrine <service>`: the services add their commands to the CLI (entry points)
                [sys.executable, "-m", "vitrine.cli.main", service, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        spawned = ServiceProcess(name, process, log_path, metrics_port, grpc_port)
        self.services.append(spawned)
        return spawned

    def start_encoder(
        self,
        name: str = "encoder",
        group_id: str | None = "vitrine-encoder",
        flags: tuple[str, ...] = (),
        wait: bool = True,
        model_dir: Path | None = None,
        **options: str,
    ) -> ServiceProcess:
        """Start `vitrine encoder` as a process. `options` become `--key value`, `flags` are passed
        as they are (e.g. "--backfill"); group_id None lets the service choose (backfill groups);
        `model_dir` encodes with another model than the stack's (e.g. a complementary model)."""
        metrics_port = free_port()
        model = model_dir or self.model_dir
        args = ["--model", str(model), "--bootstrap-servers", self.kafka.bootstrap_servers]
        args += ["--metrics-port", str(metrics_port)]
        if group_id is not None:
            args += ["--group-id", group_id]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", value]
        service = self._spawn(name, "encoder", [*args, *flags], metrics_port)
        if wait:
            wait_http_ok(service, timeout_s=120)
        return service

    def start_recommender(
        self,
        name: str = "recommender",
        vectors_topic: str | None = None,
        config: Mapping[str, Any] | None = None,
        with_model_dir: bool = True,
        wait: bool = True,
    ) -> ServiceProcess:
        """A recommender serving the stack's model (`--model`, unless `with_model_dir` is False) and
        whatever `config` (the `recommender:` section of a YAML file: models, variants, ...) adds;
        `wait` until it reports SERVING (else `wait_grpc_serving` later)."""
        metrics_port, grpc_port = free_port(), free_port()
        args = ["--model", str(self.model_dir)] if with_model_dir else []
        if config is not None:
            args += ["--config", str(self.write_recommender_config(name, config))]
        args += [
            "--bootstrap-servers",
            self.kafka.bootstrap_servers,
            "--grpc-port",
            str(grpc_port),
            "--metrics-port",
            str(metrics_port),
            "--index-path",
            str(self.work_dir / f"{name}-index"),
        ]
        if vectors_topic is not None:
            args += ["--vectors-topic", vectors_topic]
        service = self._spawn(name, "recommender", args, metrics_port, grpc_port)
        if wait:
            wait_grpc_serving(service, timeout_s=120)
        return service

    def start_feedback(self, name: str = "feedback", wait: bool = True, **options: str) -> ServiceProcess:
        """Start `vitrine feedback` as a process; `options` become `--key value` (topics, group id, ...)."""
        metrics_port = free_port()
        args = ["--bootstrap-servers", self.kafka.bootstrap_servers, "--metrics-port", str(metrics_port)]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", value]
        service = self._spawn(name, "feedback", args, metrics_port)
        if wait:
            wait_http_ok(service, timeout_s=120)
        return service

    def write_recommender_config(self, name: str, config: Mapping[str, Any]) -> Path:
        """(Re)write the YAML file a recommender named `name` reads; `ServiceProcess.hangup()` applies it."""
        path = self.work_dir / f"{name}.yaml"
        plain = json.loads(json.dumps({"recommender": dict(config)}, default=str))  # Paths → strings
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(plain, sort_keys=False))
        tmp.replace(path)  # a reload never reads a half-written file
        return path

    def stop(self) -> None:
        for service in reversed(self.services):
            service.terminate()
        self.services.clear()
        if self.broker is not None and self.owns_broker:
            self.broker.stop()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_http_ok(service: ServiceProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not service.alive():
            raise StackError(
                f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}"
            )
        try:
            with urllib.request.urlopen(service.metrics_url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise StackError(f"{service.name} did not expose /metrics within {timeout_s:.0f}s:\n{service.log_tail()}")


def wait_grpc_serving(service: ServiceProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(service.grpc_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if not service.alive():
                raise StackError(
                    f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}"
                )
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise StackError(f"{service.name} was not SERVING within {timeout_s:.0f}s:\n{service.log_tail()}")
