"""The catalogue domain model: plain, immutable Python objects and their protobuf conversions.

Everything inside the library works on these dataclasses; protobuf lives only at the Kafka and gRPC
boundaries (`to_proto` / `from_proto`).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vitrine.v1 import catalog_pb2

SCHEMA_VERSION = 1
"""The ProductEvent schema version this code writes and understands."""


class Availability(enum.IntEnum):
    UNSPECIFIED = catalog_pb2.AVAILABILITY_UNSPECIFIED
    IN_STOCK = catalog_pb2.IN_STOCK
    OUT_OF_STOCK = catalog_pb2.OUT_OF_STOCK
    PREORDER = catalog_pb2.PREORDER
    DISCONTINUED = catalog_pb2.DISCONTINUED

    @property
    def purchasable(self) -> bool:
        """Whether recommendations may show the product by default (unspecified counts as in stock)."""
        return self in (Availability.UNSPECIFIED, Availability.IN_STOCK, Availability.PREORDER)


_AVAILABILITY = {a.value: a for a in Availability}  # a dict lookup instead of an Enum call per event


@dataclass(frozen=True, slots=True)
class Product:
    """One product's content, as the Product Encoder and the filters see it."""

    product_id: str
    title: str
    description: str = ""
    category_path: tuple[str, ...] = ()
    brand: str = ""
    seller: str = ""
    price: float | None = None
    currency: str = ""
    availability: Availability = Availability.IN_STOCK
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def leaf_category(self) -> str:
        return self.category_path[-1] if self.category_path else ""

    def to_proto(self) -> catalog_pb2.Product:
        pb = catalog_pb2.Product(
            title=self.title,
            description=self.description,
            category_path=list(self.category_path),
            brand=self.brand,
            seller=self.seller,
            availability=int(self.availability),
            attributes=dict(self.attributes),
        )
        if self.price is not None:
            pb.price.amount = self.price
            pb.price.currency = self.currency
        return pb

    @classmethod
    def from_proto(cls, product_id: str, pb: catalog_pb2.Product) -> Product:
        has_price = pb.HasField("price")
        return cls(
            product_id=product_id,
            title=pb.title,
            description=pb.description,
            category_path=tuple(pb.category_path),
            brand=pb.brand,
            seller=pb.seller,
            price=pb.price.amount if has_price else None,
            currency=pb.price.currency if has_price else "",
            availability=_AVAILABILITY.get(pb.availability) or Availability(pb.availability),
            # items(): dict() of a protobuf map goes through the Mapping mixin key by key
            attributes=dict(pb.attributes.items()) if pb.attributes else {},
        )


@dataclass(frozen=True, slots=True)
class ProductEvent:
    """One change to one product: an upsert (with the full product) or a delete."""

    product_id: str
    version: int
    event_time: datetime
    product: Product | None  # None means delete

    @property
    def is_delete(self) -> bool:
        return self.product is None

    def to_proto(self) -> catalog_pb2.ProductEvent:
        pb = catalog_pb2.ProductEvent(
            schema_version=SCHEMA_VERSION, product_id=self.product_id, version=self.version
        )
        pb.event_time.FromDatetime(self.event_time)
        if self.product is None:
            pb.delete.SetInParent()
        else:
            pb.upsert.CopyFrom(self.product.to_proto())
        return pb

    def to_bytes(self) -> bytes:
        return self.to_proto().SerializeToString()

    @staticmethod
    def upsert(product: Product, version: int, event_time: datetime | None = None) -> ProductEvent:
        return ProductEvent(product.product_id, version, event_time or datetime.now(UTC), product)

    @staticmethod
    def delete(product_id: str, version: int, event_time: datetime | None = None) -> ProductEvent:
        return ProductEvent(product_id, version, event_time or datetime.now(UTC), None)


_SPACES = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w\s]")
# ASCII bytes as normalise_text leaves them: punctuation, symbols and whitespace become a space (the
# table is derived from the two patterns above, so the fast path cannot drift from them)
_ASCII_FOLD = bytes(
    0x20 if _NON_WORD.fullmatch(chr(c)) or _SPACES.fullmatch(chr(c)) else c for c in range(128)
) + bytes(range(128, 256))


def normalise_text(text: str) -> str:
    """Case-fold, strip accents and punctuation, collapse spaces: the form used to compare titles."""
    if text.isascii():  # most catalogue text: one table lookup per byte gives the same result
        return b" ".join(text.encode().lower().translate(_ASCII_FOLD).split()).decode()
    folded = text.casefold()
    if not folded.isascii():
        decomposed = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", _NON_WORD.sub(" ", folded)).strip()


def normalised_words(text: str) -> list[bytes]:
    """The words of `normalise_text(text)`, UTF-8 encoded (what feature extraction hashes)."""
    if text.isascii():
        return text.encode().lower().translate(_ASCII_FOLD).split()
    # normalise_text leaves single spaces between words, so splitting its bytes on spaces is exact
    return normalise_text(text).encode().split()


DEDUP_DESCRIPTION_CHARS = 200


def dedup_key(product: Product) -> str:
    """Normalised title + brand: two products with the same key are duplicates of each other (served
    lists keep one of them). A title that says no more than the brand identifies nothing (a loader's
    fallback when the feed's title is unusable: every Amazon magazine of a publisher is titled by the
    publisher) and neither does an empty one: the start of the description is then part of the key."""
    title, brand = normalise_text(product.title), normalise_text(product.brand)
    key = f"{title}|{brand}"
    if not title or title == brand:
        description = normalise_text(product.description[:DEDUP_DESCRIPTION_CHARS])
        if description:
            key = f"{key}|{description}"
    return key
