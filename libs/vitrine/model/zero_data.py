"""Zero-data start: training pairs for a catalogue without behaviour data (no co-views, no baskets).

A shop on day one has titles, category paths and attributes, but no sessions or baskets. Instead of
refusing to train, `vitrine train` builds pseudo pairs from the catalogue alone and trains the usual
towers on them, so that the result is a normal model directory (`vitrine export`, the encoder and
the recommender take it as any other, a trained model replaces it later through backfill and A/B):

- similar: each product with its nearest products of the same leaf category by title tokens (the
  parent category when the leaf holds no other product): substitutes as the category tree and the
  titles describe them;
- complementary: each product with products of the categories a **category rule file** names for
  its category ("Bicycles: [Helmets, Bike Lights]"). Without a file, the rule is "the other leaves
  under the same parent category", written next to the model as `category_rules.yaml`, for the
  shop to edit and train again with `--category-rules`; and each product with its nearest titles
  in other leaf categories (TF-IDF), since an accessory's title names what it goes with.

The model card says `kind: zero_data` (and `vitrine_*_model_info{kind="zero_data"}` in production).
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from vitrine.catalog.schema import Product
from vitrine.errors import DataError
from vitrine.model.config import RetrievalConfig

log = logging.getLogger(__name__)

RULES_FILE = "category_rules.yaml"
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class ZeroDataConfig:
    similar_neighbours: int = 3  # pseudo pairs per product for similar
    complementary_per_target: int = 2  # products drawn from each target category per product
    # complementary: also pair each product with its nearest titles outside its own leaf (TF-IDF),
    # the "related words, other category" rule a shop would write by hand (0 = the rules alone)
    complementary_lexical: int = 3
    # pseudo pairs are a rule the towers learn within a few epochs; more only fit the rule closer (and
    # a day-one model should train in minutes): electronic 598 steps an epoch
    max_epochs: int = 5
    # served retrieval of a zero-data complementary model: its tower knows only the rules, so the
    # words lead (TF-IDF weight 200, not 20) over a deeper candidate list (1,000, not 200). Chosen on
    # the validation pairs of BundleRec electronic and Amazon magazines (docs/EVALUATION.md)
    complementary_lexical_weight: float = 200.0
    complementary_rerank_depth: int = 1000
    seed: int = 13


def zero_data_retrieval(config: ZeroDataConfig | None = None) -> RetrievalConfig:
    config = config or ZeroDataConfig()
    return RetrievalConfig(
        lexical_weight=config.complementary_lexical_weight, rerank_depth=config.complementary_rerank_depth
    )


def _leaf(product: Product) -> str:
    return product.category_path[-1] if product.category_path else ""


def _parent(product: Product) -> str:
    return " > ".join(product.category_path[:-1])


def _tokens(product: Product) -> frozenset[str]:
    return frozenset(t.lower() for t in _TOKEN.findall(f"{product.title} {product.brand}"))


def _nearest(anchor: Product, others: Sequence[Product], k: int) -> list[Product]:
    """The `k` products of `others` whose title tokens overlap the anchor's most (Jaccard), ties by id."""
    a = _tokens(anchor)

    def score(p: Product) -> tuple[float, str]:
        b = _tokens(p)
        union = len(a | b)
        return (-(len(a & b) / union) if union else 0.0, p.product_id)

    return sorted((p for p in others if p.product_id != anchor.product_id), key=score)[:k]


def similar_pseudo_pairs(products: Sequence[Product], config: ZeroDataConfig) -> list[tuple[str, str]]:
    by_leaf: dict[str, list[Product]] = defaultdict(list)
    by_parent: dict[str, list[Product]] = defaultdict(list)
    for p in products:
        by_leaf[_leaf(p)].append(p)
        by_parent[_parent(p)].append(p)
    pairs = []
    for p in products:
        group = by_leaf[_leaf(p)] if len(by_leaf[_leaf(p)]) > 1 else by_parent[_parent(p)]
        pairs += [(p.product_id, q.product_id) for q in _nearest(p, group, config.similar_neighbours)]
    return pairs


