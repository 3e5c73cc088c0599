"""Refresh a model's complementary-category prior from recent purchases, without retraining its towers.

The co-purchase pairs are the training pairs' (`vitrine.data.pairs.complementary_pairs`: different
leaves, the group-size cap), and the map and prior are mined by the functions training uses
(`vitrine.model.category_map`), so a refreshed prior means what the trained one meant, on fresher data.
"""

from __future__ import annotations

from pathlib import Path

from vitrine.data.datasets import Dataset
from vitrine.data.pairs import PairConfig, complementary_pairs
from vitrine.errors import ConfigError
from vitrine.model.card import read_card
from vitrine.model.category_map import CategoryMapConfig, mine_category_prior, mine_complementary_map
from vitrine.model.prior import ComplementaryPrior


def refresh_prior(
    model_dir: Path,
    dataset: Dataset,
    config: CategoryMapConfig | None = None,
    pairs: PairConfig | None = None,
    min_pairs: int = 1,
) -> ComplementaryPrior:
    """Mine a new prior version from `dataset`'s baskets and write it next to the model."""
    card = read_card(model_dir)
    if card.task != "complementary":
        raise ConfigError(f"{model_dir} is a {card.task!r} model; only complementary models have a prior")
    config = config or CategoryMapConfig()
    found = complementary_pairs(dataset, pairs or PairConfig())
    if len(found) < min_pairs:
        raise ConfigError(
            f"only {len(found)} co-purchase pairs in {dataset.name} (at least {min_pairs} wanted); "
            "the current prior is kept"
        )
    by_id = dataset.by_id()
    prior = ComplementaryPrior.new(
        mine_complementary_map(found, by_id, config),
        mine_category_prior(found, by_id).to_dict(),
        {
            "dataset": dataset.name,
            "pairs": len(found),
            "baskets": len(dataset.bundles),
            "category_map": config.to_dict(),
            "model_version": card.model_version,
            "reports": [r.to_dict() for r in dataset.reports],
        },
    )
    prior.save(model_dir)
    return prior
