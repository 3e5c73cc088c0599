"""Before/after tables and the alignment-uniformity plot for docs/NLI.md.

Reads the records that `vitrine eval retrieval --save DIR/TAG__DATASET.json` writes, pairs each base
model tag with its fine-tuned tag, prints Markdown tables (base, fine-tuned, difference) and draws
alignment against uniformity for every (model, dataset), an arrow from base to fine-tuned.

    python -m vitrine.text.nli_report --results artifacts/nli/results \\
        --pair minilm:minilm-nli --pair e5-small:e5-small-nli --plot docs/img/nli_alignment_uniformity.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vitrine.errors import ConfigError

METRICS = ("ndcg@10", "mrr@10", "recall@100", "alignment", "uniformity")
# For alignment and uniformity lower is better; the table marks improvements either way.
LOWER_IS_BETTER = {"alignment", "uniformity"}


def load_results(directory: Path) -> dict[tuple[str, str], dict]:
    """{(tag, dataset): record} from files named TAG__DATASET.json."""
    results = {}
    for path in sorted(directory.glob("*__*.json")):
        tag, _, dataset = path.stem.partition("__")
        results[(tag, dataset)] = json.loads(path.read_text(encoding="utf-8"))
    if not results:
        raise ConfigError(f"no TAG__DATASET.json result files in {directory}")
    return results


def table(results: dict[tuple[str, str], dict], base: str, tuned: str) -> str:
    datasets = sorted({d for t, d in results if t == base} & {d for t, d in results if t == tuned})
    if not datasets:
        raise ConfigError(f"no dataset evaluated with both {base} and {tuned}")
    lines = [
        f"| dataset | queries | {' | '.join(METRICS)} |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for dataset in datasets:
        before, after = results[(base, dataset)], results[(tuned, dataset)]
        cells = []
        for metric in METRICS:
            b, a = before["metrics"][metric], after["metrics"][metric]
            better = (a < b) if metric in LOWER_IS_BETTER else (a > b)
            cells.append(
                f"{b:.3f} → {a:.3f} ({'+' if a >= b else '−'}{abs(a - b):.3f}{' ✓' if better else ''})"
            )
        lines.append(f"| {dataset} | {before['queries']} | {' | '.join(cells)} |")
    return "\n".join(lines)


def plot(results: dict[tuple[str, str], dict], pairs: list[tuple[str, str]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.4), squeeze=False)
    for ax, (base, tuned) in zip(axes[0], pairs, strict=True):
        datasets = sorted({d for t, d in results if t == base} & {d for t, d in results if t == tuned})
        colours = plt.get_cmap("tab10")
        for i, dataset in enumerate(datasets):
            b, a = results[(base, dataset)]["metrics"], results[(tuned, dataset)]["metrics"]
            colour = colours(i % 10)
            ax.scatter([b["uniformity"]], [b["alignment"]], marker="o", color=colour, label=dataset)
            ax.scatter([a["uniformity"]], [a["alignment"]], marker="*", s=120, color=colour)
            ax.annotate(
                "",
                xy=(a["uniformity"], a["alignment"]),
                xytext=(b["uniformity"], b["alignment"]),
                arrowprops={"arrowstyle": "->", "color": colour},
            )
        ax.set_title(f"{base} (o) → {tuned} (*)")
        ax.set_xlabel("uniformity (lower: more spread)")
        ax.set_ylabel("alignment (lower: positives closer)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vitrine.text.nli_report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--results", type=Path, required=True, help="directory of TAG__DATASET.json files")
    parser.add_argument("--pair", action="append", required=True, help="BASE_TAG:TUNED_TAG (repeatable)")
    parser.add_argument("--plot", type=Path, default=None, help="write the alignment-uniformity PNG here")
    args = parser.parse_args(argv)
    pairs = []
    for spec in args.pair:
        base, sep, tuned = spec.partition(":")
        if not sep or not base or not tuned:
            raise ConfigError(f"--pair expects BASE_TAG:TUNED_TAG, got {spec!r}")
        pairs.append((base, tuned))
    results = load_results(args.results)
    for base, tuned in pairs:
        print(f"\n### {base} → {tuned}\n")
        print(table(results, base, tuned))
    if args.plot is not None:
        plot(results, pairs, args.plot)
        print(f"\nwrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
