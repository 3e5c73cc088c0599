"""Offline evaluation of a trained model against baselines on held-out (query, target) pairs.

Which pairs: on a dataset the model was trained on, only its test split (recomputed from the seed
and fractions in the model card); on a dataset it never saw, all of the dataset's pairs. The model
is evaluated as it is served, through its ONNX towers (`InferenceModel`):

- similar model: exact k-NN of the query's item vector (what `serving.similar` asks the index for);
- complementary model: the gRPC method's own function, `vitrine.serving.complementary.complementary`,
  over a real Qdrant Edge shard holding the catalogue's item vectors (written as the encoder writes
  them), each query by product id, with the engine's exact search instead of HNSW: the only
  difference from the service. Each query asks for `SERVED_DEPTH` items (plus its other known
  positives, which the filtered ranking removes); items beyond the list are ranked below it.

Baselines see exactly the same pairs (`vitrine.eval.baselines`): random, popularity, TF-IDF, BM25,
MiniLM, two_hop and two_hop_tfidf. The co-purchase baselines and popularity learn from the training
pairs (all other pairs on an unseen dataset). On complementary pairs every ranker (the model's served
path too) excludes the query's own leaf category: no complementary pair lies inside one.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitrine.catalog.schema import Product
from vitrine.data.datasets import Dataset, DatasetSpec
from vitrine.data.pairs import Pair, PairConfig, SplitConfig, product_splits, split_pairs, task_pairs
from vitrine.errors import DataError
from vitrine.eval.baselines import (
    EXCLUDED,
    bm25_scores,
    excluding_own_leaf,
    minilm_scores,
    popularity_scores,
    random_scores,
    tfidf_scores,
    two_hop_scores,
    two_hop_tfidf_scores,
)
from vitrine.eval.ranking import ScoreFn, evaluate_ranker, metrics_from_ranks
from vitrine.model.card import ModelCard

log = logging.getLogger(__name__)

BASELINES = ("random", "popularity", "tfidf", "bm25", "minilm", "two_hop", "two_hop_tfidf")
MERGES = ("score", "interleave")
SERVED_DEPTH = 100  # items each served list is asked for (recall@k up to 100, the plots' last point)


@dataclass(frozen=True, slots=True)
class EvalPairs:
    queries: np.ndarray  # item index per pair
    targets: np.ndarray
    positives: dict[int, set[int]]  # every known positive of each query (for filtered ranking)
    reference_counts: np.ndarray | None  # popularity from training pairs; None = leave-one-out
    mode: str  # "test_split" | "all_pairs"
    reference_pairs: np.ndarray  # [R, 2] co-purchase graph of the two-hop baselines


def trained_on(card: ModelCard, spec: DatasetSpec) -> bool:
    """Whether `spec` is one of the datasets the model was trained on (same kind and resolved path)."""
    path = spec.path if spec.kind == "synthetic" else str(Path(spec.path).resolve())
    return any(
        d.get("spec", "").split(":", 1)[0] == spec.kind and d.get("path") == path
        for d in card.data.get("datasets", [])
    )


def select_pairs(dataset: Dataset, spec: DatasetSpec, task: str, card: ModelCard) -> EvalPairs:
    index = {p.product_id: i for i, p in enumerate(dataset.products)}
    pair_config = PairConfig(**card.pairs) if card.pairs else PairConfig()
    everything = task_pairs(dataset, task, pair_config)
    reference: list[Pair] | None = None
    if trained_on(card, spec):
        split_fields = {
            k: card.split[k] for k in ("seed", "val_fraction", "test_fraction") if k in card.split
        }
        by_split = split_pairs(everything, product_splits(dataset.products, SplitConfig(**split_fields)))
        chosen, reference, mode = by_split["test"], by_split["train"], "test_split"
    else:
        chosen, mode = everything, "all_pairs"
    if not chosen:
        raise DataError(f"no {task} pairs to evaluate in {spec.label} ({mode})")
    positives: dict[int, set[int]] = {}
    for a, b in everything:
        positives.setdefault(index[a], set()).add(index[b])
    counts = None
    if reference is not None:
        counts = np.bincount([index[b] for _, b in reference], minlength=len(index)).astype(np.float64)
    arr = np.array([(index[a], index[b]) for a, b in chosen], dtype=np.int64)
    # an unseen dataset: the other pairs are the graph (a query is never its own neighbour)
    graph = np.array(
        [(index[a], index[b]) for a, b in (everything if reference is None else reference)], dtype=np.int64
    ).reshape(-1, 2)
    return EvalPairs(arr[:, 0], arr[:, 1], positives, counts, mode, graph)


def served_complementary_scores(
    model: Any,
    products: Sequence[Product],
    positives: Mapping[int, set[int]],
    targets_per_query: int = 0,
    display: str = "score",
    workdir: Path | None = None,
) -> ScoreFn:
    """The complementary model as served: `serving.complementary.complementary` on a Qdrant Edge shard.

    `targets_per_query` > 0 replays the former design instead (the N most probable target categories
    under the mined co-purchase prior, named as targets: one conditional query each, interleaved).
    """
    from vitrine.index.edge import EdgeIndex, EdgeIndexConfig
    from vitrine.index.port import SearchFilter
    from vitrine.serving.anchors import AnchorRef
    from vitrine.serving.complementary import ComplementaryQuery, complementary
    from vitrine.serving.deadline import Deadline
    from vitrine.serving.registry import ServedModel
    from vitrine.serving.selection import RequestFilter
    from vitrine.stream.pipeline import encode_products

    if display not in MERGES:
        raise ValueError(f"merge must be one of {MERGES}, got {display!r}")
    root = Path(tempfile.mkdtemp(prefix="vitrine-eval-", dir=workdir))
    index = EdgeIndex(EdgeIndexConfig(root / "shard", model.dim, fresh=True, wal=False))
    items = encode_products(model, products)
    for start in range(0, len(items), 1024):
        index.apply(items[start : start + 1024])
    served = ServedModel("eval", model.model_version, "complementary", index, model)
    row_of = {p.product_id: i for i, p in enumerate(products)}
    n = len(products)
    everything = RequestFilter(SearchFilter(in_stock_only=False))

    def score(queries: np.ndarray) -> np.ndarray:
        out = np.full((len(queries), n), EXCLUDED, dtype=np.float64)
        for row, q in enumerate(queries):
            product = products[int(q)]
            depth = SERVED_DEPTH + len(positives.get(int(q), ()))
            targets: tuple[str, ...] = ()
            if targets_per_query > 0:
                planned = model.complementary_targets(product.leaf_category, targets_per_query)
                targets = tuple(t for t, _ in planned)
            query = ComplementaryQuery(AnchorRef(product.product_id), depth, targets, everything, display)
            ranked = complementary(served, query, Deadline.none(), exact=True)
            for rank, rec in enumerate(ranked):
                out[row, row_of[rec.product_id]] = float(depth - rank)
        return out

    return score


@dataclass(slots=True)
class EvalResult:
    model: dict[str, float]
    baselines: dict[str, dict[str, float]]
    pairs: int
    mode: str
    ranks: dict[str, np.ndarray] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "baselines": self.baselines, "pairs": self.pairs}


def evaluate(
    towers: Any,
    card: ModelCard,
    dataset: Dataset,
    spec: DatasetSpec,
    task: str,
    baselines: Sequence[str] = BASELINES,
    targets_per_query: int = 0,
    merge: str = "score",
    seed: int = 0,
    cache_dir: Path | None = None,
) -> EvalResult:
    """The model (as served) and `baselines` on the same pairs. `merge`: the complementary display
    order ("score" or "interleave", see `serving.complementary`); `targets_per_query` > 0: the former
    gated design (see `served_complementary_scores`)."""
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; allowed: {', '.join(BASELINES)}")
    products = dataset.products
    n = len(products)
    pairs = select_pairs(dataset, spec, task, card)
    log.info("%s %s: %d pairs (%s), %d products", spec.label, task, len(pairs.queries), pairs.mode, n)
    complementary = task == "complementary"
    if card.task == "complementary" and complementary:
        model_fn = served_complementary_scores(towers, products, pairs.positives, targets_per_query, merge)
    else:
        item_vectors = towers.encode_items(products)

        def model_fn(queries: np.ndarray) -> np.ndarray:
            return item_vectors[queries] @ item_vectors.T

        if complementary:  # a similar model on complementary pairs: k-NN outside the own leaf
            model_fn = excluding_own_leaf(model_fn, [p.leaf_category for p in products])

    def run(fn: ScoreFn) -> tuple[dict[str, float], np.ndarray]:
        return evaluate_ranker(fn, pairs.queries, pairs.targets, pairs.positives, n, seed=seed)

    model_metrics, model_ranks = run(model_fn)
    result = EvalResult(model_metrics, {}, len(pairs.queries), pairs.mode, {"model": model_ranks})
    for name in baselines:
        if name == "popularity" and pairs.reference_counts is None:
            metrics, ranks = _leave_one_out_popularity(pairs, n, seed)
        else:
            fn = _baseline(name, products, pairs, seed, cache_dir)
            if complementary:
                fn = excluding_own_leaf(fn, [p.leaf_category for p in products])
            metrics, ranks = run(fn)
        result.baselines[name] = metrics
        result.ranks[name] = ranks
    return result


def _baseline(
    name: str, products: Sequence[Product], pairs: EvalPairs, seed: int, cache_dir: Path | None
) -> ScoreFn:
    if name == "random":
        return random_scores(len(products), seed)
    if name == "popularity":
        if pairs.reference_counts is None:
            raise ValueError("popularity needs reference counts (training pairs)")
        return popularity_scores(pairs.reference_counts)
    if name == "tfidf":
        return tfidf_scores(products)
    if name == "bm25":
        return bm25_scores(products)
    if name == "two_hop":
        return two_hop_scores(products, pairs.reference_pairs)
    if name == "two_hop_tfidf":
        return two_hop_tfidf_scores(products, pairs.reference_pairs)
    return minilm_scores(products, cache_dir)


def _leave_one_out_popularity(pairs: EvalPairs, n: int, seed: int) -> tuple[dict[str, float], np.ndarray]:
    """Popularity on an unseen dataset: counts over the evaluated pairs, minus the pair being ranked."""
    targets = pairs.targets
    counts = np.bincount(targets, minlength=n).astype(np.float64)
    # the pair being ranked must not count towards its own target's popularity
    jitter = np.random.default_rng(seed).random(n) * 1e-9
    scores = counts + jitter
    ranks = np.zeros(len(targets), dtype=np.int64)
    for i, (q, t) in enumerate(zip(pairs.queries, targets, strict=True)):
        target_score = scores[t] - 1.0
        excluded = pairs.positives.get(int(q), set()) | {int(q)}
        higher = scores > target_score
        higher[list(excluded)] = False
        ranks[i] = int(higher.sum())
    order = np.argsort(-scores, kind="stable")
    tops = np.array([[i for i in order[:11] if i != q][:10] for q in np.unique(pairs.queries)])
    return metrics_from_ranks(ranks, tops, n), ranks
