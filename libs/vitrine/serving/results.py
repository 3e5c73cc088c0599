"""What every task returns: ranked items with the reason each one is there."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vitrine.index.port import ScoredItem


class Task(enum.StrEnum):
    SIMILAR = "similar"
    COMPLEMENTARY = "complementary"
    INSPIRE = "inspire"


@dataclass(frozen=True, slots=True)
class Recommendation:
    item: ScoredItem
    task: Task
    reason: str
    anchor_id: str = ""  # the product this item answers ("" for an inline product or an intent)
    target_category: str = ""  # complementary: the category this item fills

    @property
    def product_id(self) -> str:
        return self.item.product_id
