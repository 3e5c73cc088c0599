"""docs/ARCHITECTURE.md lists the files a catalogue event and a request pass through, in order, with
the times each is entered. These tests trace the real code on real parts (a Kafka broker, Qdrant in
process, a gRPC server over loopback) and fail when the lists no longer match it: a new hop, a file
entered twice, a path that moved. The failure message is the table to paste."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support.paths import REPO, entries, tracing

from vitrine.api.client import RecommenderClient
from vitrine.api.server import create_grpc_server
from vitrine.catalog.schema import ProductEvent
from vitrine.data.synthetic import SyntheticConfig, generate
from vitrine.index import open_index
from vitrine.index.settings import IndexSettings
from vitrine.model.inference import load_inference_model
from vitrine.obs.metrics import EncoderMetrics, RecommenderMetrics
from vitrine.serving.experiments import ExperimentRouter, Variant
from vitrine.serving.registry import ModelRegistry, ServedModel, ServingSnapshot
from vitrine.stream.dead_letters import KafkaDeadLetters
from vitrine.stream.kafka import KafkaSettings, TopicNames, make_consumer, make_producer
from vitrine.stream.pipeline import EncoderPipeline, encode_products
from vitrine.stream.worker import BatchPolicy, EncoderWorker

pytestmark = pytest.mark.integration

DOC = REPO / "docs" / "ARCHITECTURE.md"


def documented(path: str) -> list[tuple[str, int]]:
    """The table after `<!-- path: NAME -->` in docs/ARCHITECTURE.md: (file, times entered) rows."""
    text = DOC.read_text()
    marker = f"<!-- path: {path} -->"
    assert marker in text, f"docs/ARCHITECTURE.md has no {marker}"
    rows = []
    for line in text.split(marker, 1)[1].lstrip().splitlines()[2:]:  # past the header and the rule
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((cells[1].strip("`"), int(cells[2])))
    return rows


def table(rows: list[tuple[str, int]]) -> str:
    lines = ["| # | file | entered |", "|---|---|---|"]
    lines += [f"| {i} | `{f}` | {n} |" for i, (f, n) in enumerate(rows, 1)]
    return "\n".join(lines)


def assert_documented(path: str, traced: list[tuple[str, int]]) -> None:
    assert documented(path) == traced, (
        f"docs/ARCHITECTURE.md, path {path!r}, no longer matches the code; the traced path is:\n\n"
        f"<!-- path: {path} -->\n{table(traced)}\n"
    )


def test_an_event_reaches_the_index_through_the_documented_files(
    kafka_settings: KafkaSettings, catalog_topics: TopicNames, model_dir: Path, unique_name
) -> None:
    """Server mode: the encoder's worker, pipeline and the index it writes (qdrant-client in process)."""
    model = load_inference_model(model_dir)
    index = open_index(IndexSettings(index_mode="server", qdrant_url=":memory:"), dim=model.dim, name="paths")
    product = generate(SyntheticConfig(n_products=30, seed=3, n_sessions=1, n_baskets=1)).products[0]
    producer = make_producer(kafka_settings)
    event = ProductEvent.upsert(product, 1)
    # a loaded machine must not turn this into the stall path (a refresh before writing)
    dead_letters = KafkaDeadLetters(producer, catalog_topics.dead_letters)
    pipeline = EncoderPipeline(model, index, dead_letters, EncoderMetrics(), stall_refresh_s=600.0)
    consumer = make_consumer(kafka_settings, group_id=unique_name("paths"))
    worker = EncoderWorker(consumer, catalog_topics.products, pipeline, BatchPolicy(16, 20))

    written: dict[str, int] = {}

    def batch_written(_outcome: object) -> None:  # the batch is committed: the path ends here
        written.update(index.versions([product.product_id]))
        worker.stop()  # (which closes the index)

    worker.on_batch = batch_written
    with tracing(markers={"batch_written"}) as trace:
        thread = threading.Thread(target=worker.run)
        thread.start()
        deadline = time.monotonic() + 60
        while worker.catch_up is None:  # partitions assigned: the steady state, where events arrive
            assert time.monotonic() < deadline, "the encoder got no partitions"
            time.sleep(0.1)
        time.sleep(1.0)  # a few idle polls
        producer.send(catalog_topics.products, key=event.product_id.encode(), value=event.to_bytes())
        producer.flush()
        thread.join(120)
    assert not thread.is_alive(), "the encoder did not process the event"
    assert written == {product.product_id: 1}, "the event did not reach the index"
    producer.close()
    calls = trace.between("EncoderWorker._next_batch", "batch_written", trace.thread_of("EncoderWorker.run"))
    assert_documented("event", entries(calls, "libs/vitrine/stream/worker.py"))


def test_a_request_gets_its_ranked_list_through_the_documented_files(model_dir: Path, tmp_path: Path) -> None:
    """Similar by product id over gRPC, from a Qdrant Edge shard (embedded mode)."""
    model = load_inference_model(model_dir)
    products = list(generate(SyntheticConfig(n_products=60, seed=3, n_sessions=1, n_baskets=1)).products)
    index = open_index(IndexSettings(index_path=tmp_path), dim=model.dim, name="paths")
    index.apply(encode_products(model, products))
    served = ServedModel("default", model.model_version, model.task, index, model)
    router = ExperimentRouter([Variant("default", similar="default", inspire="default")])
    registry = ModelRegistry(ServingSnapshot({"default": served}, router))
    with tracing() as trace:
        server = create_grpc_server(registry, RecommenderMetrics(), workers=1)
        server.start()
        server.set_serving(True)
        try:
            with RecommenderClient(f"127.0.0.1:{server.port}", timeout_s=30) as client:
                assert client.similar(products[0].product_id, limit=5).ids
        finally:
            server.stop(0)
    index.close()
    # the one RPC: gRPC deserializes it (on its own thread), then the handler thread serves it
    decoded = next(c for c in trace.calls if c.function == "lenient.<locals>.parse")
    handler = trace.thread_of("RecommenderServicer.Similar")
    assert_documented("request", entries([decoded, *(c for c in trace.calls if c.thread == handler)]))
