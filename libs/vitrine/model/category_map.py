"""The complementary-category map: leaf category → ranked target leaf categories, mined from co-purchases.

Two forms are stored with a complementary model: the ranked, filtered `complementary_map` (below) and a
smoothed `CategoryPrior` (at the end) that serving uses to weigh the targets against each other.

For directed co-purchase pairs (query product, target product) we count leaf-category pairs (A, B):

    support(A, B)    = number of pairs with query leaf A and target leaf B
    confidence(A, B) = support(A, B) / support(A, *)          = P(target in B | query in A)
    lift(A, B)       = confidence(A, B) / P(target in B)      (over independence)

A target is kept when its support reaches `min_support` (rare pairs are noise) and its lift reaches
`min_lift` (a category bought with everything, e.g. batteries, is not specifically complementary);
kept targets are ranked by confidence, because serving queries the first few targets and the
chance that the wanted complement is there is what matters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from vitrine.catalog.schema import Product


@dataclass(frozen=True, slots=True)
class CategoryMapConfig:
    min_support: int = 2
    min_lift: float = 1.0
    max_targets: int = 10

    def __post_init__(self) -> None:
        if self.min_support < 1 or self.max_targets < 1 or self.min_lift < 0:
            raise ValueError("min_support and max_targets must be positive, min_lift non-negative")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TargetStats:
    target: str
    support: int
    confidence: float
    lift: float


def mine_category_stats(
    pairs: Iterable[tuple[str, str]], products: Mapping[str, Product], config: CategoryMapConfig
) -> dict[str, list[TargetStats]]:
    """Per query leaf, the kept targets with their statistics, best first."""
    joint: Counter[tuple[str, str]] = Counter()
    for a, b in pairs:
        leaf_a, leaf_b = products[a].leaf_category, products[b].leaf_category
        if leaf_a and leaf_b and leaf_a != leaf_b:
            joint[(leaf_a, leaf_b)] += 1
    total = sum(joint.values())
    if total == 0:
        return {}
    from_leaf: Counter[str] = Counter()
    to_leaf: Counter[str] = Counter()
    for (a, b), n in joint.items():
        from_leaf[a] += n
        to_leaf[b] += n
    out: dict[str, list[TargetStats]] = {}
    for (a, b), n in joint.items():
        if n < config.min_support:
            continue
        confidence = n / from_leaf[a]
        lift = confidence / (to_leaf[b] / total)
        if lift >= config.min_lift:
            out.setdefault(a, []).append(TargetStats(b, n, confidence, lift))
    for targets in out.values():
        # ties broken by name so that the map is deterministic
        targets.sort(key=lambda t: (-t.confidence, -t.lift, t.target))
        del targets[config.max_targets :]
    return dict(sorted(out.items()))


def mine_complementary_map(
    pairs: Iterable[tuple[str, str]], products: Mapping[str, Product], config: CategoryMapConfig
) -> dict[str, list[str]]:
    """leaf category → ranked target leaf categories (the form stored in model.json)."""
    stats = mine_category_stats(pairs, products, config)
    return {leaf: [t.target for t in targets] for leaf, targets in stats.items()}


@dataclass(frozen=True, slots=True)
class CategoryPrior:
    """P(target leaf | query leaf) from co-purchase counts, smoothed towards the global target share.

        P(c | a) = (support(a, c) + alpha * share(c)) / (support(a, *) + alpha)

    so a leaf with few co-purchases leans on what is bought with everything, and a leaf never seen
    gets the global share. Serving queries the `n` most probable targets and merges their results by
    log P(c | a) + the tower's logit (`vitrine.eval.recommend.complementary_scores`).
    """

    support: dict[str, dict[str, int]]
    totals: dict[str, int]
    share: dict[str, float]
    alpha: float = 1.0

    def targets(self, leaf: str, n: int) -> list[tuple[str, float]]:
        """The `n` most probable target leaves of `leaf` with their probabilities, best first."""
        own = self.support.get(leaf, {})
        total = self.totals.get(leaf, 0) + self.alpha
        scored = [
            (target, (own.get(target, 0) + self.alpha * share) / total)
            for target, share in self.share.items()
            if target != leaf
        ]
        scored.sort(key=lambda ts: (-ts[1], ts[0]))
        return scored[:n]

    def to_dict(self) -> dict[str, Any]:
        return {"support": self.support, "totals": self.totals, "share": self.share, "alpha": self.alpha}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoryPrior:
        return cls(
            support={a: dict(t) for a, t in data["support"].items()},
            totals=dict(data["totals"]),
            share=dict(data["share"]),
            alpha=float(data.get("alpha", 1.0)),
        )


def mine_category_prior(
    pairs: Iterable[tuple[str, str]], products: Mapping[str, Product], alpha: float = 1.0
) -> CategoryPrior:
    """Cross-leaf co-purchase counts (no support or lift filter: smoothing handles the sparse ones)."""
    joint: Counter[tuple[str, str]] = Counter()
    for a, b in pairs:
        leaf_a, leaf_b = products[a].leaf_category, products[b].leaf_category
        if leaf_a and leaf_b and leaf_a != leaf_b:
            joint[(leaf_a, leaf_b)] += 1
    support: dict[str, dict[str, int]] = {}
    totals: Counter[str] = Counter()
    to_leaf: Counter[str] = Counter()
    for (a, b), n in sorted(joint.items()):
        support.setdefault(a, {})[b] = n
        totals[a] += n
        to_leaf[b] += n
    grand = sum(to_leaf.values()) or 1
    share = {b: n / grand for b, n in sorted(to_leaf.items())}
    return CategoryPrior(support, dict(sorted(totals.items())), share, alpha)
