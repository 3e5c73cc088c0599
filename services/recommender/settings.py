"""Recommender service configuration (YAML section `recommender`, env prefix `VITRINE_RECOMMENDER_`).

Models and experiments. The simplest deployment serves one similar model: `model_dir` (its vectors
in `vectors_topic` / `qdrant_collection`). `complementary_model_dir` adds a complementary model. Any
number of models go in `models:`, and experiment arms in `variants:`, e.g.

    recommender:
      models:
        - {name: sim-a, model_dir: /models/similar-a}            # vectors: catalog.vectors.<version>
        - {name: sim-b, model_dir: /models/similar-b}
        - {name: compl, model_dir: /models/complementary, vectors_topic: catalog.vectors.compl}
      variants:
        - {name: control, weight: 90, similar: sim-a, complementary: compl}
        - {name: treatment, weight: 10, similar: sim-b, complementary: compl}
      experiment_salt: similar-b-2026-11

Without `variants`, one variant "default" serves the first similar and the first complementary model.
In the environment the lists are JSON (VITRINE_RECOMMENDER_MODELS='[{"name": ...}]'). SIGHUP re-reads
the file and the environment and applies `models`, `variants` and `experiment_salt` without dropping a
request (docs/API.md, "Models, variants and hot reload").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vitrine.api.overload import OverloadLimits
from vitrine.api.security import parse_tokens
from vitrine.errors import ConfigError
from vitrine.index.settings import (
    LIVE_ALIAS,
    LIVE_VECTORS_TOPIC,
    IndexSettings,
    versioned_collection,
    versioned_topic,
)
from vitrine.stream.kafka_security import KafkaSecuritySettings

if TYPE_CHECKING:  # the serving package imports numpy: reading settings must not (vitrine.threads)
    from vitrine.serving.experiments import Variant

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DEFAULT_MODEL = "default"  # the name `model_dir` is served under
COMPLEMENTARY_MODEL = "complementary"  # the name `complementary_model_dir` is served under


class ModelSettings(BaseModel):
    """One model version served, with where its item vectors are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="how variants refer to the model")
    model_dir: Path = Field(description="exported model directory")
    vectors_topic: str = Field(
        "", description="embedded mode: its vectors topic; default catalog.vectors.<model version>"
    )
    qdrant_collection: str = Field(
        "", description="server mode: its collection or alias; default vitrine-<model version>"
    )

    def topic(self, model_version: str) -> str:
        # the encoder's --backfill writes exactly here (IndexSettings.topic_for)
        return self.vectors_topic or versioned_topic(model_version)

    def collection(self, model_version: str) -> str:
        return self.qdrant_collection or versioned_collection(model_version)


