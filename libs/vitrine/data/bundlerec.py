"""Loader for one BundleRec domain folder (`../shared/data/products/bundlerec/{electronic,clothing}`).

Files (comma-separated with a header, despite the upstream FORMAT.md saying tabs):
`item_titles.csv` (item ID, titles), `item_categories.csv` (item ID, categories as
`[[Root,Sub,Leaf],[...]]`), `session_item.csv` (session ID, item ID), `bundle_item.csv`
(bundle ID, item ID), `bundle_intent.csv` (bundle ID, intent), `item_idx_mapping.csv`
(item ID, Amazon ASIN; optional). BundleRec has no brand, seller or price.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from vitrine.catalog.schema import Product
from vitrine.data.datasets import Dataset, LoadReport
from vitrine.errors import DataError

REQUIRED_FILES = ("item_titles.csv", "item_categories.csv", "session_item.csv", "bundle_item.csv")
# Levels are separated by "," *without* a following space: names themselves contain ", "
# ("Clothing, Shoes & Jewelry").
_LEVEL_SPLIT = re.compile(r",(?! )")


def parse_category_paths(text: str) -> list[tuple[str, ...]]:
    """`[[A,B, C,D],[A,E]]` → [("A", "B, C", "D"), ("A", "E")]; empty levels are dropped."""
    body = text.strip()
    if not (body.startswith("[[") and body.endswith("]]")):
        raise ValueError(f"not a category list: {text[:60]!r}")
    paths = []
    for chunk in body[2:-2].split("],["):
        levels = tuple(level.strip() for level in _LEVEL_SPLIT.split(chunk) if level.strip())
        if levels:
            paths.append(levels)
    return paths


def _rows(path: Path, columns: int) -> Iterator[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or len(header) < columns:
                raise DataError(f"{path}: expected a header with {columns} columns, got {header!r}")
            yield from reader
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {path}: {e}") from e


def _groups(path: Path, known: set[str], report: LoadReport, what: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for row in _rows(path, 2):
        if len(row) < 2:
            report.skip(f"malformed_{what}_row", ",".join(row))
            continue
        group_id, item_id = row[0].strip(), row[1].strip()
        if item_id not in known:
            report.skip(f"{what}_item_not_in_catalogue", item_id)
            continue
        if item_id not in groups[group_id]:
            groups[group_id].append(item_id)
    return groups


def load_bundlerec(folder: Path) -> Dataset:
    folder = Path(folder)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder} is not a BundleRec domain folder (missing {', '.join(missing)})")
    report = LoadReport(source=f"bundlerec:{folder}")

    categories: dict[str, tuple[str, ...]] = {}
    for row in _rows(folder / "item_categories.csv", 2):
        if len(row) < 2:
            report.skip("malformed_category_row", ",".join(row))
            continue
        try:
            paths = parse_category_paths(row[1])
        except ValueError:
            report.skip("unparseable_category", row[1])
            continue
        if paths:
            # the deepest path is the most specific; ties keep the file's order
            categories[row[0].strip()] = max(paths, key=len)
            if len(paths) > 1:
                report.fix("several_category_paths_kept_deepest")

    asins: dict[str, str] = {}
    mapping = folder / "item_idx_mapping.csv"
    if mapping.is_file():
        asins = {row[0].strip(): row[1].strip() for row in _rows(mapping, 2) if len(row) >= 2}

    products: list[Product] = []
    seen: set[str] = set()
    for row in _rows(folder / "item_titles.csv", 2):
        report.read += 1
        if len(row) < 2:
            report.skip("malformed_title_row", ",".join(row))
            continue
        item_id, title = row[0].strip(), " ".join(row[1].split())
        if not item_id:
            report.skip("missing_item_id", title)
        elif item_id in seen:
            report.skip("duplicate_item_id", item_id)
        elif not title:
            report.skip("empty_title", item_id)
        else:
            seen.add(item_id)
            path = categories.get(item_id, ())
            if not path:
                report.fix("no_category")
            attributes = {"asin": asins[item_id]} if item_id in asins else {}
            products.append(
                Product(product_id=item_id, title=title, category_path=path, attributes=attributes)
            )
    report.kept = len(products)

    known = {p.product_id for p in products}
    sessions = _groups(folder / "session_item.csv", known, report, "session")
    bundles = _groups(folder / "bundle_item.csv", known, report, "bundle")
    intents: dict[str, str] = {}
    if (folder / "bundle_intent.csv").is_file():
        intents = {
            row[0].strip(): row[1].strip() for row in _rows(folder / "bundle_intent.csv", 2) if len(row) >= 2
        }
    bundle_ids = sorted(bundles, key=_numeric_first)
    return Dataset(
        name=f"bundlerec:{folder.name}",
        products=tuple(products),
        sessions=tuple(tuple(sessions[s]) for s in sorted(sessions, key=_numeric_first)),
        bundles=tuple(tuple(bundles[b]) for b in bundle_ids),
        bundle_intents=tuple(intents.get(b, "") for b in bundle_ids),
        reports=(report,),
    )


def _numeric_first(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (1 << 62, key)
