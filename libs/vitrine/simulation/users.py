"""Simulated shoppers with ground-truth preferences over a catalogue, who respond to the lists they see.

Each user is interested in a few leaf categories (and prefers a price level). On a product page (an
anchor from their interests) they are shown a list; an item's true relevance to them is

    similar:        1.0 if in the anchor's leaf, 0.3 if in its subcategory, else 0.05
    complementary:  1.0 if its leaf complements the anchor's (`complementary_map`), else 0.05

times a price preference (items near the user's price level are preferred). Each position is looked at
with probability 1 / log2(position + 1) (position bias); a looked-at item is clicked with probability
`click_rate` x relevance; a click is added to the cart with `cart_rate` and bought with
`purchase_rate` (x relevance). The same seed gives the same users and the same answers to the same
lists, so two rankers can be compared on identical traffic.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vitrine.catalog.schema import Product
from vitrine.feedback.interactions import InteractionType


@dataclass(frozen=True, slots=True)
class UserModel:
    interests: int = 3  # leaf categories per user
    click_rate: float = 0.35
    cart_rate: float = 0.3
    purchase_rate: float = 0.5
    price_sensitivity: float = 0.5  # 0 = ignores price

    def __post_init__(self) -> None:
        for name in ("click_rate", "cart_rate", "purchase_rate", "price_sensitivity"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.interests < 1:
            raise ValueError("interests must be >= 1")


@dataclass(frozen=True, slots=True)
class SimulatedUser:
    unit_key: str
    leaves: tuple[str, ...]
    price_level: float  # log price the user is most comfortable with


@dataclass(frozen=True, slots=True)
class Response:
    type: InteractionType
    product_id: str
    value: float = 0.0  # purchases: the price


@dataclass
class UserSimulator:
    products: Sequence[Product]
    complementary_map: Mapping[str, Sequence[str]] = field(default_factory=dict)
    model: UserModel = field(default_factory=UserModel)
    seed: int = 0

    def __post_init__(self) -> None:
        self.by_id = {p.product_id: p for p in self.products}
        self.by_leaf: dict[str, list[Product]] = {}
        for p in self.products:
            if p.leaf_category and p.availability.purchasable:
                self.by_leaf.setdefault(p.leaf_category, []).append(p)
        self._leaves = sorted(self.by_leaf)
        if not self._leaves:
            raise ValueError("the catalogue has no purchasable product with a category")

    def users(self, n: int, prefix: str = "user") -> list[SimulatedUser]:
        rng = random.Random(f"{self.seed}:users:{prefix}")
        out = []
        for i in range(n):
            leaves = tuple(rng.sample(self._leaves, min(self.model.interests, len(self._leaves))))
            prices = [math.log(p.price) for leaf in leaves for p in self.by_leaf[leaf] if p.price]
            level = rng.choice(prices) if prices else 0.0
            out.append(SimulatedUser(f"{prefix}-{i:06d}", leaves, level))
        return out

    def anchor(self, user: SimulatedUser, step: int) -> Product:
        """The product page the user opens at their `step`-th visit (deterministic per user and step)."""
        rng = random.Random(f"{self.seed}:anchor:{user.unit_key}:{step}")
        return rng.choice(self.by_leaf[rng.choice(user.leaves)])

    def relevance(self, user: SimulatedUser, anchor: Product, item: Product, task: str = "similar") -> float:
        if task == "complementary":
            base = 1.0 if item.leaf_category in self.complementary_map.get(anchor.leaf_category, ()) else 0.05
        elif item.leaf_category == anchor.leaf_category:
            base = 1.0
        elif item.category_path[:-1] == anchor.category_path[:-1] and item.category_path:
            base = 0.3
        else:
            base = 0.05
        if item.price and self.model.price_sensitivity:
            distance = abs(math.log(item.price) - user.price_level)
            base *= math.exp(-self.model.price_sensitivity * distance)
        return base

    def respond(
        self, user: SimulatedUser, anchor: Product, shown: Sequence[str], step: int, task: str = "similar"
    ) -> list[Response]:
        """What the user does with a list (clicks, add-to-carts, purchases, in that order per item)."""
        rng = random.Random(f"{self.seed}:respond:{user.unit_key}:{step}:{','.join(shown)}")
        m = self.model
        out: list[Response] = []
        for position, product_id in enumerate(shown, start=1):
            item = self.by_id.get(product_id)
            if item is None or rng.random() > 1 / math.log2(position + 1):
                continue
            relevance = self.relevance(user, anchor, item, task)
            if rng.random() >= m.click_rate * relevance:
                continue
            out.append(Response(InteractionType.CLICK, product_id))
            if rng.random() < m.cart_rate * relevance:
                out.append(Response(InteractionType.ADD_TO_CART, product_id))
                if rng.random() < m.purchase_rate:
                    out.append(Response(InteractionType.PURCHASE, product_id, float(item.price or 0.0)))
        return out
