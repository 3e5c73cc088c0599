"""Loaders for the natural-language-inference files in `../shared/data/nli`, in their published formats.

- `sick` (SICK, SICK-PL): `SICK_train.txt`, `SICK_trial.txt`; tab-separated pair_ID, sentence_A,
  sentence_B, relatedness_score, entailment_judgment.
- `cdsc` (CDSC-E): `CDS_train.txt`, `CDS_trial.txt`; the same columns.
- `snli` (e-SNLI files): `s1.SPLIT`, `s2.SPLIT`, `labels.SPLIT`; premises, hypotheses and labels
  aligned by line.
- `ppc` (Polish Paraphrase Corpus): `train.txt`, `dev.txt`; tab-separated sentence_A, sentence_B,
  label (1, 2, 3).

Every pair becomes an `NliPair` with a label in `LABELS`. PPC's paraphrase classes map as
1 (exact paraphrase) -> entailment, symmetric; 2 (close paraphrase: shared information plus more) ->
neutral; 3 (non-paraphrase, in this corpus mostly a negated or altered copy of the sentence) ->
contradiction, used only as a hard negative.

Rows that cannot be used (wrong column count, empty sentence, unknown label, repeated pair id) are
skipped, counted by reason in a `LoadReport` and logged; a file with a wrong header, or SNLI files of
different lengths, raise `DataError`.

`PATH` may be a file (read as it is) or a folder: for training (`purpose="train"`) the folder's train
split, or its dev split where it has no train split; for evaluation (`purpose="eval"`) its dev split.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vitrine.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Label = Literal["entailment", "neutral", "contradiction"]
LABELS: tuple[Label, ...] = ("entailment", "neutral", "contradiction")
NLI_KINDS: tuple[str, ...] = ("sick", "snli", "cdsc", "ppc")
Purpose = Literal["train", "eval"]

_SICK_HEADER = ["pair_ID", "sentence_A", "sentence_B", "relatedness_score", "entailment_judgment"]
_PPC_HEADER = ["sentence_A", "sentence_B", "label"]
_PPC_LABELS: dict[str, tuple[Label, bool]] = {
    "1": ("entailment", True),
    "2": ("neutral", False),
    "3": ("contradiction", False),
}
# Folder layouts: (train files, dev files), first existing wins.
_SPLIT_FILES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sick": (("SICK_train.txt",), ("SICK_trial.txt",)),
    "cdsc": (("CDS_train.txt",), ("CDS_trial.txt",)),
    "snli": (("labels.train",), ("labels.dev",)),
    "ppc": (("train.txt",), ("dev.txt",)),
}


@dataclass(frozen=True)
class NliPair:
    premise: str
    hypothesis: str
    label: Label
    pair_id: str
    # True when entailment holds both ways (a paraphrase), so (hypothesis, premise) is a positive too.
    symmetric: bool = False


@dataclass
class LoadReport:
    path: Path
    rows: int = 0
    kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())) or "none"
        return f"{self.path}: {self.rows} rows, {self.kept} kept, skipped: {skipped}"


@dataclass(frozen=True)
class NliData:
    kind: str
    pairs: list[NliPair]
    report: LoadReport


def parse_spec(spec: str, allowed: tuple[str, ...] = NLI_KINDS) -> tuple[str, Path]:
    """`KIND:PATH` -> (kind, path)."""
    kind, sep, path = spec.partition(":")
    if not sep or not path:
        raise ConfigError(f"expected KIND:PATH, got {spec!r} (KIND one of {', '.join(allowed)})")
    if kind not in allowed:
        raise ConfigError(f"unknown data kind {kind!r}; allowed: {', '.join(allowed)}")
    return kind, Path(path)


def resolve_file(kind: str, path: Path, purpose: Purpose) -> Path:
    """The file to read for `kind` at `path` (see the module docstring for folders)."""
    if kind not in _SPLIT_FILES:
        raise ConfigError(f"unknown NLI kind {kind!r}; allowed: {', '.join(NLI_KINDS)}")
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    train, dev = _SPLIT_FILES[kind]
    candidates = (*train, *dev) if purpose == "train" else dev
    for name in candidates:
        if (path / name).is_file():
            return path / name
    raise DataError(f"{path}: no {purpose} split for {kind} (looked for {', '.join(candidates)})")


def load_nli(kind: str, path: str | Path, purpose: Purpose = "train") -> NliData:
    """Read one NLI file (or folder, see `resolve_file`) of the given kind."""
    file = resolve_file(kind, Path(path), purpose)
    if kind in ("sick", "cdsc"):
        pairs, report = read_sick_format(file)
    elif kind == "snli":
        pairs, report = read_snli(file)
    else:
        pairs, report = read_ppc(file)
    if report.skipped:
        log.warning("%s", report.summary())
    else:
        log.info("%s", report.summary())
    if not pairs:
        raise DataError(f"{file}: no usable pairs ({report.summary()})")
    return NliData(kind, pairs, report)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from e


def _check_header(path: Path, header: list[str], expected: list[str]) -> None:
    if header != expected:
        raise DataError(f"{path}: header {header} does not match the expected {expected}")


def read_sick_format(path: Path) -> tuple[list[NliPair], LoadReport]:
    """SICK, SICK-PL and CDSC-E files (same five tab-separated columns)."""
    lines = _read_lines(path)
    if not lines:
        raise DataError(f"{path}: empty file")
    _check_header(path, lines[0].split("\t"), _SICK_HEADER)
    report = LoadReport(path)
    pairs: list[NliPair] = []
    seen: set[str] = set()
    for line in lines[1:]:
        if not line.strip():
            continue
        report.rows += 1
        fields = line.split("\t")
        if len(fields) != len(_SICK_HEADER):
            report.skip("bad_column_count")
            continue
        pair_id, a, b, _, judgment = (f.strip() for f in fields)
        label = judgment.lower()
        if not a or not b:
            report.skip("empty_sentence")
        elif label not in LABELS:
            report.skip("unknown_label")
        elif pair_id in seen:
            report.skip("duplicate_pair_id")
        else:
            seen.add(pair_id)
            pairs.append(NliPair(a, b, label, pair_id))  # type: ignore[arg-type]
            report.kept += 1
    return pairs, report


def read_snli(path: Path) -> tuple[list[NliPair], LoadReport]:
    """e-SNLI's aligned `s1.SPLIT` / `s2.SPLIT` / `labels.SPLIT`; `path` is any one of the three."""
    prefix, dot, split = path.name.partition(".")
    if not dot or prefix not in ("s1", "s2", "labels"):
        raise DataError(f"{path}: expected one of s1.SPLIT, s2.SPLIT or labels.SPLIT")
    files = [path.with_name(f"{name}.{split}") for name in ("s1", "s2", "labels")]
    premises, hypotheses, labels = (_read_lines(f) for f in files)
    if not len(premises) == len(hypotheses) == len(labels):
        raise DataError(
            f"{path.parent}: s1/s2/labels.{split} have {len(premises)}/{len(hypotheses)}/{len(labels)} lines"
        )
    report = LoadReport(files[2])
    pairs: list[NliPair] = []
    for i, (a, b, raw) in enumerate(zip(premises, hypotheses, labels, strict=True)):
        report.rows += 1
        a, b, label = a.strip(), b.strip(), raw.strip().lower()
        if label == "-":
            report.skip("no_gold_label")
        elif label not in LABELS:
            report.skip("unknown_label")
        elif not a or not b:
            report.skip("empty_sentence")
        else:
            pairs.append(NliPair(a, b, label, f"{split}-{i + 1}"))  # type: ignore[arg-type]
            report.kept += 1
    return pairs, report


def read_ppc(path: Path) -> tuple[list[NliPair], LoadReport]:
    """Polish Paraphrase Corpus: sentence_A, sentence_B, label 1/2/3 (see the module docstring)."""
    lines = _read_lines(path)
    if not lines:
        raise DataError(f"{path}: empty file")
    _check_header(path, lines[0].split("\t"), _PPC_HEADER)
    report = LoadReport(path)
    pairs: list[NliPair] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        report.rows += 1
        fields = line.split("\t")
        if len(fields) != len(_PPC_HEADER):
            report.skip("bad_column_count")
            continue
        a, b, raw = (f.strip() for f in fields)
        if not a or not b:
            report.skip("empty_sentence")
        elif raw not in _PPC_LABELS:
            report.skip("unknown_label")
        else:
            label, symmetric = _PPC_LABELS[raw]
            pairs.append(NliPair(a, b, label, f"line-{n}", symmetric))
            report.kept += 1
    return pairs, report
