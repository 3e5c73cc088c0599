"""Recommender service: wiring and lifecycle. gRPC API + health + reflection + /metrics, the models
served side by side (each with its index: in embedded mode a local Qdrant Edge shard fed from the
model's vectors topic), experiment variants, and hot reload of models and variants on SIGHUP."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType

from vitrine.api.security import ServerSecurity, server_security
from vitrine.api.server import GrpcServer, create_grpc_server
from vitrine.errors import ConfigError, VitrineError
from vitrine.feedback.recorder import ImpressionRecorder
from vitrine.index.settings import is_loopback, refuse_or_warn_plaintext
from vitrine.obs.metrics import ImpressionMetrics, MetricsServer, RecommenderMetrics, serve_metrics
from vitrine.serving.experiments import ExperimentRouter
from vitrine.serving.registry import ModelRegistry, ServedModel, ServingSnapshot
from vitrine.stream.kafka import KafkaSettings
from vitrine_services.recommender.models import ModelLoader
from vitrine_services.recommender.settings import RecommenderSettings

log = logging.getLogger(__name__)

# what a reload applies; everything else (ports, security, Kafka, index mode) needs a restart
RELOADABLE = frozenset(
    {
        "model_dir",
        "complementary_model_dir",
        "models",
        "variants",
        "experiment_salt",
        "vectors_topic",
        "qdrant_collection",
        "reload_drain_s",
    }
)


@dataclass
class RecommenderService:
    settings: RecommenderSettings
    grpc: GrpcServer
    registry: ModelRegistry
    loader: ModelLoader
    metrics_server: MetricsServer
    metrics: RecommenderMetrics
    reload_settings: Callable[[], RecommenderSettings] | None = None
    recorder: ImpressionRecorder | None = None
    _reload_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_problem: str = field(default="", repr=False)

    @property
    def models(self) -> dict[str, ServedModel]:
        return dict(self.registry.current.models)

    def wait_ready(self, timeout_s: float) -> bool:
        """Report SERVING once every model's index has caught up with its vectors topic (embedded mode)."""
        ready = _wait_all(self.registry.current.models.values(), timeout_s)
        if ready:
            self.grpc.set_serving(True)
            self.refresh_gauges()
            models = self.registry.current.models.values()
            counts = ", ".join(f"{m.name}: {m.index.count()}" for m in models)
            log.info("recommender serving on port %d (items per model: %s)", self.grpc.port, counts)
            for m in models:
                if m.index.count() == 0:
                    # the feed skips vectors of other model versions: an empty index after catching up
                    # usually means no encoder of this model writes where the model reads
                    log.warning(
                        "model %s (%s) has no items; unless the catalogue is empty, check that an encoder "
                        "for this model version writes its vectors where it reads (docs/API.md)",
                        m.name,
                        m.model_version,
                    )
        return ready

    def failure(self) -> str | None:
        """Why a served model's index went stale (its feed died), if it did."""
        for m in self.registry.current.models.values():
            if (error := m.error()) is not None:
                return f"model {m.name} ({m.model_version}): {error}"
        return None

    def refresh_gauges(self) -> None:
        for m in self.registry.current.models.values():
            self.metrics.items.labels(m.model_version).set(m.index.count())
            self.metrics.model_info.labels(*_model_info(m)).set(1)

    def reload(self, settings: RecommenderSettings | None = None) -> bool:
        """Apply new models / variants without dropping a request: load what is new (and wait for its
        index to catch up), swap the snapshot, then close what is no longer served once the requests
        using it have finished. Models whose key (name, directory, version, vectors source) did not
        change keep their index. On any failure the current snapshot stays; returns False."""
        if not self._reload_lock.acquire(blocking=False):
            log.warning("a reload is already running; ignoring this one")
            return False
        try:
            self.refresh_priors()
            new = settings if settings is not None else self._read_settings()
            if new is None:
                return False
            _warn_restart_only(self.settings, new)
            snapshot = self._load_caught_up(new)
            if snapshot is None:
                return False
            retired = self.registry.swap(snapshot, new.reload_drain_s)
            served_versions = {x.model_version for x in snapshot.models.values()}
            served_info = {_model_info(x) for x in snapshot.models.values()}
            for m in retired:
                if m.model_version not in served_versions:
                    with contextlib.suppress(KeyError):  # never reported: nothing to remove
                        self.metrics.items.remove(m.model_version)
                if _model_info(m) not in served_info:
                    with contextlib.suppress(KeyError):
                        self.metrics.model_info.remove(*_model_info(m))
            self.settings = new
            self.refresh_gauges()
            served = ", ".join(f"{m.name}={m.model_version}" for m in snapshot.models.values())
            variants = ", ".join(f"{v.name}:{v.weight:g}" for v in snapshot.router.variants)
            log.info("reloaded: models %s; variants %s; %d model(s) retired", served, variants, len(retired))
            return True
        finally:
            self._reload_lock.release()

    def _load_caught_up(self, settings: RecommenderSettings) -> ServingSnapshot | None:
        """The snapshot `settings` describe, once its new models caught up; None (and nothing new
        left open) on any failure."""
        try:
            snapshot, loaded = build_snapshot(self.loader, settings, self.registry.current)
        except Exception as e:
            log.error("reload failed, keeping the current models: %s", e)
            return None
        try:
            _wait_caught_up(loaded, self.settings)
        except Exception as e:
            log.error("reload failed, keeping the current models: %s", e)
            for m in loaded:
                m.discard()
            return None
        return snapshot

    def reload_if_changed(self) -> bool:
        """Reload when the configuration's models or variants, or a model's card (its version), differ
        from what is served (the periodic check of `reload_check_s`)."""
        if self._reload_lock.locked():
            return False  # a reload is running; look again at the next check
        self.refresh_priors()
        new = self._read_settings(quiet=True)
        if new is None:
            return False
        try:
            wanted = tuple(self.loader.key(spec) for spec in new.model_specs())
        except VitrineError as e:  # e.g. a model directory being written: try again next time
            self._log_once(f"reload check: cannot read a model card: {e}")
            return False
        served = tuple(m.key for m in self.registry.current.models.values())
        old = self.settings
        if (wanted, new.variants, new.experiment_salt) == (served, old.variants, old.experiment_salt):
            return False
        log.info("reload check: the configuration or a model changed")
        return self.reload(new)

    def _read_settings(self, quiet: bool = False) -> RecommenderSettings | None:
        if self.reload_settings is None:
            log.error("reload asked, but this service was started without a way to re-read its settings")
            return None
        try:
            return self.reload_settings()
        except VitrineError as e:
            message = f"reload: invalid settings, keeping the current models: {e}"
            if quiet:
                self._log_once(message)
            else:
                log.error(message)
            return None

    def _log_once(self, message: str) -> None:
        """Periodic checks log a persisting problem once, not every few seconds."""
        if message != self._last_problem:
            self._last_problem = message
            log.error(message)

    def refresh_priors(self) -> None:
        """Swap in refreshed complementary priors (`vitrine refresh-prior`): no index is rebuilt."""
        for m in self.registry.current.models.values():
            if m.model is None:
                continue
            try:
                if m.model.refresh_prior():
                    log.info(
                        "model %s (%s): complementary prior %s",
                        m.name,
                        m.model_version,
                        m.model.prior_version,
                    )
            except VitrineError as e:
                self._log_once(f"model {m.name}: keeping its complementary prior: {e}")

    def stop(self) -> None:
        self.grpc.stop(self.settings.shutdown_grace_s)
        if self.recorder is not None:
            self.recorder.close()  # after the last request: its lists are still sent
        self.registry.close()
        self.metrics_server.close()


