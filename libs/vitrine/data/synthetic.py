"""A synthetic catalogue with known ground truth, so the demo and the tests never depend on ../shared.

It has what real shops have: a category tree, brands that belong to departments, sellers, prices
that depend on the category, titles made of brand + attributes + a category noun; and behaviour:
browsing sessions that stay mostly inside one leaf category (the similarity signal) and co-purchase
baskets that pair a product with products of known complementary categories (the complementarity
signal, `complementary_map`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from vitrine.catalog.schema import Availability, Product

# department -> subcategory -> leaf -> nouns used in titles
TAXONOMY: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "Electronics": {
        "Computers": {
            "Laptops": ("laptop", "notebook", "ultrabook"),
            "Computer Mice": ("wireless mouse", "gaming mouse", "ergonomic mouse"),
            "Laptop Bags": ("laptop bag", "laptop sleeve", "laptop backpack"),
            "Keyboards": ("mechanical keyboard", "wireless keyboard", "keyboard"),
        },
        "Audio": {
            "Headphones": ("headphones", "over-ear headphones", "earbuds"),
            "Speakers": ("bluetooth speaker", "portable speaker", "soundbar"),
            "Audio Cables": ("aux cable", "headphone extension cable", "audio adapter"),
        },
        "Phones": {
            "Smartphones": ("smartphone", "phone"),
            "Phone Cases": ("phone case", "protective cover", "silicone case"),
            "Chargers": ("usb-c charger", "fast charger", "wireless charger"),
            "Screen Protectors": ("tempered glass screen protector", "screen protector film"),
        },
    },
    "Home & Kitchen": {
        "Coffee": {
            "Coffee Machines": ("espresso machine", "coffee maker", "drip coffee machine"),
            "Coffee Beans": ("whole coffee beans", "ground coffee", "espresso beans"),
            "Mugs": ("coffee mug", "travel mug", "ceramic cup"),
        },
        "Cookware": {
            "Frying Pans": ("frying pan", "skillet", "non-stick pan"),
            "Spatulas": ("silicone spatula", "turner", "wooden spatula"),
            "Cutting Boards": ("cutting board", "chopping board"),
        },
    },
    "Sports": {
        "Running": {
            "Running Shoes": ("running shoes", "trail running shoes", "road running shoes"),
            "Running Socks": ("running socks", "compression socks"),
            "Water Bottles": ("water bottle", "sports bottle", "insulated bottle"),
        },
        "Cycling": {
            "Bicycles": ("road bike", "mountain bike", "city bike"),
            "Bike Helmets": ("bike helmet", "cycling helmet"),
            "Bike Lights": ("bike light set", "led front light", "rear bike light"),
        },
    },
    "Clothing": {
        "Men": {
            "Men's Shirts": ("oxford shirt", "linen shirt", "dress shirt"),
            "Ties": ("silk tie", "knitted tie", "bow tie"),
            "Men's Belts": ("leather belt", "canvas belt"),
        },
        "Women": {
            "Dresses": ("summer dress", "maxi dress", "cocktail dress"),
            "Handbags": ("leather handbag", "tote bag", "crossbody bag"),
            "Scarves": ("silk scarf", "wool scarf"),
        },
    },
}

# leaf -> complementary leaves, most complementary first (the ground truth the models should learn)
COMPLEMENTARY_MAP: dict[str, tuple[str, ...]] = {
    "Laptops": ("Laptop Bags", "Computer Mice", "Keyboards"),
    "Computer Mice": ("Keyboards", "Laptops"),
    "Keyboards": ("Computer Mice",),
    "Laptop Bags": ("Laptops",),
    "Headphones": ("Audio Cables", "Smartphones"),
    "Speakers": ("Audio Cables",),
    "Smartphones": ("Phone Cases", "Screen Protectors", "Chargers", "Headphones"),
    "Phone Cases": ("Screen Protectors", "Smartphones"),
    "Coffee Machines": ("Coffee Beans", "Mugs"),
    "Coffee Beans": ("Mugs", "Coffee Machines"),
    "Frying Pans": ("Spatulas", "Cutting Boards"),
    "Running Shoes": ("Running Socks", "Water Bottles"),
    "Bicycles": ("Bike Helmets", "Bike Lights", "Water Bottles"),
    "Bike Helmets": ("Bike Lights",),
    "Men's Shirts": ("Ties", "Men's Belts"),
    "Dresses": ("Handbags", "Scarves"),
    "Handbags": ("Scarves",),
}

BRANDS: dict[str, tuple[str, ...]] = {
    "Electronics": ("Voltra", "Nexon", "Pixelio", "Sonique", "Arclight", "Kestrel"),
    "Home & Kitchen": ("Casalta", "Brewmaster", "Forno", "Ottavia", "Kuchnia"),
    "Sports": ("Stridex", "Velocita", "Peakline", "Alpen", "Hydra"),
    "Clothing": ("Maison Lune", "Tailor & Co", "Nordvik", "Sartoria", "Bellweather"),
}
ADJECTIVES = (
    "classic", "pro", "compact", "premium", "lightweight", "eco", "ultra", "essential", "deluxe",
    "slim", "rugged", "smart", "vintage", "modern", "everyday",
)  # fmt: skip
COLOURS = ("black", "white", "navy", "red", "grey", "green", "beige", "blue", "silver", "brown")
SELLERS = tuple(f"seller-{i:02d}" for i in range(12))
# typical price per department (EUR); leaves vary around it
BASE_PRICE = {"Electronics": 120.0, "Home & Kitchen": 35.0, "Sports": 60.0, "Clothing": 45.0}


@dataclass(frozen=True, slots=True)
class Session:
    """A browsing session: product ids viewed in order (the co-view signal)."""

    session_id: str
    product_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Basket:
    """Products bought together in one order (the co-purchase signal)."""

    basket_id: str
    product_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SyntheticCatalog:
    products: tuple[Product, ...]
    sessions: tuple[Session, ...]
    baskets: tuple[Basket, ...]
    complementary_map: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def by_id(self) -> dict[str, Product]:
        return {p.product_id: p for p in self.products}


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    n_products: int = 2000
    n_sessions: int = 4000
    n_baskets: int = 3000
    seed: int = 7
    out_of_stock_rate: float = 0.05
    # probability that a session step jumps to an unrelated leaf (noise in co-views)
    session_noise: float = 0.1

    def __post_init__(self) -> None:
        if self.n_products < len(leaves()):
            raise ValueError(f"n_products must be at least {len(leaves())} (one per leaf category)")
        for name in ("out_of_stock_rate", "session_noise"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")


def leaves() -> list[tuple[str, str, str]]:
    """Every (department, subcategory, leaf) of the taxonomy, in a stable order."""
    return [(d, s, leaf) for d, subs in TAXONOMY.items() for s, ls in subs.items() for leaf in ls]


def _nouns(department: str, sub: str, leaf: str) -> tuple[str, ...]:
    return TAXONOMY[department][sub][leaf]


def make_product(rng: random.Random, index: int, department: str, sub: str, leaf: str) -> Product:
    brand = rng.choice(BRANDS[department])
    noun = rng.choice(_nouns(department, sub, leaf))
    adjective = rng.choice(ADJECTIVES)
    colour = rng.choice(COLOURS)
    model = f"{rng.choice('ABCDEFGHKLMNPRSTVX')}{rng.randint(10, 990)}"
    leaf_factor = 0.5 + (sum(map(ord, leaf)) % 17) / 8.0  # stable per leaf, 0.5..2.5
    price = round(BASE_PRICE[department] * leaf_factor * math.exp(rng.gauss(0.0, 0.35)), 2)
    return Product(
        product_id=f"p{index:06d}",
        title=f"{brand} {adjective} {noun} {model} {colour}".strip(),
        description=f"{adjective.capitalize()} {noun} by {brand} in {colour}. Category: {leaf}.",
        category_path=(department, sub, leaf),
        brand=brand,
        seller=rng.choice(SELLERS),
        price=price,
        currency="EUR",
        availability=Availability.IN_STOCK,
        attributes={"colour": colour},
    )


def generate(config: SyntheticConfig | None = None) -> SyntheticCatalog:
    """Build a deterministic synthetic catalogue (same config → same catalogue)."""
    config = config or SyntheticConfig()
    rng = random.Random(config.seed)
    all_leaves = leaves()
    products: list[Product] = []
    by_leaf: dict[str, list[str]] = {leaf: [] for _, _, leaf in all_leaves}
    for i in range(config.n_products):
        # every leaf gets at least one product; the rest are spread with a mild popularity skew
        d, s, leaf = all_leaves[i] if i < len(all_leaves) else rng.choice(all_leaves)
        product = make_product(rng, i, d, s, leaf)
        if rng.random() < config.out_of_stock_rate:
            product = replace(product, availability=Availability.OUT_OF_STOCK)
        products.append(product)
        by_leaf[leaf].append(product.product_id)

    leaf_names = list(by_leaf)
    sessions = []
    for i in range(config.n_sessions):
        leaf = rng.choice(leaf_names)
        viewed: list[str] = []
        for _ in range(rng.randint(2, 6)):
            step_leaf = rng.choice(leaf_names) if rng.random() < config.session_noise else leaf
            viewed.append(rng.choice(by_leaf[step_leaf]))
        sessions.append(Session(f"s{i:06d}", tuple(dict.fromkeys(viewed))))

    anchors = [leaf for leaf in leaf_names if leaf in COMPLEMENTARY_MAP]
    baskets = []
    for i in range(config.n_baskets):
        leaf = rng.choice(anchors)
        items = [rng.choice(by_leaf[leaf])]
        targets = COMPLEMENTARY_MAP[leaf]
        # earlier targets are bought with the anchor more often: the map is ranked
        weights = [1.0 / (rank + 1) for rank in range(len(targets))]
        for target in rng.choices(targets, weights=weights, k=rng.randint(1, 2)):
            items.append(rng.choice(by_leaf[target]))
        baskets.append(Basket(f"b{i:06d}", tuple(dict.fromkeys(items))))

    return SyntheticCatalog(tuple(products), tuple(sessions), tuple(baskets), dict(COMPLEMENTARY_MAP))


def iter_products(config: SyntheticConfig | None = None) -> Iterator[Product]:
    yield from generate(config).products
