"""Retrieval test collections: BEIR layout (SciFact), Cranfield, and NLI files read as retrieval tasks.

All three become a `RetrievalSet`: queries, a corpus, graded judgements (`qrels`, gain > 0 means
relevant) and, per query, documents to leave out of the ranking.

- `beir`: `corpus.jsonl` (`_id`, `title`, `text`; a document is `title + " " + text`, as BEIR does),
  `queries.jsonl`, `qrels/SPLIT.tsv`. `PATH` is the folder (qrels split: test, else dev, else train) or
  a qrels file inside it. Judgements with score <= 0 are non-relevant and dropped.
- `cranfield`: `cran.all.1400`, `cran.qry`, `cranqrel` in one folder. The queries' `.I` numbers are
  not the ones `cranqrel` uses: `cranqrel` numbers queries 1..225 in file order. Every grade counts as
  relevant with gain 1 (including -1, which marks the paper a question was written from; see
  docs/NLI.md). A document's text is its `.W` field, which repeats the title.
- NLI kinds (`sick`, `snli`, `cdsc`, `ppc`): each distinct premise with an entailed hypothesis is a
  query, every distinct hypothesis of the file is a document, the entailed ones are relevant. A
  hypothesis identical to the query text is left out of that query's ranking.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vitrine.data.nli import NLI_KINDS, LoadReport, NliPair, load_nli
from vitrine.errors import ConfigError, DataError

log = logging.getLogger(__name__)

RETRIEVAL_KINDS: tuple[str, ...] = ("beir", "cranfield")
DATASET_KINDS: tuple[str, ...] = RETRIEVAL_KINDS + NLI_KINDS
_BEIR_SPLITS = ("test", "dev", "train")


@dataclass
class RetrievalSet:
    name: str
    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, dict[str, int]]
    # Symmetric tasks (sentence vs sentence) embed both sides as queries; see vitrine.text.encoders.
    symmetric: bool = False
    ignore: dict[str, set[str]] = field(default_factory=dict)
    reports: list[LoadReport] = field(default_factory=list)

    def evaluated_query_ids(self) -> list[str]:
        """Queries that have at least one relevant document, in a stable order."""
        return [qid for qid in self.queries if self.qrels.get(qid)]

    def limit_queries(self, n: int) -> RetrievalSet:
        """The first `n` evaluated queries, same corpus (for quick runs)."""
        keep = self.evaluated_query_ids()[:n]
        return RetrievalSet(
            self.name,
            {q: self.queries[q] for q in keep},
            self.corpus,
            {q: self.qrels[q] for q in keep},
            self.symmetric,
            {q: self.ignore[q] for q in keep if q in self.ignore},
            self.reports,
        )


def load_dataset(kind: str, path: str | Path) -> RetrievalSet:
    """Any `DATASET_KINDS` kind; NLI folders resolve to their evaluation (dev) split."""
    path = Path(path)
    if kind == "beir":
        return load_beir(path)
    if kind == "cranfield":
        return load_cranfield(path)
    if kind in NLI_KINDS:
        data = load_nli(kind, path, purpose="eval")
        rset = nli_retrieval_set(data.pairs, f"{kind}:{data.report.path}")
        rset.reports.append(data.report)
        return rset
    raise ConfigError(f"unknown dataset kind {kind!r}; allowed: {', '.join(DATASET_KINDS)}")


def _read_jsonl(path: Path, report: LoadReport) -> list[dict]:
    rows = []
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                report.rows += 1
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    report.skip("bad_json")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    return rows


def load_beir(path: Path) -> RetrievalSet:
    if path.is_file():
        qrels_file, root = path, path.parent.parent
    else:
        root = path
        found = [root / "qrels" / f"{s}.tsv" for s in _BEIR_SPLITS if (root / "qrels" / f"{s}.tsv").is_file()]
        if not found:
            raise DataError(f"{root}: no qrels/{{test,dev,train}}.tsv")
        qrels_file = found[0]
    corpus_report, query_report, qrels_report = (
        LoadReport(root / "corpus.jsonl"),
        LoadReport(root / "queries.jsonl"),
        LoadReport(qrels_file),
    )
    corpus: dict[str, str] = {}
    for row in _read_jsonl(root / "corpus.jsonl", corpus_report):
        doc_id, text = str(row.get("_id", "")), f"{row.get('title') or ''} {row.get('text') or ''}".strip()
        if not doc_id or not text:
            corpus_report.skip("missing_id_or_text")
        elif doc_id in corpus:
            corpus_report.skip("duplicate_id")
        else:
            corpus[doc_id] = text
            corpus_report.kept += 1
    queries: dict[str, str] = {}
    for row in _read_jsonl(root / "queries.jsonl", query_report):
        qid, text = str(row.get("_id", "")), str(row.get("text") or "").strip()
        if not qid or not text:
            query_report.skip("missing_id_or_text")
        elif qid in queries:
            query_report.skip("duplicate_id")
        else:
            queries[qid] = text
            query_report.kept += 1
    lines = _read_text(qrels_file).splitlines()
    if not lines or lines[0].split("\t")[:3] != ["query-id", "corpus-id", "score"]:
        raise DataError(f"{qrels_file}: expected a 'query-id corpus-id score' header")
    qrels: dict[str, dict[str, int]] = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        qrels_report.rows += 1
        fields = line.split("\t")
        if len(fields) != 3:
            qrels_report.skip("bad_column_count")
            continue
        qid, doc_id, raw = fields
        try:
            score = int(raw)
        except ValueError:
            qrels_report.skip("bad_score")
            continue
        if qid not in queries:
            qrels_report.skip("unknown_query")
        elif doc_id not in corpus:
            qrels_report.skip("unknown_document")
        elif score <= 0:
            qrels_report.skip("not_relevant")
        else:
            qrels.setdefault(qid, {})[doc_id] = score
            qrels_report.kept += 1
    reports = [corpus_report, query_report, qrels_report]
    _log_reports(reports)
    return RetrievalSet(f"beir:{qrels_file}", queries, corpus, qrels, reports=reports)


_FIELD = re.compile(r"^\.([A-Z])(?:\s+(\S+))?\s*$")


def _parse_dot_format(path: Path) -> list[tuple[str, dict[str, str]]]:
    """`.I id` records with `.X` fields -> [(id, {field: text})]; repeated fields are appended."""
    records: list[tuple[str, dict[str, list[str]]]] = []
    current: str | None = None
    for line in _read_text(path).splitlines():
        m = _FIELD.match(line)
        if m and m.group(1) == "I":
            if not m.group(2):
                raise DataError(f"{path}: '.I' without an id")
            records.append((m.group(2), {}))
            current = None
        elif m and records:
            current = m.group(1)
            records[-1][1].setdefault(current, [])
        elif records and current is not None:
            records[-1][1][current].append(line)
    return [(rid, {k: " ".join(" ".join(v).split()) for k, v in fields.items()}) for rid, fields in records]


def load_cranfield(path: Path) -> RetrievalSet:
    if not path.is_dir():
        raise DataError(f"{path}: expected the Cranfield folder (cran.all.1400, cran.qry, cranqrel)")
    docs_report, query_report, qrels_report = (
        LoadReport(path / "cran.all.1400"),
        LoadReport(path / "cran.qry"),
        LoadReport(path / "cranqrel"),
    )
    corpus: dict[str, str] = {}
    for raw_id, fields in _parse_dot_format(path / "cran.all.1400"):
        docs_report.rows += 1
        doc_id = raw_id.lstrip("0") or "0"
        text = fields.get("W") or fields.get("T", "")
        if not text:
            docs_report.skip("empty_text")
        elif doc_id in corpus:
            docs_report.skip("duplicate_id")
        else:
            corpus[doc_id] = text
            docs_report.kept += 1
    queries: dict[str, str] = {}
    for position, (_, fields) in enumerate(_parse_dot_format(path / "cran.qry"), start=1):
        query_report.rows += 1
        if not fields.get("W"):
            query_report.skip("empty_text")
            continue
        queries[str(position)] = fields["W"]
        query_report.kept += 1
    qrels: dict[str, dict[str, int]] = {}
    grades: Counter[str] = Counter()
    for line in _read_text(path / "cranqrel").splitlines():
        if not line.strip():
            continue
        qrels_report.rows += 1
        fields = line.split()
        if len(fields) != 3:
            qrels_report.skip("bad_column_count")
            continue
        qid, doc_id, grade = fields
        if qid not in queries:
            qrels_report.skip("unknown_query")
        elif doc_id not in corpus:
            qrels_report.skip("unknown_document")
        else:
            grades[grade] += 1
            qrels.setdefault(qid, {})[doc_id] = 1
            qrels_report.kept += 1
    log.info("cranqrel grades (all counted relevant): %s", dict(sorted(grades.items())))
    reports = [docs_report, query_report, qrels_report]
    _log_reports(reports)
    return RetrievalSet(f"cranfield:{path}", queries, corpus, qrels, reports=reports)


def nli_retrieval_set(pairs: list[NliPair], name: str) -> RetrievalSet:
    """NLI pairs as retrieval: premises are queries, all hypotheses the corpus, entailed ones relevant."""
    doc_ids: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for pair in pairs:
        doc_id = doc_ids.setdefault(pair.hypothesis, f"d{len(doc_ids)}")
        if pair.label == "entailment":
            qid = query_ids.setdefault(pair.premise, f"q{len(query_ids)}")
            qrels.setdefault(qid, {})[doc_id] = 1
    queries = {qid: text for text, qid in query_ids.items()}
    corpus = {doc_id: text for text, doc_id in doc_ids.items()}
    ignore = {
        qid: {doc_ids[text]}
        for text, qid in query_ids.items()
        if text in doc_ids and doc_ids[text] not in qrels[qid]
    }
    return RetrievalSet(name, queries, corpus, qrels, symmetric=True, ignore=ignore)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from e


def _log_reports(reports: list[LoadReport]) -> None:
    for report in reports:
        (log.warning if report.skipped else log.info)("%s", report.summary())
