"""The product a request is about: one in the index (by id) or one given inline (encoded on the fly)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from vitrine.catalog.schema import Product
from vitrine.errors import NotFoundError
from vitrine.index.port import IndexedItem, ItemPayload, SearchFilter, VectorIndex, payload_for
from vitrine.model.inference import InferenceModel
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


def require_model(model: InferenceModel | None, model_name: str, what: str) -> InferenceModel:
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


def excluding_anchor(f: SearchFilter, product_id: str, dedup: str) -> SearchFilter:
    """`f`, also excluding the anchor (when it is in the index) and its duplicates."""
    return replace(
        f,
        exclude_ids=(*f.exclude_ids, product_id) if product_id else f.exclude_ids,
        exclude_dedup_keys=(*f.exclude_dedup_keys, dedup) if dedup else f.exclude_dedup_keys,
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
    index: VectorIndex, model: InferenceModel | None, model_name: str, ref: AnchorRef
) -> Anchor:
    """The anchor's item vector: stored in the index, or computed by the item tower (inline)."""
    if ref.product is None:
        item = lookup(index, ref.product_id)
        return Anchor(ref.product_id, item.vector, item.payload)
    tower = require_model(model, model_name, "an inline product")
    vector = tower.encode_items([ref.product])[0]
    return Anchor("", vector, payload_for(ref.product))
