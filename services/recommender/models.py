"""Loading the models a recommender serves, each with the index of its own item vectors.

Vectors in one index come from one item tower, so every model has its own index, opened by
`open_index`: in embedded mode a Qdrant Edge shard `index_path/<name>-<model version>`, fed from the
model's vectors topic (a cache of the topic, rebuilt at every load); in server mode the model's Qdrant
collection or alias.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass

from vitrine.index import open_index
from vitrine.model.card import read_card
from vitrine.model.inference import load_inference_model
from vitrine.obs.metrics import RecommenderMetrics
from vitrine.serving.registry import ServedModel
from vitrine.stream.kafka import KafkaSettings, make_consumer
from vitrine.stream.vector_feed import VectorFeed
from vitrine_services.recommender.settings import ModelSettings, RecommenderSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelLoader:
    settings: RecommenderSettings
    metrics: RecommenderMetrics

    def key(self, spec: ModelSettings) -> tuple[object, ...]:
        """What identifies a served model across reloads: a reload keeps a model with the same key
        (and its index) as it is. Reads only the model card."""
        version = read_card(spec.model_dir).model_version
        source = spec.collection(version) if self.settings.index_mode == "server" else spec.topic(version)
        return (spec.name, str(spec.model_dir.resolve()), version, self.settings.index_mode, source)

    def load(self, spec: ModelSettings) -> ServedModel:
        """The model's towers and its index; in embedded mode the feed is started (see `wait_ready`)."""
        key = self.key(spec)
        model = load_inference_model(spec.model_dir, threads=self.settings.model_threads)
        version = model.model_version
        s = self.settings
        if s.index_mode == "server":
            collection = spec.collection(version)
            index = open_index(s, dim=model.dim, name=collection, create=False)
            log.info("model %s (%s, %s): Qdrant collection %s", spec.name, model.task, version, collection)
            return ServedModel(spec.name, version, model.task, index, model, closers=(index.close,), key=key)
        # The shard is a cache of the vectors topic: rebuilt from the topic at every load.
        name = f"{spec.name}-{version}"
        edge = open_index(s, dim=model.dim, name=name, fresh=True)
        kafka = KafkaSettings(
            s.kafka_bootstrap_servers,
            client_id=f"vitrine-recommender-{spec.name}",
            security=s.kafka_security(),
        )
        topic = spec.topic(version)
        feed = VectorFeed(make_consumer(kafka), topic, edge, self.metrics, version)
        feed.start()
        log.info("model %s (%s, %s): vectors from %s into %s", spec.name, model.task, version, topic, name)

        def close() -> None:
            feed.stop()
            edge.close()
            shutil.rmtree(s.index_path / name, ignore_errors=True)

        return ServedModel(
            spec.name,
            version,
            model.task,
            edge,
            model,
            wait_ready=feed.wait_caught_up,
            error=lambda: feed.error,
            closers=(close,),
            key=key,
        )
