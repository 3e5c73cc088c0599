"""Offline evaluation of free-text intents → products, through the served code path.

A query is one distinct intent of the held-out bundles (`vitrine.data.intents`); its relevant items
are the items of every bundle with that intent; candidates are the whole catalogue. On the dataset
the model's intent tower was trained on, only its test split is used (recomputed from the seed and
fractions in the card); on any other dataset, every intent.

`model` is what the recommender answers to `Inspire(intent=...)`: `vitrine.serving.inspire.inspire`
with the API's default knobs for an intent (its nearest items) over an exact Qdrant Edge index of the catalogue (`vitrine.eval.served`;
exact instead of ANN is the only difference), using the model's intent tower (or its fallback when
it has none). Baselines, on the same queries and catalogue:

- `bm25`: BM25 (bm25s, English stop words) over title + category path;
- `minilm`: zero-shot cosine of all-MiniLM-L6-v2 embeddings of the intent and the titles;
- `e5`: the same with multilingual-e5-small (`query: ` intent, `passage: ` title);
- `item_tower_as_title`: the fallback, served the same way: the item tower reading the intent as a
  product title (what Inspire did before the intent tower);
- `intent_tower_alone`: the ablation of the served path without its hybrid re-scoring (the tower's
  nearest items in its own order); only for a model whose intent tower re-scores.

Every list is cut at 50 items (`vitrine.eval.lists`): recall@10, recall@50, ndcg@10, mrr (= mrr@50).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vitrine.api.requests import RequestLimits
from vitrine.catalog.schema import Product
from vitrine.data.datasets import Dataset, DatasetSpec
from vitrine.data.intents import IntentQuery, IntentSplitConfig, intent_queries, split_intents
from vitrine.eval.lists import LIST_LENGTH, RELEVANCE_METRICS, MetricMeans, relevance
from vitrine.eval.served import exact_served_model
from vitrine.model.inference import InferenceModel
from vitrine.serving.deadline import Deadline
from vitrine.serving.inspire import InspireQuery, Strategy, inspire
from vitrine.serving.registry import ServedModel
from vitrine.text.cache import DEFAULT_CACHE, encode_cached

log = logging.getLogger(__name__)

BASELINES = ("bm25", "minilm", "e5", "item_tower_as_title", "intent_tower_alone")
SENTENCE_BASELINES = {"minilm": "minilm", "e5": "e5-small"}


@dataclass(frozen=True, slots=True)
class IntentKnobs:
    """Inspire's knobs for an intent request; the defaults are what the API serves for an intent
    that sets no diversity (its nearest items, `RequestLimits.default_intent_mmr_diversity`)."""

    strategy: Strategy = Strategy.MMR
    nearest_clusters: int = RequestLimits().default_clusters
    skip_clusters: int = 0
    mmr_diversity: float = RequestLimits().default_intent_mmr_diversity

    def query(self, intent: str) -> InspireQuery:
        return InspireQuery(
            intent=intent,
            limit=LIST_LENGTH,
            strategy=self.strategy,
            nearest_clusters=self.nearest_clusters,
            skip_clusters=self.skip_clusters,
            mmr_diversity=self.mmr_diversity,
        )


@dataclass(slots=True)
class IntentEvalResult:
    model: dict[str, float]
    baselines: dict[str, dict[str, float]]
    queries: int
    mode: str  # "test_split" | "val_split" | "all_intents"
    intent_tower: bool  # False: the model has none and was served through the fallback
    ranked: dict[str, list[list[str]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "baselines": self.baselines, "queries": self.queries}


def trained_on(record: dict[str, Any], spec: DatasetSpec) -> bool:
    """Whether the intent tower described by `record` (the card's `intent`) was trained on `spec`."""
    dataset = record.get("dataset", {})
    path = spec.path if spec.kind == "synthetic" else str(Path(spec.path).resolve())
    return dataset.get("kind") == spec.kind and dataset.get("path") == path


def select_queries(
    model: InferenceModel, dataset: Dataset, spec: DatasetSpec, split: str
) -> tuple[list[IntentQuery], str]:
    queries = intent_queries(dataset)
    record = model.card.intent
    if record and trained_on(record, spec):
        by_split = split_intents(queries, IntentSplitConfig.from_dict(record.get("split", {})))
        return by_split[split], f"{split}_split"
    return queries, "all_intents"


Ranker = Callable[[Sequence[IntentQuery]], list[list[str]]]


def served_ranker(served: ServedModel, knobs: IntentKnobs) -> Ranker:
    def rank(queries: Sequence[IntentQuery]) -> list[list[str]]:
        return [
            [r.product_id for r in inspire(served, knobs.query(q.text), Deadline.none())] for q in queries
        ]

    return rank


def _top(scores: np.ndarray, ids: Sequence[str]) -> list[list[str]]:
    k = min(LIST_LENGTH, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    out = []
    for row, cand in zip(scores, part, strict=True):
        order = cand[np.argsort(-row[cand], kind="stable")]
        out.append([ids[i] for i in order])
    return out


def bm25_ranker(products: Sequence[Product]) -> Ranker:
    import bm25s

    ids = [p.product_id for p in products]
    corpus = [" ".join([p.title, *p.category_path]) for p in products]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)

    def rank(queries: Sequence[IntentQuery]) -> list[list[str]]:
        rows = []
        for q in queries:
            tokens = bm25s.tokenize([q.text], stopwords="en", show_progress=False, return_ids=False)[0]
            rows.append(retriever.get_scores(tokens) if tokens else np.zeros(len(ids)))
        return _top(np.asarray(rows, dtype=np.float64), ids)

    return rank


def sentence_ranker(encoder: str, products: Sequence[Product], cache_dir: Path | None) -> Ranker:
    """Zero-shot cosine: intents as queries, titles as documents (e5's `query: ` / `passage: `)."""
    ids = [p.product_id for p in products]
    titles = encode_cached(encoder, [p.title for p in products], "document", cache_dir)

    def rank(queries: Sequence[IntentQuery]) -> list[list[str]]:
        vectors = encode_cached(encoder, [q.text for q in queries], "query", cache_dir)
        return _top(vectors @ titles.T, ids)

    return rank


def measure(
    ranked: Sequence[Sequence[str]], queries: Sequence[IntentQuery], catalogue: int
) -> dict[str, float]:
    means = MetricMeans(catalogue)
    for items, q in zip(ranked, queries, strict=True):
        means.add(items, relevance(items, q.items))
    out = means.means()
    return {k: out[k] for k in RELEVANCE_METRICS}


def evaluate_intents(
    model: InferenceModel,
    fallback: InferenceModel,
    dataset: Dataset,
    spec: DatasetSpec,
    baselines: Sequence[str] = BASELINES,
    split: str = "test",
    knobs: IntentKnobs | None = None,
    cache_dir: Path | None = DEFAULT_CACHE,
    extra_encoders: Mapping[str, str] | None = None,
    tower_alone: InferenceModel | None = None,
) -> IntentEvalResult:
    """`model` as served; `fallback` is the same model loaded without its intent tower, `tower_alone`
    with its intent tower but without the re-scoring (None, or a tower that does not re-score: the
    `intent_tower_alone` row is left out).
    `extra_encoders`: further zero-shot baselines, name → sentence encoder (an NLI-tuned directory)."""
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; allowed: {', '.join(BASELINES)}")
    extra = dict(extra_encoders or {})
    clash = set(extra) & set(BASELINES)
    if clash:
        raise ValueError(f"extra encoder names {sorted(clash)} clash with the built-in baselines")
    if split not in ("val", "test"):
        raise ValueError(f"split must be val or test, got {split!r}")
    knobs = knobs or IntentKnobs()
    products = dataset.products
    queries, mode = select_queries(model, dataset, spec, split)
    if not queries:
        raise ValueError(f"no {split} intents in {spec.label}")
    log.info("%s: %d intents (%s), %d products", spec.label, len(queries), mode, len(products))
    result = IntentEvalResult({}, {}, len(queries), mode, model.intent is not None)
    with exact_served_model(model, products) as served:
        ranked = served_ranker(served, knobs)(queries)
        result.model, result.ranked["model"] = measure(ranked, queries, len(products)), ranked
        rescored = model.intent is not None and model.intent.rescoring is not None
        for name in baselines:
            if name == "intent_tower_alone" and (tower_alone is None or not rescored):
                continue
            if name == "intent_tower_alone":
                rank = served_ranker(replace(served, model=tower_alone), knobs)
            elif name == "item_tower_as_title":
                rank = served_ranker(replace(served, model=fallback), knobs)
            elif name == "bm25":
                rank = bm25_ranker(products)
            else:
                rank = sentence_ranker(SENTENCE_BASELINES[name], products, cache_dir)
            ranked = rank(queries)
            result.baselines[name], result.ranked[name] = measure(ranked, queries, len(products)), ranked
        for name, encoder in extra.items():
            ranked = sentence_ranker(encoder, products, cache_dir)(queries)
            result.baselines[name], result.ranked[name] = measure(ranked, queries, len(products)), ranked
    return result
