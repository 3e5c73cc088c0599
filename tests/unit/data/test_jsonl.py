"""JSONL catalogue loader (the Product schema) and the KIND:PATH dataset specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitrine.catalog.schema import Availability
from vitrine.data.datasets import load_dataset, merge_datasets, parse_spec, parse_specs
from vitrine.data.jsonl import load_jsonl
from vitrine.errors import ConfigError, DataError


def line(**fields: object) -> str:
    return json.dumps(fields)


def test_loader_reads_products_links_and_groups(tmp_path: Path) -> None:
    path = tmp_path / "catalog.jsonl"
    path.write_text(
        "\n".join(
            [
                line(
                    product_id="p1",
                    title="Trail shoes",
                    category_path=["Sports", "Running Shoes"],
                    price=89.9,
                    currency="EUR",
                    availability="OUT_OF_STOCK",
                    attributes={"colour": "red"},
                    also_view=["p2"],
                    also_buy=["p3", "p404"],
                    sessions=["s1"],
                    bundles=["b1"],
                ),
                line(product_id="p2", title="Road shoes", sessions=["s1"]),
                line(product_id="p3", title="Socks", bundles=["b1"]),
                "",
                line(product_id="p1", title="duplicate"),
                line(title="no id"),
                line(product_id="p5", title="  "),
                line(product_id="p6", title="Bad price", price=-3, currency="EUR"),
                line(product_id="p7", title="No currency", price=3),
                line(product_id="p8", title="Bad path", category_path="Sports/Running"),
                line(product_id="p9", title="Bad availability", availability="SOMETIMES"),
                "[1, 2]",
                "{oops",
            ]
        ),
        encoding="utf-8",
    )
    dataset = load_jsonl(path)
    by_id = dataset.by_id()
    assert sorted(by_id) == ["p1", "p2", "p3"]
    p1 = by_id["p1"]
    assert p1.category_path == ("Sports", "Running Shoes")
    assert p1.availability is Availability.OUT_OF_STOCK and p1.attributes == {"colour": "red"}
    assert dataset.also_view == (("p1", "p2"),)
    assert dataset.also_buy == (("p1", "p3"),)
    assert dataset.sessions == (("p1", "p2"),) and dataset.bundles == (("p1", "p3"),)
    skipped = dataset.reports[0].skipped
    assert skipped["duplicate_product_id"] == 1
    assert skipped["missing_product_id"] == 1
    assert skipped["missing_title"] == 1  # blank title (the event validation rule)
    assert skipped["bad_price"] == 2  # negative; price without currency
    assert skipped["bad_category_path"] == 1
    assert skipped["bad_availability"] == 1
    assert skipped["not_an_object"] == 1 and skipped["invalid_json"] == 1
    assert skipped["also_buy_link_outside_catalogue"] == 1
    assert dataset.reports[0].read == 12


def test_a_file_without_valid_products_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("{}\n", encoding="utf-8")
    with pytest.raises(DataError, match="no valid products"):
        load_jsonl(path)


def test_specs() -> None:
    assert parse_spec("bundlerec:/data/x").kind == "bundlerec"
    assert [s.kind for s in parse_specs("synthetic:100,jsonl:a.jsonl")] == ["synthetic", "jsonl"]
    with pytest.raises(ConfigError, match="bundlerec, amazon, jsonl, synthetic"):
        parse_spec("csv:/x")
    with pytest.raises(ConfigError):
        parse_spec("synthetic")
    with pytest.raises(ConfigError, match="product count"):
        load_dataset("synthetic:many")


def test_synthetic_kind_and_merging() -> None:
    dataset = load_dataset("synthetic:200")
    assert len(dataset.products) == 200 and dataset.sessions and dataset.bundles
    with pytest.raises(ConfigError, match="share product ids"):
        merge_datasets([dataset, dataset])