def default_rules(products: Sequence[Product]) -> dict[str, list[str]]:
    """Leaf category → the other leaves under the same parent category (sorted): a starting point
    that keeps complements within a department; the shop edits it."""
    leaves_by_parent: dict[str, set[str]] = defaultdict(set)
    for p in products:
        if _leaf(p):
            leaves_by_parent[_parent(p)].add(_leaf(p))
    rules: dict[str, list[str]] = {}
    for leaves in leaves_by_parent.values():
        for leaf in leaves:
            rules[leaf] = sorted(leaves - {leaf})
    return dict(sorted(rules.items()))


def read_rules(path: Path) -> dict[str, list[str]]:
    """A rule file: a mapping of category name → list of category names (YAML or JSON)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise DataError(f"{path}: cannot read the category rule file: {e}") from e
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
        for k, v in raw.items()
    ):
        raise DataError(f"{path}: a category rule file maps a category to a list of categories")
    return {k: list(v) for k, v in raw.items()}


def write_rules(rules: Mapping[str, Sequence[str]], path: Path) -> None:
    header = (
        "# vitrine zero-data complementary rules: category -> categories that go well with it.\n"
        "# Names are leaf categories or any category on a product's path. Edit, then train again:\n"
        "#   vitrine train --task complementary --dataset ... --category-rules THIS_FILE --out DIR\n"
    )
    body = yaml.safe_dump({k: list(v) for k, v in rules.items()}, sort_keys=True, allow_unicode=True)
    path.write_text(header + body, encoding="utf-8")


def complementary_pseudo_pairs(
    products: Sequence[Product], rules: Mapping[str, Sequence[str]], config: ZeroDataConfig
) -> list[tuple[str, str]]:
    """Each product with up to `complementary_per_target` products of every category its rules name
    (a rule applies to a product whose leaf or any category on its path is the rule's key)."""
    rng = random.Random(config.seed)
    in_category: dict[str, list[Product]] = defaultdict(list)
    for p in products:
        for name in set(p.category_path):
            in_category[name].append(p)
    pairs = []
    for p in products:
        targets = [t for name in p.category_path for t in rules.get(name, ())]
        for target in dict.fromkeys(targets):
            pool = [q for q in in_category.get(target, ()) if _leaf(q) != _leaf(p)]
            for q in rng.sample(pool, min(len(pool), config.complementary_per_target)):
                pairs.append((p.product_id, q.product_id))
    return pairs


def lexical_pseudo_pairs(products: Sequence[Product], k: int, chunk: int = 512) -> list[tuple[str, str]]:
    """Each product with the `k` products outside its own leaf category whose titles are nearest by
    word 1-2-gram TF-IDF cosine (a positive score only): accessories name what they fit ("case for
    phone x1"), so shared words across categories are the catalogue's own complement signal."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    if k <= 0 or len(products) < 2:
        return []
    titles = [p.title if p.title.strip() else "_" for p in products]
    # English stop words: "with", "for" would otherwise pair a helmet "with light" and a lock "with key"
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, stop_words="english", dtype=np.float32
    )
    try:
        matrix = vectorizer.fit_transform(titles)
    except ValueError:  # no title has a word left (all stop words): nothing to pair on
        return []
    leaves = np.array([_leaf(p) for p in products])
    pairs = []
    for start in range(0, len(products), chunk):
        rows = np.arange(start, min(start + chunk, len(products)))
        scores = np.asarray((matrix[rows] @ matrix.T).toarray())
        scores[leaves[rows][:, None] == leaves[None, :]] = 0.0  # the own leaf (and the product itself)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        for row, cols in zip(rows, top, strict=True):
            pairs += [
                (products[row].product_id, products[c].product_id) for c in cols if scores[row - start, c] > 0
            ]
    return pairs


def pseudo_pairs(
    task: str,
    products: Sequence[Product],
    rules: Mapping[str, Sequence[str]] | None,
    config: ZeroDataConfig | None = None,
) -> list[tuple[str, str]]:
    config = config or ZeroDataConfig()
    if task == "similar":
        return similar_pseudo_pairs(products, config)
    if rules is None:
        raise ValueError("complementary pseudo pairs need category rules")
    return complementary_pseudo_pairs(products, rules, config) + lexical_pseudo_pairs(
        products, config.complementary_lexical
    )
