"""Loader for Amazon 2018 product metadata (McAuley lab): one JSON object per line, gzip or plain.

Fields used: asin, title, description (list), brand, price ("$12.99", ranges, or scraped HTML/CSS
junk), category (root → leaf list), main_cat, also_view, also_buy. The published files are noisy;
the loader repairs what it can and counts every repair and skip in its `LoadReport`:

- titles that are HTML fragments (most magazine subscriptions: `<span class=...`) are replaced by
  the brand (the magazine's name) or the description's first sentence;
- HTML entities (`&amp;`) are unescaped and tags stripped;
- duplicate ASINs keep the first record (their links are merged);
- prices that do not parse as a dollar amount are dropped (the product is kept, without price).
"""

from __future__ import annotations

import gzip
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vitrine.catalog.schema import Product
from vitrine.data.datasets import Dataset, LoadReport, catalogue_links
from vitrine.errors import DataError

_TAG = re.compile(r"<[^>]*>?")
_SPACES = re.compile(r"\s+")
_PRICE = re.compile(r"^\$\s?([0-9][0-9,]*(?:\.[0-9]+)?)(?:\s*-\s*\$\s?[0-9][0-9,]*(?:\.[0-9]+)?)?$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
MAX_FALLBACK_TITLE = 120
MAX_CATEGORY_CHARS = 60


def clean_text(value: Any) -> str:
    """Unescape entities, strip tags, collapse whitespace; lists are joined with spaces."""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value if v)
    if not isinstance(value, str):
        return ""
    return _SPACES.sub(" ", _TAG.sub(" ", html.unescape(value))).strip()


def looks_like_markup(title: str) -> bool:
    """Scraping debris rather than a title: HTML tags, CSS rules or script fragments."""
    stripped = title.strip()
    return stripped.startswith("<") or "{" in stripped or stripped.startswith(("var ", "function"))


def parse_price(value: Any) -> float | None:
    """`$12.99` → 12.99; a range `$10.00 - $20.00` → its lower bound; anything else → None."""
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _PRICE.match(value.strip())
    return float(match.group(1).replace(",", "")) if match else None


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            yield from f
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from e


def _title(record: dict[str, Any], description: str, report: LoadReport) -> str:
    raw = record.get("title")
    title = "" if not isinstance(raw, str) or looks_like_markup(raw) else clean_text(raw)
    if title:
        return title
    brand = clean_text(record.get("brand"))
    if brand:
        report.fix("title_from_brand")
        return brand
    if description:
        report.fix("title_from_description")
        return _SENTENCE_END.split(description, maxsplit=1)[0][:MAX_FALLBACK_TITLE]
    return ""


def looks_like_category(level: str) -> bool:
    """Category names are short labels; feature bullets leaked into some paths are sentences."""
    return 0 < len(level) <= MAX_CATEGORY_CHARS and not level.endswith((".", "!")) and '"' not in level


def _category(record: dict[str, Any], report: LoadReport) -> tuple[str, ...]:
    raw = record.get("category")
    path: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, str) or looks_like_markup(item) or not looks_like_category(clean_text(item)):
            # the rest of the path is scraping debris (feature bullets, closing tags)
            report.fix("category_path_cut_at_debris")
            break
        level = clean_text(item)
        # some files repeat the root as the leaf ("Gift Cards" > "Gift Cards"): keep one
        if not path or path[-1] != level:
            path.append(level)
    if not path:
        main = clean_text(record.get("main_cat"))
        if main and not looks_like_markup(main):
            report.fix("category_from_main_cat")
            path = [main]
    return tuple(path)


def _links(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def load_amazon(path: Path) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no Amazon metadata file at {path}")
    report = LoadReport(source=f"amazon:{path}")
    products: dict[str, Product] = {}
    views: dict[str, list[str]] = {}
    buys: dict[str, list[str]] = {}
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        report.read += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            report.skip("invalid_json", f"line {number}")
            continue
        if not isinstance(record, dict):
            report.skip("not_an_object", f"line {number}")
            continue
        asin = record.get("asin")
        if not isinstance(asin, str) or not asin.strip():
            report.skip("missing_asin", f"line {number}")
            continue
        asin = asin.strip()
        if asin in products:
            report.skip("duplicate_asin", asin)
            views[asin] += _links(record.get("also_view"))
            buys[asin] += _links(record.get("also_buy"))
            continue
        description = clean_text(record.get("description"))
        title = _title(record, description, report)
        if not title:
            report.skip("no_usable_title", asin)
            continue
        raw_price = record.get("price")
        price = parse_price(raw_price)
        if price is None and raw_price not in (None, ""):
            report.fix("unparseable_price_dropped")
        products[asin] = Product(
            product_id=asin,
            title=title,
            description=description,
            category_path=_category(record, report),
            brand=clean_text(record.get("brand")),
            price=price,
            currency="USD" if price is not None else "",
        )
        views[asin] = _links(record.get("also_view"))
        buys[asin] = _links(record.get("also_buy"))
    report.kept = len(products)
    if not products:
        raise DataError(f"{path}: no usable products ({report.summary()})")

    return Dataset(
        name=f"amazon:{path.name}",
        products=tuple(products.values()),
        also_view=catalogue_links(views, products, "also_view", report),
        also_buy=catalogue_links(buys, products, "also_buy", report),
        reports=(report,),
    )