def _model_info(m: ServedModel) -> tuple[str, str, str, str]:
    """The labels of vitrine_recommender_model_info for a served model."""
    kind = m.model.card.model_kind if m.model is not None else "index_only"
    return (m.name, m.model_version, m.task, kind)


def startup_allowance_s(settings: RecommenderSettings, models: Iterable[ServedModel]) -> float:
    """How long catching up may take: the base timeout plus the work left at the slowest healthy rate
    (1M records at 250/s: 300 s + 4,000 s), so a large catalogue is not killed for its size. Callers
    keep the largest value seen (computed when the work was all still left)."""
    left = sum(w for m in models if (w := m.work_left()) is not None)
    return settings.startup_timeout_s + left / settings.startup_min_records_per_s


def _wait_all(models: Iterable[ServedModel], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    return all(m.wait_ready(max(0.0, deadline - time.monotonic())) for m in models)


def _warn_restart_only(old: RecommenderSettings, new: RecommenderSettings) -> None:
    changed = [
        name
        for name in RecommenderSettings.model_fields
        if name not in RELOADABLE and getattr(old, name) != getattr(new, name)
    ]
    if changed:
        log.warning("reload: %s changed; these take effect only after a restart", ", ".join(changed))


def build_snapshot(
    loader: ModelLoader, settings: RecommenderSettings, current: ServingSnapshot | None = None
) -> tuple[ServingSnapshot, list[ServedModel]]:
    """The snapshot `settings` describe, reusing the models of `current` whose key is unchanged, and
    the models it loaded anew (their feeds catch up in the background: `_wait_caught_up`). On failure
    nothing new is left open and the error is raised."""
    reusable = {m.key: m for m in current.models.values()} if current is not None else {}
    models: dict[str, ServedModel] = {}
    loaded: list[ServedModel] = []
    try:
        for spec in settings.model_specs():
            model = reusable.get(loader.key(spec))
            if model is None:
                model = loader.load(spec)
                loaded.append(model)
            models[spec.name] = model
        router = ExperimentRouter(
            settings.resolved_variants({name: m.task for name, m in models.items()}), settings.experiment_salt
        )
    except Exception:
        for m in loaded:
            m.discard()
        raise
    return ServingSnapshot(models, router), loaded


def _wait_caught_up(models: Iterable[ServedModel], settings: RecommenderSettings) -> None:
    """Block until each model's index has caught up with its source; ConfigError if one's feed fails
    or does not catch up within the allowance for its work left (`startup_allowance_s`)."""
    models = list(models)
    started = time.monotonic()
    allowed = settings.startup_timeout_s
    for m in models:
        while not m.wait_ready(0.5):
            if (error := m.error()) is not None:
                raise ConfigError(f"model {m.name}: its index feed failed: {error}")
            # the largest allowance seen: the work left shrinks as it is done, the allowance must not
            allowed = max(allowed, startup_allowance_s(settings, models))
            if time.monotonic() - started > allowed:
                raise ConfigError(f"model {m.name}: its index did not catch up within {allowed:.0f}s")


def create_service(
    settings: RecommenderSettings, reload_settings: Callable[[], RecommenderSettings] | None = None
) -> RecommenderService:
    """Build and start the service. `reload_settings` re-reads the configuration for a hot reload."""
    # TLS files and tokens are checked first: a bad security setting fails before the model loads
    tokens = settings.auth_token_list()
    security = server_security(
        settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file, tokens
    )
    if tokens and settings.tls_cert_file is None and not is_loopback(settings.grpc_host):
        refuse_or_warn_plaintext(
            f"bearer tokens would travel in clear text: gRPC on {settings.grpc_host} has no TLS "
            "(set VITRINE_RECOMMENDER_TLS_CERT_FILE and _KEY_FILE)",
            settings.allow_plaintext_secrets,
            "VITRINE_RECOMMENDER_ALLOW_PLAINTEXT_SECRETS",
        )
    if settings.index_mode == "server":
        settings.qdrant_key()  # refuses an API key bound for http:// on another host, before any work
    metrics = RecommenderMetrics()
    # bound first: a taken port stops the service before it loads models or starts feeds
    metrics_server = serve_metrics(
        metrics.registry,
        settings.metrics_port,
        settings.resolved_metrics_host(),
        setting="VITRINE_RECOMMENDER_METRICS_PORT (--metrics-port)",
    )
    try:
        return _start(settings, security, metrics, metrics_server, reload_settings)
    except BaseException:
        metrics_server.close()
        raise


def _start(
    settings: RecommenderSettings,
    security: ServerSecurity,
    metrics: RecommenderMetrics,
    metrics_server: MetricsServer,
    reload_settings: Callable[[], RecommenderSettings] | None,
) -> RecommenderService:
    # embedded mode: each model's shard is reused if intact, else rebuilt (ModelLoader); nothing under
    # index_path is deleted that vitrine did not create there
    loader = ModelLoader(settings, metrics)
    # the feeds start here and catch up in the background; SERVING waits for them (wait_ready)
    snapshot, _ = build_snapshot(loader, settings)
    registry = ModelRegistry(snapshot)
    recorder = None
    if settings.record_impressions:
        kafka = KafkaSettings(
            settings.kafka_bootstrap_servers,
            client_id="vitrine-recommender-impressions",
            security=settings.kafka_security(),
        )
        recorder = ImpressionRecorder(
            kafka,
            settings.interactions_topic,
            ImpressionMetrics(metrics.registry),
            settings.impression_buffer,
        ).start()
        log.info("recording impressions on %s", settings.interactions_topic)
    try:
        grpc_server = create_grpc_server(
            registry,
            metrics,
            f"{settings.grpc_host}:{settings.grpc_port}",
            settings.grpc_workers,
            interceptors=security.interceptors,
            credentials=security.credentials,
            impressions=recorder,
            overload=settings.overload_limits(),
            port_setting="VITRINE_RECOMMENDER_GRPC_PORT (--grpc-port)",
            reuse_port=settings.grpc_reuse_port,
        )
    except BaseException:
        if recorder is not None:
            recorder.close()
        registry.close()
        raise
    log.info("recommender gRPC security: %s", security.describe())
    if security.is_open and not is_loopback(settings.grpc_host):
        log.warning("gRPC on %s without TLS or a token: only behind a trusted network", settings.grpc_host)
    grpc_server.start()
    log.info(
        "recommender gRPC on %s:%d, metrics on %s:%d",
        settings.grpc_host,
        grpc_server.port,
        settings.resolved_metrics_host(),
        metrics_server.port,
    )
    return RecommenderService(
        settings, grpc_server, registry, loader, metrics_server, metrics, reload_settings, recorder
    )


def run_recommender(
    settings: RecommenderSettings, reload_settings: Callable[[], RecommenderSettings] | None = None
) -> int:
    service = create_service(settings, reload_settings)
    stopped = threading.Event()
    reload_requested = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: graceful shutdown", signum)
        stopped.set()

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        reload_requested.set()  # handled by the loop below: a signal handler must not block

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    started = time.monotonic()
    announced = False
    allowed = settings.startup_timeout_s
    while not stopped.is_set() and not service.wait_ready(0.5):
        if (failure := service.failure()) is not None:
            log.error("vector feed failed during start-up: %s", failure)
            service.stop()
            return 1
        # the allowance follows the work left (a reused shard has little, a rebuild of 1M a lot)
        models = service.registry.current.models.values()
        allowed = max(allowed, startup_allowance_s(settings, models))
        if not announced and any(m.work_left() is not None for m in models):
            announced = True
            left = sum(w or 0 for m in models if (w := m.work_left()) is not None)
            log.info("catching up %d vector records; giving up after %.0fs", left, allowed)
        if time.monotonic() - started > allowed:
            log.error("vector feeds did not catch up within %.0fs; stopping", allowed)
            service.stop()
            return 1
    next_check = time.monotonic() + settings.reload_check_s
    while not stopped.wait(1.0):
        # reloads run in the background: the loop keeps watching the feeds while new indexes catch up
        if reload_requested.is_set():
            reload_requested.clear()
            log.info("SIGHUP: reloading models and variants")
            threading.Thread(target=service.reload, name="reload", daemon=True).start()
        elif settings.reload_check_s > 0 and time.monotonic() >= next_check:
            next_check = time.monotonic() + settings.reload_check_s
            threading.Thread(target=service.reload_if_changed, name="reload-check", daemon=True).start()
        if (failure := service.failure()) is not None:
            log.error("vector feed failed (%s); stopping so the orchestrator restarts this replica", failure)
            service.stop()
            return 1
        service.refresh_gauges()
    service.stop()
    return 0
