"""BundleRec loader: category-list parsing, validation with a skip report, and the real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitrine.data.bundlerec import load_bundlerec, parse_category_paths
from vitrine.errors import DataError


def test_parse_category_paths_keeps_commas_inside_names() -> None:
    text = "[[Clothing, Shoes & Jewelry,Women,Lingerie, Sleep & Lounge],[Clothing, Shoes & Jewelry,Men]]"
    assert parse_category_paths(text) == [
        ("Clothing, Shoes & Jewelry", "Women", "Lingerie, Sleep & Lounge"),
        ("Clothing, Shoes & Jewelry", "Men"),
    ]


def test_parse_category_paths_rejects_other_text() -> None:
    with pytest.raises(ValueError):
        parse_category_paths("Electronics > Cameras")


def write_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "item_titles.csv").write_text(
        'item ID,titles\n1,"Nikon D7000, 16 MP"\n2,EN-EL15 Battery\n2,duplicate row\n3,\n4,SD card 32GB\n',
        encoding="utf-8",
    )
    (folder / "item_categories.csv").write_text(
        "item ID,categories\n"
        '1,"[[Electronics,Camera & Photo,Digital Cameras]]"\n'
        '2,"[[Electronics,Batteries],[Electronics,Camera & Photo,Accessories,Batteries]]"\n'
        "4,not a list\n",
        encoding="utf-8",
    )
    (folder / "session_item.csv").write_text("session ID,item ID\n7,1\n7,2\n7,99\n8,4\n", encoding="utf-8")
    (folder / "bundle_item.csv").write_text("bundle ID,item ID\n0,1\n0,2\n1,2\n1,4\n", encoding="utf-8")
    (folder / "bundle_intent.csv").write_text("bundle ID,intent\n0,Photography kit\n", encoding="utf-8")
    (folder / "item_idx_mapping.csv").write_text("item ID,source ID\n1,B000ASIN1\n", encoding="utf-8")
    return folder


def test_loader_validates_and_reports(tmp_path: Path) -> None:
    dataset = load_bundlerec(write_folder(tmp_path / "electronic"))
    ids = [p.product_id for p in dataset.products]
    assert ids == ["1", "2", "4"]
    report = dataset.reports[0]
    assert report.read == 5 and report.kept == 3
    assert report.skipped["duplicate_item_id"] == 1
    assert report.skipped["empty_title"] == 1
    assert report.skipped["unparseable_category"] == 1
    assert report.skipped["session_item_not_in_catalogue"] == 1
    by_id = dataset.by_id()
    assert by_id["1"].title == "Nikon D7000, 16 MP"
    assert by_id["1"].attributes == {"asin": "B000ASIN1"}
    # the deepest of several paths is kept
    assert by_id["2"].category_path == ("Electronics", "Camera & Photo", "Accessories", "Batteries")
    assert by_id["4"].category_path == ()
    assert dataset.sessions == (("1", "2"), ("4",))
    assert dataset.bundles == (("1", "2"), ("2", "4"))
    assert dataset.bundle_intents == ("Photography kit", "")
    assert "duplicate_item_id=1" in report.summary()


def test_missing_files_raise_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"item_titles\.csv"):
        load_bundlerec(tmp_path)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("domain", "items", "bundles"), [("electronic", 3499, 1750), ("clothing", 4487, 1910)]
)
def test_real_bundlerec_domains(shared_data: Path, domain: str, items: int, bundles: int) -> None:
    dataset = load_bundlerec(shared_data / "products" / "bundlerec" / domain)
    assert len(dataset.products) == items  # the published item counts (FORMAT.md, table 1)
    assert len(dataset.bundles) == bundles
    assert all(p.title and p.category_path for p in dataset.products)
    assert sum(1 for i in dataset.bundle_intents if i) > 0.9 * bundles
