from __future__ import annotations

from datetime import UTC, datetime

from vitrine.catalog.schema import Availability, Product, ProductEvent, dedup_key, normalise_text
from vitrine.v1 import catalog_pb2


def _product(**kw: object) -> Product:
    base = dict(
        product_id="sku-1",
        title="Pixelio Ultra Laptop",
        description="A laptop",
        category_path=("Electronics", "Computers", "Laptops"),
        brand="Pixelio",
        seller="seller-1",
        price=999.5,
        currency="EUR",
        availability=Availability.IN_STOCK,
        attributes={"colour": "black"},
    )
    base.update(kw)
    return Product(**base)  # type: ignore[arg-type]


def test_product_round_trips_through_protobuf() -> None:
    product = _product()
    assert Product.from_proto("sku-1", product.to_proto()) == product


def test_product_without_price_round_trips_as_none() -> None:
    product = _product(price=None, currency="")
    decoded = Product.from_proto("sku-1", product.to_proto())
    assert decoded.price is None and decoded.currency == ""


def test_upsert_and_delete_events_encode_their_change() -> None:
    t = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    upsert = catalog_pb2.ProductEvent.FromString(ProductEvent.upsert(_product(), 7, t).to_bytes())
    delete = catalog_pb2.ProductEvent.FromString(ProductEvent.delete("sku-1", 8, t).to_bytes())
    assert upsert.WhichOneof("change") == "upsert" and upsert.version == 7
    assert upsert.event_time.ToDatetime(tzinfo=UTC) == t
    assert delete.WhichOneof("change") == "delete" and delete.version == 8 and delete.product_id == "sku-1"


def test_unspecified_availability_counts_as_purchasable_but_out_of_stock_does_not() -> None:
    assert Availability.UNSPECIFIED.purchasable and Availability.PREORDER.purchasable
    assert not Availability.OUT_OF_STOCK.purchasable and not Availability.DISCONTINUED.purchasable


def test_dedup_key_ignores_case_accents_and_punctuation() -> None:
    a = _product(title="Café Crème — Espresso!", brand="Brewmaster")
    b = _product(product_id="sku-2", title="cafe creme espresso", brand="BREWMASTER")
    assert dedup_key(a) == dedup_key(b)
    assert normalise_text("  Ünïcode   TEXT ") == "unicode text"


def test_a_title_that_is_only_the_brand_does_not_make_duplicates() -> None:
    """Catches a near-duplicate key that collapses every product titled by its brand (the Amazon
    loader's fallback: all magazines of one publisher) into one served result."""
    a = _product(title="Acme Press", brand="ACME press", description="Garden monthly: roses, soil")
    b = _product(product_id="sku-2", title="Acme Press", brand="Acme Press", description="Sailing news")
    assert dedup_key(a) != dedup_key(b)
    assert dedup_key(a) == dedup_key(
        _product(
            product_id="sku-3",
            title="acme press",
            brand="Acme Press",
            description="Garden monthly — roses, soil!",
        )
    )
    untitled = [
        _product(product_id=f"u{i}", title="", description=d) for i, d in enumerate(["red mug", "blue mug"])
    ]
    assert dedup_key(untitled[0]) != dedup_key(untitled[1])
    # a real title still decides: variants with other descriptions are duplicates
    assert dedup_key(_product(description="16 GB")) == dedup_key(
        _product(product_id="sku-4", description="32 GB")
    )
