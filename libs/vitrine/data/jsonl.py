"""Loader for a catalogue as JSON Lines in the `Product` schema (plain or gzip).

One object per line:

    {"product_id": "p1", "title": "Trail running shoes", "description": "...",
     "category_path": ["Sports", "Running", "Running Shoes"], "brand": "Stridex", "seller": "s-01",
     "price": 89.9, "currency": "EUR", "availability": "IN_STOCK", "attributes": {"colour": "red"},
     "also_view": ["p7"], "also_buy": ["p9"], "sessions": ["s1"], "bundles": ["b4"]}

`product_id` and `title` are required; every other field is optional. `also_view` / `also_buy` are
directed links to other product ids; `sessions` / `bundles` name the co-view and co-purchase groups
the product belongs to (docs/CATALOGUE.md: every field and what it does to the model). Lines are
validated with the same rules as catalogue events
(`vitrine.catalog.validation`), and each rejected line is counted by reason.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vitrine.catalog.schema import Availability, Product
from vitrine.catalog.validation import ValidationLimits, validate_product
from vitrine.data.datasets import Dataset, LoadReport, catalogue_links
from vitrine.errors import DataError, InvalidEventError

STRING_FIELDS = ("description", "brand", "seller", "currency")


class _Invalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _str_list(record: dict[str, Any], key: str) -> list[str]:
    value = record.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(f"bad_{key}")
    return value


def product_from_record(record: dict[str, Any]) -> Product:
    """A `Product` from one JSON object; raises `_Invalid(reason)` on a field of the wrong type."""
    product_id, title = record.get("product_id"), record.get("title")
    if not isinstance(product_id, str | int) or str(product_id).strip() == "":
        raise _Invalid("missing_product_id")
    if not isinstance(title, str):
        raise _Invalid("missing_title")
    for key in STRING_FIELDS:
        if not isinstance(record.get(key, ""), str):
            raise _Invalid(f"bad_{key}")
    price = record.get("price")
    if price is not None and (
        isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price)
    ):
        raise _Invalid("bad_price")
    availability = record.get("availability", "IN_STOCK")
    try:
        status = Availability[availability] if isinstance(availability, str) else Availability(availability)
    except (KeyError, ValueError) as e:
        raise _Invalid("bad_availability") from e
    attributes = record.get("attributes", {})
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        raise _Invalid("bad_attributes")
    return Product(
        product_id=str(product_id).strip(),
        title=title.strip(),
        description=record.get("description", ""),
        category_path=tuple(_str_list(record, "category_path")),
        brand=record.get("brand", ""),
        seller=record.get("seller", ""),
        price=None if price is None else float(price),
        currency=record.get("currency", ""),
        availability=status,
        attributes={str(k): v for k, v in attributes.items()},
    )


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            yield from f
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from e


def load_jsonl(path: Path, limits: ValidationLimits | None = None) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no JSONL catalogue at {path}")
    limits = limits or ValidationLimits()
    report = LoadReport(source=f"jsonl:{path}")
    products: dict[str, Product] = {}
    links: dict[str, dict[str, list[str]]] = {"also_view": {}, "also_buy": {}}
    groups: dict[str, dict[str, list[str]]] = {"sessions": defaultdict(list), "bundles": defaultdict(list)}
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        report.read += 1
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise _Invalid("not_an_object")
            product = product_from_record(record)
            validate_product(product, limits)
            related = {key: _str_list(record, key) for key in (*links, *groups)}
        except json.JSONDecodeError:
            report.skip("invalid_json", f"line {number}")
            continue
        except _Invalid as e:
            report.skip(e.reason, f"line {number}")
            continue
        except InvalidEventError as e:
            report.skip(e.reason, f"line {number}: {e.detail}")
            continue
        if product.product_id in products:
            report.skip("duplicate_product_id", product.product_id)
            continue
        products[product.product_id] = product
        for key in links:
            links[key][product.product_id] = related[key]
        for key in groups:
            for group in related[key]:
                groups[key][group].append(product.product_id)
    report.kept = len(products)
    if not products:
        raise DataError(f"{path}: no valid products ({report.summary()})")

    return Dataset(
        name=f"jsonl:{path.name}",
        products=tuple(products.values()),
        sessions=tuple(tuple(ids) for _, ids in sorted(groups["sessions"].items())),
        bundles=tuple(tuple(ids) for _, ids in sorted(groups["bundles"].items())),
        also_view=catalogue_links(links["also_view"], products, "also_view", report),
        also_buy=catalogue_links(links["also_buy"], products, "also_buy", report),
        reports=(report,),
    )
