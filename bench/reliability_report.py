"""Regenerate docs/RELIABILITY.md's fault table from what the fault tests wrote (JSON, one file per
scenario, `tests/support/reliability_report.py`), never from printed lines.

    VITRINE_RELIABILITY_REPORT_DIR=bench/results/reliability make reliability   # writes the JSON
    .venv/bin/vitrine bench reliability_report                                  # renders the table

Reads bench/results/reliability/*.json (or --results DIR) and replaces what is between the markers
`<!-- fault-table:begin -->` and `<!-- fault-table:end -->` in docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- fault-table:begin -->", "<!-- fault-table:end -->"
ORDER = (
    "encoder_kill_9_while_producing",
    "broker_sigkill",
    "recommender_kill_9",
    "log_cleaner",
    "partitions_added",
    "poison_records",
)


def cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def recovery(row: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("recovery_s", "caught up"),
        ("picked_up_s", "new partitions served"),
        ("cleaner_waited_s", "cleaner ran within"),
    ):
        if key in row:
            parts.append(f"{label} {row[key]:.1f} s")
    if "retries" in row:
        parts.append(f"{row['retries']:.0f} retries, {row.get('transactions_aborted', 0):.0f} aborts")
    if row.get("shard_reused"):
        parts.append("shard reused")
    if "vector_records_before" in row:
        parts.append(f"vector records {row['vector_records_before']:,} → {row['vector_records_after']:,}")
    return "; ".join(parts) or "—"


def control(row: dict[str, Any]) -> str:
    text = str(row.get("control") or "—")
    if "duplicates_read_uncommitted" in row:
        text += (
            f"; the same topic read without read_committed holds {row['duplicates_read_uncommitted']:,} "
            "duplicates (records of the aborted transactions the kills left)"
        )
    return text


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | test (CI size) and command | products / events | faults | lost | stale | phantom "
        "| duplicates | recovery | control (the oracle failing on the defect) | run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    cell(r["scenario"]),
                    f"`{r['test']}`<br>`{r['command']}`",
                    f"{cell(r.get('products'))} / {cell(r.get('events'))}",
                    cell(r.get("faults")),
                    cell(r.get("lost")),
                    cell(r.get("stale")),
                    cell(r.get("phantom")),
                    cell(r.get("duplicates")),
                    recovery(r),
                    cell(control(r)),
                    f"{r['date']} @ {r['commit']}, load {'/'.join(str(x) for x in r['load_average'])} on "
                    f"{r['cpus']} CPUs",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "reliability")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "RELIABILITY.md")
    args = parser.parse_args()
    found = {p.stem: json.loads(p.read_text()) for p in sorted(args.results.glob("*.json"))}
    rows = [found[k] for k in ORDER if k in found] + [v for k, v in found.items() if k not in ORDER]
    doc = args.doc.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{args.doc} has no {BEGIN} ... {END} markers")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    args.doc.write_text(f"{head}{BEGIN}\n{render(rows)}\n{END}{tail}")
    print(f"rendered {len(rows)} scenarios into {args.doc}")


if __name__ == "__main__":
    main()
