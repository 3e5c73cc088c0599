"""Loading the models a recommender serves, each with the index of its own item vectors.

Vectors in one index come from one item tower, so every model has its own index, opened by
`open_index`: in embedded mode a Qdrant Edge shard `index_path/<name>-<model version>`, fed from the
model's vectors topic (a cache of the topic); in server mode the model's Qdrant collection or alias.

A restarted replica reuses its shard when it is intact (its state file names the same topic and model
version, its offsets are inside the topic's current range, the shard loads) and resumes the topic
from the offsets it had applied; otherwise it rebuilds the shard from offset 0
(`vitrine.index.shard_state`). `reuse_index: false` always rebuilds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from vitrine.index import open_index
from vitrine.index.port import VectorIndex
from vitrine.index.shard_state import ShardState, remove_shard
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
        name = f"{spec.name}-{version}"
        shard = s.index_path / name
        kafka = KafkaSettings(
            s.kafka_bootstrap_servers,
            client_id=f"vitrine-recommender-{spec.name}",
            security=s.kafka_security(),
        )
        topic = spec.topic(version)
        consumer = make_consumer(kafka, metadata_max_age_ms=int(s.partition_refresh_s * 1000))
        edge, resume = self._open_shard(shard, name, topic, version, model.dim, consumer)
        state = ShardState(topic, version, model.dim, dict(resume or {}))
        state.write(shard)

        def checkpoint(offsets: dict[int, int]) -> None:
            state.offsets = offsets
            state.write(shard)

        feed = VectorFeed(
            consumer,
            topic,
            edge,
            self.metrics,
            version,
            resume_from=resume,
            on_checkpoint=checkpoint if s.reuse_index else None,
            partition_refresh_s=s.partition_refresh_s,
        )
        feed.start()
        log.info("model %s (%s, %s): vectors from %s into %s", spec.name, model.task, version, topic, name)

        def close() -> None:
            feed.stop()
            edge.close()

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
            discarders=(lambda: remove_shard(shard),),
            work_left=feed.records_to_catch_up,
        )

    def _open_shard(
        self, shard: Path, name: str, topic: str, version: str, dim: int, consumer: KafkaConsumer
    ) -> tuple[VectorIndex, dict[int, int] | None]:
        """The shard to serve from and the offsets to resume from (None: rebuilt from offset 0)."""
        s = self.settings
        state = ShardState.read(shard) if s.reuse_index else None
        if state is not None and shard.exists():
            why = state.resumable(topic, version, dim, *_topic_range(consumer, topic))
            if why is None:
                try:
                    index = open_index(s, dim=dim, name=name, durable=True)
                    log.info("model shard %s reused: resuming %s from its offsets", name, topic)
                    return index, state.offsets
                except Exception as e:
                    why = f"it does not load ({e})"
            log.info("model shard %s rebuilt from offset 0: %s", name, why)
        return open_index(s, dim=dim, name=name, fresh=True, durable=s.reuse_index), None


def _topic_range(consumer: KafkaConsumer, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """(beginning, end) offset per partition of `topic` (empty if it does not exist yet)."""
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not partitions:
        return {}, {}
    beginning = consumer.beginning_offsets(partitions)
    end = consumer.end_offsets(partitions)
    return {tp.partition: o for tp, o in beginning.items()}, {tp.partition: o for tp, o in end.items()}
