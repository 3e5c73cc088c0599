"""The index port's value helpers, where the serving path computes them its own (faster) way."""

from __future__ import annotations

import random
import string
import uuid

from vitrine.index.port import _POINT_NAMESPACE, ItemPayload, point_id


def test_point_ids_are_the_uuid5_of_the_product_id() -> None:
    # stored points are keyed by these ids: any difference would make every stored product unfindable
    rng = random.Random(5)
    alphabet = string.printable + "żółć€😀"
    ids = [
        "",
        "p0000001",
        *("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(2000)),
    ]
    for product_id in ids:
        assert point_id(product_id) == str(uuid.uuid5(_POINT_NAMESPACE, product_id)), product_id


def test_a_payload_read_back_from_its_dict_is_the_payload_written() -> None:
    payload = ItemPayload(
        title="Trail shoe",
        brand="Acme",
        seller="s7",
        category_path=("Sport", "Running", "Shoes"),
        price=89.5,
        currency="EUR",
        in_stock=False,
        cluster=12,
        dedup_key="trail shoe|acme",
    )
    stored = {**payload.to_dict(), "product_id": "p1", "version": 3, "deleted": 0}
    assert ItemPayload.from_dict(stored) == payload
    assert ItemPayload.from_dict({}) == ItemPayload()  # a payload missing fields reads as the defaults
