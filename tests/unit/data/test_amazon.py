"""Amazon 2018 metadata loader: noisy-field repair, skip report, also_view / also_buy links."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from vitrine.data.amazon import clean_text, load_amazon, looks_like_markup, parse_price


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$12.99", 12.99),
        ("$1,250.00", 1250.0),
        ("$10.00 - $20.00", 10.0),
        (7, 7.0),
        ("", None),
        (".a-box{x}", None),
    ],
)
def test_parse_price(raw: object, expected: float | None) -> None:
    assert parse_price(raw) == expected


def test_markup_and_cleaning() -> None:
    assert looks_like_markup('<span class="a-size-medium a-color-secondary"')
    assert looks_like_markup(".a-box-inner{background-color:#fff}")
    assert not looks_like_markup("Wired Magazine")
    assert clean_text(["Maggiano&#39;s", "<b>Gift</b>  Card"]) == "Maggiano's Gift Card"


def record(asin: str, **fields: object) -> str:
    base: dict[str, object] = {
        "asin": asin,
        "title": f"Title {asin}",
        "description": [],
        "brand": "",
        "price": "",
        "category": ["Magazines", "Science"],
        "also_view": [],
        "also_buy": [],
    }
    base.update(fields)
    return json.dumps(base)


def write_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def test_loader_repairs_skips_and_links(tmp_path: Path) -> None:
    path = write_gz(
        tmp_path / "meta.json.gz",
        [
            record("A1", price="$5.00", also_view=["A2", "ZZ"], also_buy=["A3"]),
            record("A2", title='<span class="x"', brand="Wired", category=["Magazines", "Technology"]),
            record("A3", title="", description=["Best science. Monthly."], category=[]),
            record("A1", also_view=["A3"]),  # duplicate: links merged, record skipped
            "{not json",
            json.dumps({"title": "no asin"}),
            record("A4", title="<div", brand="", description=[]),
            record("A5", category=["Gift Cards", "Gift Cards", "No fees.", "Any occasion."], price=".css{}"),
        ],
    )
    dataset = load_amazon(path)
    by_id = dataset.by_id()
    assert sorted(by_id) == ["A1", "A2", "A3", "A5"]
    report = dataset.reports[0]
    assert report.skipped["invalid_json"] == 1
    assert report.skipped["missing_asin"] == 1
    assert report.skipped["duplicate_asin"] == 1
    assert report.skipped["no_usable_title"] == 1
    assert report.fixed["title_from_brand"] == 1
    assert report.fixed["title_from_description"] == 1
    assert by_id["A1"].price == 5.0 and by_id["A1"].currency == "USD"
    assert by_id["A2"].title == "Wired"
    assert by_id["A3"].title == "Best science."
    # bullets leaked into the path are cut, the repeated root is collapsed, junk prices dropped
    assert by_id["A5"].category_path == ("Gift Cards",)
    assert by_id["A5"].price is None and report.fixed["unparseable_price_dropped"] == 1
    assert set(dataset.also_view) == {("A1", "A2"), ("A1", "A3")}
    assert dataset.also_buy == (("A1", "A3"),)
    assert report.skipped["also_view_link_outside_catalogue"] == 1


@pytest.mark.shared_data
def test_real_amazon_files(shared_data: Path) -> None:
    folder = shared_data / "products" / "amazon2018"
    gifts = load_amazon(folder / "meta_Gift_Cards.json.gz")
    assert len(gifts.products) == 1547
    magazines = load_amazon(folder / "meta_Magazine_Subscriptions.json.gz")
    # 3,385 lines, 2,320 distinct ASINs; almost every magazine title is an HTML fragment
    report = magazines.reports[0]
    assert report.read == 3385
    assert report.kept + report.skipped["duplicate_asin"] + report.skipped["no_usable_title"] == report.read
    assert 2300 <= report.kept <= 2320
    assert report.fixed["title_from_brand"] > 2000
    assert not any(p.title.startswith("<") for p in magazines.products)
    assert len(magazines.also_view) > 1000 and len(magazines.also_buy) > 1000
