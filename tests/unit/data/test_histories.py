"""User histories from BundleRec's user_item.csv, and their request / answer split."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitrine.data.histories import load_user_histories, split_history, user_split
from vitrine.errors import DataError


def test_histories_are_time_ordered_ties_in_file_order_each_item_once(tmp_path: Path) -> None:
    (tmp_path / "user_item.csv").write_text(
        "user ID,item ID,timestamp\n"
        "u1,b,200\n"
        "u1,a,100\n"
        "u1,c,200\n"
        "u1,b,300\n"  # seen again later: kept at its first appearance
        "u2,x,5\n"  # not in the catalogue
        "u2,a,7\n"
        "u3,a,notatime\n"
        "broken\n",
        encoding="utf-8",
    )
    histories, report = load_user_histories(tmp_path, {"a", "b", "c"})
    assert {h.user_id: h.items for h in histories} == {"u1": ("a", "b", "c"), "u2": ("a",)}
    assert report.read == 8
    assert report.skipped == {"item_not_in_catalogue": 1, "bad_timestamp": 1, "malformed_row": 1}


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"user_item\.csv is missing"):
        load_user_histories(tmp_path, set())


def test_split_history_keeps_at_least_one_item_on_each_side() -> None:
    assert split_history(("a", "b", "c", "d")) == (("a", "b"), ("c", "d"))
    assert split_history(("a", "b", "c")) == (("a",), ("b", "c"))
    assert split_history(("a", "b"), request_fraction=0.9) == (("a",), ("b",))
    assert split_history(("a",)) == (("a",), ())
    with pytest.raises(ValueError, match="request_fraction"):
        split_history(("a", "b"), request_fraction=1.0)


def test_users_split_about_half_and_half_by_seed() -> None:
    users = [f"user-{i}" for i in range(1000)]
    val = sum(user_split(u, 13) == "val" for u in users)
    assert 430 < val < 570
    assert [user_split(u, 13) for u in users] != [user_split(u, 14) for u in users]
