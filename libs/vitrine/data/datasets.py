"""A loaded dataset (products + behaviour signals) and the `KIND:PATH` dataset specs the CLI accepts.

Every loader returns the same `Dataset`: `Product`s plus the raw behaviour that training pairs are
built from (sessions = co-view groups, bundles = co-purchase groups, and directed also_view /
also_buy links), and a `LoadReport` counting what was skipped and why.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vitrine.catalog.schema import Product
from vitrine.errors import ConfigError

log = logging.getLogger(__name__)

DATASET_KINDS = ("bundlerec", "amazon", "jsonl", "synthetic", "interactions")


@dataclass(slots=True)
class LoadReport:
    """What a loader read and skipped (reason → count), with a few examples per reason."""

    source: str
    read: int = 0
    kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    fixed: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, example: str = "") -> None:
        self.skipped[reason] += 1
        if example and len(self.examples.setdefault(reason, [])) < 3:
            self.examples[reason].append(example[:120])

    def fix(self, what: str) -> None:
        """Count a repair that kept the record (e.g. an HTML fragment title replaced)."""
        self.fixed[what] += 1

    def summary(self) -> str:
        parts = [f"{self.source}: read {self.read}, kept {self.kept}"]
        if self.skipped:
            parts.append("skipped " + ", ".join(f"{r}={n}" for r, n in sorted(self.skipped.items())))
        if self.fixed:
            parts.append("fixed " + ", ".join(f"{r}={n}" for r, n in sorted(self.fixed.items())))
        return "; ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "read": self.read,
            "kept": self.kept,
            "skipped": dict(sorted(self.skipped.items())),
            "fixed": dict(sorted(self.fixed.items())),
        }


def catalogue_links(
    source: Mapping[str, Sequence[str]], products: Container[str], what: str, report: LoadReport
) -> tuple[tuple[str, str], ...]:
    """Directed (a, b) links between catalogue products, each once; a link to a product outside the
    catalogue (or to itself) is counted as `<what>_link_outside_catalogue`."""
    out: list[tuple[str, str]] = []
    for a, targets in source.items():
        for b in dict.fromkeys(targets):
            if b in products and b != a:
                out.append((a, b))
            else:
                report.skip(f"{what}_link_outside_catalogue")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Dataset:
    """Products and behaviour of one catalogue. Ids in the behaviour fields all exist in `products`."""

    name: str
    products: tuple[Product, ...]
    sessions: tuple[tuple[str, ...], ...] = ()  # co-view groups (browsing / same-session)
    bundles: tuple[tuple[str, ...], ...] = ()  # co-purchase groups (baskets, annotated bundles)
    bundle_intents: tuple[str, ...] = ()  # free-text intent per bundle (BundleRec), "" when unknown
    also_view: tuple[tuple[str, str], ...] = ()  # directed co-view links
    also_buy: tuple[tuple[str, str], ...] = ()  # directed co-purchase links
    reports: tuple[LoadReport, ...] = ()

    def by_id(self) -> dict[str, Product]:
        return {p.product_id: p for p in self.products}


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    kind: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.path}"


def parse_spec(text: str) -> DatasetSpec:
    """Parse `KIND:PATH` (or `synthetic:N`)."""
    kind, sep, path = text.strip().partition(":")
    if not sep or not path:
        raise ConfigError(f"dataset must look like KIND:PATH with KIND one of {DATASET_KINDS}, got {text!r}")
    if kind not in DATASET_KINDS:
        raise ConfigError(f"unknown dataset kind {kind!r}; allowed: {', '.join(DATASET_KINDS)}")
    return DatasetSpec(kind, path)


def parse_specs(text: str) -> list[DatasetSpec]:
    """Parse a comma-separated list of `KIND:PATH` specs."""
    specs = [parse_spec(part) for part in text.split(",") if part.strip()]
    if not specs:
        raise ConfigError("no dataset given")
    return specs


def _load_synthetic(path: str) -> Dataset:
    from vitrine.data.synthetic import SyntheticConfig, generate

    try:
        n = int(path)
        catalog = generate(SyntheticConfig(n_products=n))
    except ValueError as e:
        raise ConfigError(f"synthetic dataset needs a product count, e.g. synthetic:2000 ({e})") from e
    report = LoadReport(source=f"synthetic:{n}", read=n, kept=n)
    return Dataset(
        name=f"synthetic:{n}",
        products=catalog.products,
        sessions=tuple(s.product_ids for s in catalog.sessions),
        bundles=tuple(b.product_ids for b in catalog.baskets),
        reports=(report,),
    )


def load_dataset(spec: DatasetSpec | str) -> Dataset:
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    # loaders are imported lazily so that loading one kind never pays for the others
    if spec.kind == "bundlerec":
        from vitrine.data.bundlerec import load_bundlerec

        dataset = load_bundlerec(Path(spec.path))
    elif spec.kind == "amazon":
        from vitrine.data.amazon import load_amazon

        dataset = load_amazon(Path(spec.path))
    elif spec.kind == "jsonl":
        from vitrine.data.jsonl import load_jsonl

        dataset = load_jsonl(Path(spec.path))
    elif spec.kind == "interactions":  # the interaction log on Kafka (vitrine.feedback.mining)
        from vitrine.feedback.mining import load_interactions

        dataset = load_interactions(spec.path)
    else:
        dataset = _load_synthetic(spec.path)
    for report in dataset.reports:
        log.info("%s", report.summary())
    return dataset


def merge_datasets(datasets: Sequence[Dataset]) -> Dataset:
    """One dataset from several (ids are prefixed by dataset index only when they collide)."""
    if len(datasets) == 1:
        return datasets[0]
    seen: set[str] = set()
    collide = False
    for ds in datasets:
        ids = {p.product_id for p in ds.products}
        collide = collide or bool(ids & seen)
        seen |= ids
    if collide:
        raise ConfigError("datasets share product ids; train on them separately")
    return Dataset(
        name=",".join(d.name for d in datasets),
        products=tuple(p for d in datasets for p in d.products),
        sessions=tuple(s for d in datasets for s in d.sessions),
        bundles=tuple(b for d in datasets for b in d.bundles),
        bundle_intents=tuple(i for d in datasets for i in (d.bundle_intents or ("",) * len(d.bundles))),
        also_view=tuple(x for d in datasets for x in d.also_view),
        also_buy=tuple(x for d in datasets for x in d.also_buy),
        reports=tuple(r for d in datasets for r in d.reports),
    )
