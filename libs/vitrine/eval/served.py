"""A model as the recommender serves it, for offline evaluation: its towers and a real index.

The index is a Qdrant Edge shard (the engine embedded-mode replicas run) holding exactly what the
encoder service would write for the catalogue (`encode_products`: item vectors, k-means cluster,
filter payload). It is never optimised, so no HNSW graph is built and every search is exact: exact
instead of ANN is the only difference from production. Evaluations then call the task functions the
gRPC methods call (`vitrine.serving.inspire.inspire`, `vitrine.serving.similar.similar`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vitrine.catalog.schema import Product
from vitrine.errors import VitrineError
from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
from vitrine.model.inference import InferenceModel
from vitrine.serving.registry import ServedModel
from vitrine.stream.pipeline import encode_products

BATCH = 512


@contextmanager
def exact_served_model(
    model: InferenceModel, products: Sequence[Product], name: str = "eval"
) -> Iterator[ServedModel]:
    """`model` serving `products` from an exact (graph-less) Qdrant Edge shard in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="vitrine-eval-index-"))
    index = EdgeIndex(EdgeIndexConfig(folder / "shard", model.dim, wal=False))
    try:
        for start in range(0, len(products), BATCH):
            index.apply(encode_products(model, products[start : start + BATCH]))
        index.flush()
        if index.indexed_points():
            raise VitrineError("the evaluation index built an HNSW graph; its searches would not be exact")
        yield ServedModel(name, model.model_version, model.task, index, model)
    finally:
        index.close()
        shutil.rmtree(folder, ignore_errors=True)