class VariantSettings(BaseModel):
    """One arm of an experiment: the model (by name) that serves each task, and its traffic weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    weight: float = Field(
        1.0, ge=0, description="share of units = weight / sum of weights; 0 = only requests naming it"
    )
    similar: str = Field("", description="model for Similar; empty = not served")
    complementary: str = Field("", description="model for Complementary; empty = not served")
    inspire: str = Field("", description="model for Inspire; empty = the similar model")


class RecommenderSettings(IndexSettings, KafkaSecuritySettings, BaseSettings):
    # + index_mode, vectors_topic, qdrant_url, qdrant_collection, qdrant_api_key, index_path (where the
    # vectors are: model_dir's topic / collection; every other model's are named by its version) from
    # IndexSettings; kafka_security_protocol, kafka_sasl_*, kafka_ssl_* (Kafka SASL/SSL) from
    # KafkaSecuritySettings
    model_config = SettingsConfigDict(env_prefix="VITRINE_RECOMMENDER_", extra="forbid", frozen=True)

    model_dir: Path | None = Field(
        None,
        description="the similar model's exported directory, served as model 'default' "
        "(VITRINE_RECOMMENDER_MODEL_DIR)",
    )
    complementary_model_dir: Path | None = Field(
        None,
        description="a complementary model, served as model 'complementary'; its vectors in "
        "catalog.vectors.<model version> (VITRINE_RECOMMENDER_COMPLEMENTARY_MODEL_DIR)",
    )
    models: tuple[ModelSettings, ...] = Field(
        (),
        description="more models, each {name, model_dir, vectors_topic?, qdrant_collection?} (VITRINE_RECOMMENDER_MODELS)",
    )
    variants: tuple[VariantSettings, ...] = Field(
        (),
        validate_default=True,
        description="experiment arms, each {name, weight, similar, complementary, inspire}; empty = one "
        "variant 'default' (VITRINE_RECOMMENDER_VARIANTS)",
    )
    experiment_salt: str = Field(
        "vitrine",
        min_length=1,
        description="hashed with the unit key; a new salt reshuffles units (VITRINE_RECOMMENDER_EXPERIMENT_SALT)",
    )
    model_threads: int = Field(
        1,
        ge=0,
        le=64,
        description="onnxruntime threads per tower run; requests already run in parallel on the gRPC "
        "threads, so 1 avoids oversubscribing the cores; 0 = onnxruntime's default "
        "(VITRINE_RECOMMENDER_MODEL_THREADS)",
    )
    reload_drain_s: float = Field(
        30.0,
        ge=0,
        description="on reload, how long retired models wait for the requests still using them "
        "(VITRINE_RECOMMENDER_RELOAD_DRAIN_S)",
    )
    reload_check_s: float = Field(
        0.0,
        ge=0,
        description="every N seconds, re-read the configuration and the models' cards and reload what "
        "changed (a mounted ConfigMap, a model re-exported in place); 0 = on SIGHUP only "
        "(VITRINE_RECOMMENDER_RELOAD_CHECK_S)",
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="VITRINE_RECOMMENDER_KAFKA_BOOTSTRAP_SERVERS"
    )
    grpc_host: str = Field("127.0.0.1", description="VITRINE_RECOMMENDER_GRPC_HOST")
    grpc_port: int = Field(
        50051, ge=0, le=65535, description="0 = any free port (VITRINE_RECOMMENDER_GRPC_PORT)"
    )
    grpc_workers: int = Field(
        8, ge=1, le=256, description="handler threads (VITRINE_RECOMMENDER_GRPC_WORKERS)"
    )
    grpc_reuse_port: bool = Field(
        False,
        description="bind the gRPC port with SO_REUSEPORT so that several recommender processes on one "
        "host share it (process per core, docs/OPERATIONS.md); off, a taken port is an error "
        "(VITRINE_RECOMMENDER_GRPC_REUSE_PORT)",
    )
    grpc_max_queued: int = Field(
        -1,
        ge=-1,
        le=10_000,
        description="calls waiting for a handler thread at most; more are refused at once with "
        "RESOURCE_EXHAUSTED; -1 = twice grpc_workers (VITRINE_RECOMMENDER_GRPC_MAX_QUEUED)",
    )
    max_response_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="a response above this is refused with RESOURCE_EXHAUSTED (VITRINE_RECOMMENDER_MAX_RESPONSE_BYTES)",
    )
    default_deadline_s: float = Field(
        2.0,
        gt=0,
        description="the deadline of a call whose client set none (VITRINE_RECOMMENDER_DEFAULT_DEADLINE_S)",
    )
    metrics_port: int = Field(
        9102, ge=0, le=65535, description="/metrics port (VITRINE_RECOMMENDER_METRICS_PORT)"
    )
    metrics_host: str = Field(
        "",
        description="address /metrics binds; default: where gRPC binds (grpc_host), so a loopback-only "
        "replica does not expose its metrics either (VITRINE_RECOMMENDER_METRICS_HOST)",
    )
    startup_timeout_s: float = Field(
        300.0,
        gt=0,
        description="how long catching up with the vectors topics may take, plus the work left: "
        "startup_timeout_s + records to apply / startup_min_records_per_s "
        "(VITRINE_RECOMMENDER_STARTUP_TIMEOUT_S)",
    )
    startup_min_records_per_s: float = Field(
        # a cold 1M-record rebuild averaged 1,000/s on a quiet 2-core machine (docs/BENCHMARKS.md,
        # "Recommender restart"): the floor sits well below it, or a loaded node would crash-loop
        250.0,
        gt=0,
        description="the slowest catch-up rate still healthy, for the start-up timeout "
        "(VITRINE_RECOMMENDER_STARTUP_MIN_RECORDS_PER_S)",
    )
    reuse_index: bool = Field(
        True,
        description="embedded mode: reuse a restarted replica's intact shard and resume its vectors "
        "topic from the offsets it had applied (the shard keeps a write-ahead log); false: rebuild "
        "from offset 0 at every start (VITRINE_RECOMMENDER_REUSE_INDEX)",
    )
    partition_refresh_s: float = Field(
        30.0,
        gt=0,
        description="embedded mode: how often the vector feeds look for partitions added to their "
        "topic (VITRINE_RECOMMENDER_PARTITION_REFRESH_S)",
    )
    shutdown_grace_s: float = Field(5.0, ge=0, description="VITRINE_RECOMMENDER_SHUTDOWN_GRACE_S")
    record_impressions: bool = Field(
        True,
        description="record every returned list on the interactions topic, off the request path (a full "
        "buffer drops and counts, never blocks) (VITRINE_RECOMMENDER_RECORD_IMPRESSIONS)",
    )
    interactions_topic: str = Field(
        "catalog.interactions", description="where impressions go (VITRINE_RECOMMENDER_INTERACTIONS_TOPIC)"
    )
    impression_buffer: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="lists waiting to be sent before new ones are dropped (VITRINE_RECOMMENDER_IMPRESSION_BUFFER)",
    )

    # -- gRPC transport security and authentication (docs/OPERATIONS.md, "Security") --
    tls_cert_file: Path | None = Field(
        None, description="server certificate chain, PEM; set = TLS (VITRINE_RECOMMENDER_TLS_CERT_FILE)"
    )
    tls_key_file: Path | None = Field(
        None, validate_default=True, description="its private key, PEM (VITRINE_RECOMMENDER_TLS_KEY_FILE)"
    )
    tls_client_ca_file: Path | None = Field(
        None,
        validate_default=True,
        description="CA bundle for client certificates; set = mTLS required "
        "(VITRINE_RECOMMENDER_TLS_CLIENT_CA_FILE)",
    )
    auth_tokens: SecretStr | None = Field(
        None,
        description="bearer tokens accepted, comma-separated (two during a rotation); unset = none needed; "
        "the health service stays open (VITRINE_RECOMMENDER_AUTH_TOKENS)",
    )

    @field_validator("tls_key_file")
    @classmethod
    def _tls_pair(cls, key_file: Path | None, info: ValidationInfo) -> Path | None:
        if (key_file is None) != (info.data.get("tls_cert_file") is None):
            raise ValueError(
                "set both VITRINE_RECOMMENDER_TLS_CERT_FILE and VITRINE_RECOMMENDER_TLS_KEY_FILE, or neither"
            )
        return key_file

    @field_validator("tls_client_ca_file")
    @classmethod
    def _mtls_needs_tls(cls, ca_file: Path | None, info: ValidationInfo) -> Path | None:
        if ca_file is not None and info.data.get("tls_cert_file") is None:
            raise ValueError("mTLS needs TLS: set VITRINE_RECOMMENDER_TLS_CERT_FILE and _KEY_FILE too")
        return ca_file

    # Checked on `variants` (declared after the model fields) rather than on the whole model, so that the
    # error names a field and its environment variable like every other setting's.
    @field_validator("variants")
    @classmethod
    def _models_and_variants(
        cls, variants: tuple[VariantSettings, ...], info: ValidationInfo
    ) -> tuple[VariantSettings, ...]:
        names = [
            *([DEFAULT_MODEL] if info.data.get("model_dir") is not None else []),
            *([COMPLEMENTARY_MODEL] if info.data.get("complementary_model_dir") is not None else []),
            *(m.name for m in info.data.get("models", ())),
        ]
        if not names:
            raise ValueError(
                "no model: set VITRINE_RECOMMENDER_MODEL_DIR (or model_dir / models in the config file)"
            )
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"model names must be unique; repeated: {', '.join(repeated)}")
        variant_names = [v.name for v in variants]
        if len(set(variant_names)) != len(variant_names):
            raise ValueError(f"variant names must be unique, got {variant_names}")
        for v in variants:
            for task in ("similar", "complementary", "inspire"):
                name = getattr(v, task)
                if name and name not in names:
                    raise ValueError(f"variant {v.name!r}: {task} model {name!r} is not one of {names}")
            if not (v.similar or v.complementary or v.inspire):
                raise ValueError(f"variant {v.name!r} serves no task")
        return variants

    def model_specs(self) -> list[ModelSettings]:
        """Every model to load: `model_dir`, `complementary_model_dir`, then `models`."""
        specs: list[ModelSettings] = []
        if self.model_dir is not None:
            specs.append(
                ModelSettings(
                    name=DEFAULT_MODEL,
                    model_dir=self.model_dir,
                    # the live model's names unless configured: what the live encoder writes
                    vectors_topic=self.vectors_topic or LIVE_VECTORS_TOPIC,
                    qdrant_collection=self.qdrant_collection or LIVE_ALIAS,
                )
            )
        if self.complementary_model_dir is not None:
            specs.append(
                ModelSettings(
                    name=COMPLEMENTARY_MODEL,
                    model_dir=self.complementary_model_dir,
                    vectors_topic="",  # its own: catalog.vectors.<model version>
                    qdrant_collection="",
                )
            )
        return [*specs, *self.models]

    def resolved_variants(self, tasks: dict[str, str]) -> list[Variant]:
        """The experiment's variants, given each model's task (read from its model card)."""
        from vitrine.serving.experiments import DEFAULT_VARIANT, Variant

        if not self.variants:
            first = {
                t: next((n for n, task in tasks.items() if task == t), None)
                for t in ("similar", "complementary")
            }
            return [
                Variant(
                    DEFAULT_VARIANT,
                    similar=first["similar"],
                    complementary=first["complementary"],
                    inspire=first["similar"],
                )
            ]
        variants = []
        for v in self.variants:
            for task in ("similar", "complementary"):
                name = getattr(v, task)
                if name and tasks[name] != task:
                    raise ConfigError(f"variant {v.name!r}: {task} model {name!r} is a {tasks[name]!r} model")
            similar = v.similar or None
            variants.append(Variant(v.name, v.weight, similar, v.complementary or None, v.inspire or similar))
        return variants

    def overload_limits(self) -> OverloadLimits:
        queued = 2 * self.grpc_workers if self.grpc_max_queued < 0 else self.grpc_max_queued
        return OverloadLimits(self.grpc_workers, queued, self.max_response_bytes, self.default_deadline_s)

    def resolved_metrics_host(self) -> str:
        return self.metrics_host or self.grpc_host

    def auth_token_list(self) -> tuple[str, ...]:
        """The accepted bearer tokens (empty = no authentication); the only place they are revealed."""
        if self.auth_tokens is None:
            return ()
        try:
            return parse_tokens(self.auth_tokens.get_secret_value())
        except ValueError as e:  # the message names the token's position, never its value
            raise ConfigError(f"VITRINE_RECOMMENDER_AUTH_TOKENS: {e}") from e
