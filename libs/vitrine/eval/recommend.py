"""Offline evaluation of a trained model against baselines on held-out (query, target) pairs.

Which pairs: on a dataset the model was trained on, only its test split (recomputed from the seed
and fractions in the model card); on a dataset it never saw, all of the dataset's pairs. The model
is evaluated as it is served, through its ONNX towers (`InferenceModel`):

- similar model: exact k-NN of the query's item vector;
- complementary model: one query per target category (the `targets_per_query` most probable
  targets of the query's leaf under the mined co-purchase prior), each searching only its target
  category; results merged by log-prior + tower logit (or round-robin over the ranked map with
  merge="interleave"); the rest of the catalogue follows, so every pair has a rank.

Baselines see exactly the same pairs: random, popularity (how often an item is a positive in the
training pairs; leave-one-out counts over the evaluated pairs for an unseen dataset), TF-IDF cosine
on titles, and zero-shot all-MiniLM-L6-v2 cosine on titles.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitrine.catalog.schema import Product
from vitrine.data.datasets import Dataset, DatasetSpec
from vitrine.data.pairs import Pair, PairConfig, SplitConfig, product_splits, split_pairs, task_pairs
from vitrine.errors import DataError
from vitrine.eval.baselines import minilm_scores, popularity_scores, random_scores, tfidf_scores
from vitrine.eval.ranking import ScoreFn, evaluate_ranker, metrics_from_ranks
from vitrine.model.card import ModelCard

log = logging.getLogger(__name__)

BASELINES = ("random", "popularity", "tfidf", "minilm")
MERGES = ("score", "interleave")


@dataclass(frozen=True, slots=True)
class EvalPairs:
    queries: np.ndarray  # item index per pair
    targets: np.ndarray
    positives: dict[int, set[int]]  # every known positive of each query (for filtered ranking)
    reference_counts: np.ndarray | None  # popularity from training pairs; None = leave-one-out
    mode: str  # "test_split" | "all_pairs"


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
    return EvalPairs(arr[:, 0], arr[:, 1], positives, counts, mode)


def fallback_targets(complementary_map: Mapping[str, Sequence[str]], n: int) -> list[str]:
    """The targets to query for a leaf the map does not know: the map's most common targets."""
    score: Counter[str] = Counter()
    for targets in complementary_map.values():
        for rank, target in enumerate(targets):
            score[target] += 1.0 / (rank + 1)
    return [t for t, _ in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _plans(
    towers: Any, leaves: Sequence[str], targets_per_query: int, merge: str
) -> list[list[tuple[str, float]]]:
    """Per query leaf: the target categories to query, with their prior P(target | leaf)."""
    if merge == "score":
        return [towers.complementary_targets(leaf, targets_per_query) for leaf in leaves]
    fallback = fallback_targets(towers.complementary_map, targets_per_query)
    plans = []
    for leaf in leaves:
        targets = list(towers.complementary_map.get(leaf) or fallback)[:targets_per_query]
        plans.append([(t, 1.0) for t in targets])
    return plans


def complementary_scores(
    towers: Any,
    products: Sequence[Product],
    item_vectors: np.ndarray,
    targets_per_query: int,
    merge: str = "score",
) -> ScoreFn:
    """Complementary serving: one query per target category, each searching only that category.

    merge="score": candidates of all queried categories ranked by log P(target | leaf) + q_t . v / T
    (prior from the mined co-purchase statistics, T the training temperature: the tower's logit).
    merge="interleave": the ranked map's categories in turn, round-robin, best items first.
    Either way the rest of the catalogue follows by best query score, so every pair has a rank.
    """
    if merge not in MERGES:
        raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
    leaves = np.array([p.leaf_category for p in products])
    members = {leaf: np.flatnonzero(leaves == leaf) for leaf in np.unique(leaves)}
    empty = np.zeros(0, dtype=np.int64)
    n = len(products)
    temperature = float(getattr(towers, "temperature", 1.0))

    def score(queries: np.ndarray) -> np.ndarray:
        plans = _plans(towers, [leaves[q] for q in queries], targets_per_query, merge)
        flat_products = [products[q] for q, plan in zip(queries, plans, strict=True) for _ in plan]
        flat_targets = [t for plan in plans for t, _ in plan]
        vectors = towers.encode_complementary_queries(flat_products, flat_targets)
        out = np.empty((len(queries), n), dtype=np.float64)
        offset = 0
        for row, plan in enumerate(plans):
            q_vectors = vectors[offset : offset + len(plan)]
            offset += len(plan)
            if not plan:
                out[row] = 0.0
                continue
            scores = q_vectors @ item_vectors.T  # [T, N]
            # listed: items of the queried categories; rest: everything else, after them
            key = np.full(n, -np.inf)
            for order, (target, prior) in enumerate(plan):
                idx = members.get(target, empty)
                if merge == "score":
                    key[idx] = np.log(prior) + scores[order, idx] / temperature
                else:
                    ranked = idx[np.argsort(-scores[order, idx], kind="stable")]
                    key[ranked] = -(np.arange(len(ranked)) * len(plan) + order).astype(np.float64)
            listed = np.isfinite(key)
            floor = key[listed].min() if listed.any() else 0.0
            best = scores.max(axis=0)
            key[~listed] = floor - 1e3 + best[~listed]
            out[row] = key
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
    targets_per_query: int = 16,
    merge: str = "score",
    seed: int = 0,
    cache_dir: Path | None = None,
) -> EvalResult:
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; allowed: {', '.join(BASELINES)}")
    products = dataset.products
    n = len(products)
    pairs = select_pairs(dataset, spec, task, card)
    log.info("%s %s: %d pairs (%s), %d products", spec.label, task, len(pairs.queries), pairs.mode, n)
    item_vectors = towers.encode_items(products)
    if card.task == "complementary" and task == "complementary":
        model_fn = complementary_scores(towers, products, item_vectors, targets_per_query, merge)
    else:

        def model_fn(queries: np.ndarray) -> np.ndarray:
            return item_vectors[queries] @ item_vectors.T

    def run(fn: ScoreFn) -> tuple[dict[str, float], np.ndarray]:
        return evaluate_ranker(fn, pairs.queries, pairs.targets, pairs.positives, n, seed=seed)

    model_metrics, model_ranks = run(model_fn)
    result = EvalResult(model_metrics, {}, len(pairs.queries), pairs.mode, {"model": model_ranks})
    for name in baselines:
        if name == "popularity" and pairs.reference_counts is None:
            metrics, ranks = _leave_one_out_popularity(pairs, n, seed)
        else:
            metrics, ranks = run(_baseline(name, products, pairs, seed, cache_dir))
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
