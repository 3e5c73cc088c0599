"""The product a request is about: one in the index (by id) or one given inline (encoded on the fly)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from vitrine.catalog.schema import Product, dedup_key
from vitrine.errors import NotFoundError
from vitrine.index.port import IndexedItem, ItemPayload, VectorIndex
from vitrine.model.serving import ServingModel
from vitrine.serving.errors import NotConfiguredError


@dataclass(frozen=True, slots=True)
class AnchorRef:
    """Either `product_id` (in the index) or `product` (inline)."""

    product_id: str = ""
    product: Product | None = None

    @property
    def label(self) -> str:
        return self.product_id or "the given product"


@dataclass(frozen=True, slots=True)
class Anchor:
    product_id: str  # "" for an inline product
    vector: np.ndarray  # in the item space of the model whose index it came from
    payload: ItemPayload


def require_model(model: ServingModel | None, model_name: str, what: str) -> ServingModel:
    if model is None:
        raise NotConfiguredError(
            f"model {model_name!r} is served from its index only: {what} needs its towers"
        )
    return model


def lookup(index: VectorIndex, product_id: str) -> IndexedItem:
    item = index.get([product_id]).get(product_id)
    if item is None:
        raise NotFoundError(f"product {product_id!r} is not in the index (unknown or deleted)")
    return item


def indexed_items(model: ServingModel, products: Sequence[Product], version: int = 1) -> list[IndexedItem]:
    """What the encoder writes for these products (item vectors, each one's k-means cluster, the
    filter payload), for code that fills an index directly: fixtures, benchmarks."""
    vectors = model.encode_items(list(products))
    clusters = model.assign_clusters(vectors)
    return [
        IndexedItem(p.product_id, version, v, replace(payload_of(p), cluster=int(c)))
        for p, v, c in zip(products, vectors, clusters, strict=True)
    ]


def payload_of(product: Product) -> ItemPayload:
    """What the index would hold for an inline product (the filters and dedup key need it)."""
    return ItemPayload(
        title=product.title,
        brand=product.brand,
        seller=product.seller,
        category_path=product.category_path,
        price=product.price,
        currency=product.currency,
        in_stock=product.availability.purchasable,
        dedup_key=dedup_key(product),
    )


def product_of(product_id: str, payload: ItemPayload) -> Product:
    """An indexed product's content as the towers read it. The index keeps what filters and reasons
    need (title, brand, category, seller, price), not the description or free attributes."""
    return Product(
        product_id=product_id,
        title=payload.title,
        category_path=payload.category_path,
        brand=payload.brand,
        seller=payload.seller,
        price=payload.price,
        currency=payload.currency,
    )


def item_space_anchor(
    index: VectorIndex, model: ServingModel | None, model_name: str, ref: AnchorRef
) -> Anchor:
    """The anchor's item vector: stored in the index, or computed by the item tower (inline)."""
    if ref.product is None:
        item = lookup(index, ref.product_id)
        return Anchor(ref.product_id, item.vector, item.payload)
    tower = require_model(model, model_name, "an inline product")
    vector = tower.encode_items([ref.product])[0]
    return Anchor("", vector, payload_of(ref.product))
