"""Time-ordered user histories (BundleRec `user_item.csv`), and their split into request and answer.

`user_item.csv` has `user ID, item ID, timestamp` rows. In the shared BundleRec domains a user's
rows are the items of the bundles of one shopping session, and nearly all of them share one
timestamp (a day), so ties are broken by the file's order, which follows the bundles. A history
keeps each catalogue item once, at its first appearance; items outside the catalogue are counted and
left out.

`split_history` cuts one history into the request (the first part, what Inspire is given) and the
items the request should find (the rest). Users are assigned to val / test by a seeded hash of their
id, so a choice made on val users never sees a test user.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path

from vitrine.data.datasets import LoadReport
from vitrine.errors import DataError

USER_ITEM_FILE = "user_item.csv"
USER_SPLITS = ("val", "test")


@dataclass(frozen=True, slots=True)
class UserHistory:
    user_id: str
    items: tuple[str, ...]  # oldest first, each once


def load_user_histories(folder: Path, catalogue: Container[str]) -> tuple[list[UserHistory], LoadReport]:
    """Every user of `folder/user_item.csv` with their catalogue items, oldest first (ties: file order)."""
    path = Path(folder) / USER_ITEM_FILE
    report = LoadReport(source=f"user_item:{path}")
    if not path.is_file():
        raise DataError(f"{path} is missing: Inspire's offline evaluation needs user histories")
    rows: dict[str, list[tuple[int, int, str]]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or len(header) < 3:
                raise DataError(f"{path}: expected a header 'user ID,item ID,timestamp', got {header!r}")
            for line, row in enumerate(reader):
                report.read += 1
                if len(row) < 3:
                    report.skip("malformed_row", ",".join(row))
                    continue
                user, item, stamp = (c.strip() for c in row[:3])
                try:
                    when = int(stamp)
                except ValueError:
                    report.skip("bad_timestamp", stamp)
                    continue
                if item not in catalogue:
                    report.skip("item_not_in_catalogue", item)
                    continue
                rows.setdefault(user, []).append((when, line, item))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    histories = []
    for user, events in rows.items():
        ordered = [item for _, _, item in sorted(events)]
        histories.append(UserHistory(user, tuple(dict.fromkeys(ordered))))
    report.kept = sum(len(h.items) for h in histories)
    histories.sort(key=lambda h: (len(h.user_id), h.user_id))
    return histories, report


def user_split(user_id: str, seed: int) -> str:
    """ "val" or "test", half each, by a seeded hash of the user id."""
    digest = hashlib.blake2b(f"user:{seed}:{user_id}".encode(), digest_size=8).digest()
    return "val" if int.from_bytes(digest, "big") < 1 << 63 else "test"


def split_history(
    items: Sequence[str], request_fraction: float = 0.5
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(request, answer): the first `request_fraction` of the items (at least one) and the rest (at
    least one); a history of fewer than two items has no answer and returns an empty one."""
    if not 0 < request_fraction < 1:
        raise ValueError(f"request_fraction must be in (0, 1), got {request_fraction}")
    if len(items) < 2:
        return tuple(items), ()
    cut = min(len(items) - 1, max(1, int(len(items) * request_fraction)))
    return tuple(items[:cut]), tuple(items[cut:])
