"""Retrieval loaders: BEIR layout, Cranfield, NLI-as-retrieval; then the real shared collections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitrine.data.nli import NliPair
from vitrine.data.retrieval import load_beir, load_cranfield, load_dataset, nli_retrieval_set
from vitrine.errors import ConfigError, DataError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_beir(root: Path) -> Path:
    docs = [
        {"_id": "d1", "title": "Aspirin", "text": "reduces fever."},
        {"_id": "d2", "title": "", "text": "Vitamin C and colds."},
        {"_id": "d1", "title": "dup", "text": "duplicate id"},
        {"_id": "d3", "title": "", "text": ""},
    ]
    write(root / "corpus.jsonl", "\n".join(json.dumps(d) for d in docs) + "\nnot json\n")
    write(root / "queries.jsonl", '{"_id": "q1", "text": "fever drug"}\n{"_id": "q2", "text": "colds"}\n')
    write(root / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    write(
        root / "qrels" / "test.tsv",
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\tmissing\t1\nq9\td1\t1\nq2\td2\tx\n",
    )
    return root


def test_beir_prefers_the_test_split_and_reports_skips(tmp_path: Path) -> None:
    rset = load_beir(make_beir(tmp_path))
    assert rset.name.endswith("test.tsv")
    assert rset.corpus == {"d1": "Aspirin reduces fever.", "d2": "Vitamin C and colds."}
    assert rset.qrels == {"q1": {"d1": 2}}
    assert rset.evaluated_query_ids() == ["q1"]
    corpus_report, _, qrels_report = rset.reports
    assert dict(corpus_report.skipped) == {"bad_json": 1, "duplicate_id": 1, "missing_id_or_text": 1}
    assert dict(qrels_report.skipped) == {
        "not_relevant": 1,
        "unknown_document": 1,
        "unknown_query": 1,
        "bad_score": 1,
    }
    assert not rset.symmetric


def test_beir_qrels_file_selects_the_split(tmp_path: Path) -> None:
    rset = load_beir(make_beir(tmp_path) / "qrels" / "train.tsv")
    assert rset.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}


def test_beir_without_qrels_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "corpus.jsonl", "")
    with pytest.raises(DataError, match="qrels"):
        load_beir(tmp_path)


CRAN_DOCS = """.I 1
.T
wing in a slipstream .
.A
brenckman,m.
.B
j. ae. scs. 25, 1958, 324.
.W
wing in a slipstream .
  an experimental study of a wing .
.I 2
.T
.A
.B
.W
.I 3
.T
flat plate .
.A
.B
.W
flat plate flow .
.W
second abstract field .
"""


def test_cranfield_numbers_queries_by_position_and_counts_every_grade(tmp_path: Path) -> None:
    write(tmp_path / "cran.all.1400", CRAN_DOCS)
    write(tmp_path / "cran.qry", ".I 001\n.W\nwhat about wings\nin slipstreams .\n.I 004\n.W\nplates ?\n")
    write(tmp_path / "cranqrel", "1 1 -1\n1 3 2\n2 3 4\n2 2 1\n3 1 1\n1 2\n")
    rset = load_cranfield(tmp_path)
    assert rset.queries == {"1": "what about wings in slipstreams .", "2": "plates ?"}
    assert rset.corpus["1"] == "wing in a slipstream . an experimental study of a wing ."
    # A repeated field is appended; the document with neither title nor abstract is skipped.
    assert rset.corpus["3"] == "flat plate flow . second abstract field ."
    assert "2" not in rset.corpus
    assert rset.qrels == {"1": {"1": 1, "3": 1}, "2": {"3": 1}}
    docs_report, _, qrels_report = rset.reports
    assert dict(docs_report.skipped) == {"empty_text": 1}
    assert dict(qrels_report.skipped) == {"unknown_document": 1, "unknown_query": 1, "bad_column_count": 1}


def test_nli_pairs_as_retrieval() -> None:
    pairs = [
        NliPair("A man plays guitar", "A person plays music", "entailment", "1"),
        NliPair("A man plays guitar", "Nobody plays", "contradiction", "2"),
        NliPair("A dog runs", "An animal moves", "entailment", "3"),
        NliPair("A dog runs", "A man plays guitar", "neutral", "4"),
        NliPair("A cat sleeps", "A cat is awake", "contradiction", "5"),
    ]
    rset = nli_retrieval_set(pairs, "tiny")
    assert rset.symmetric
    assert sorted(rset.queries.values()) == ["A dog runs", "A man plays guitar"]
    assert sorted(rset.corpus.values()) == sorted(
        ["A person plays music", "Nobody plays", "An animal moves", "A man plays guitar", "A cat is awake"]
    )
    by_text = {text: doc for doc, text in rset.corpus.items()}
    query = {text: q for q, text in rset.queries.items()}
    assert rset.qrels[query["A man plays guitar"]] == {by_text["A person plays music"]: 1}
    # The premise's own text is in the corpus (as another pair's hypothesis): it is not ranked for it.
    assert rset.ignore == {query["A man plays guitar"]: {by_text["A man plays guitar"]}}


def test_load_dataset_rejects_unknown_kinds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="beir, cranfield, sick"):
        load_dataset("msmarco", tmp_path)


@pytest.mark.shared_data
def test_shared_scifact(shared_data: Path) -> None:
    rset = load_dataset("beir", shared_data / "retrieval" / "scifact")
    assert len(rset.corpus) == 5183
    assert len(rset.evaluated_query_ids()) == 809
    assert all(not r.skipped for r in rset.reports), [r.summary() for r in rset.reports]


@pytest.mark.shared_data
def test_shared_cranfield(shared_data: Path) -> None:
    rset = load_dataset("cranfield", shared_data / "retrieval" / "cranfield")
    assert len(rset.queries) == 225 and len(rset.evaluated_query_ids()) == 225
    docs_report, _, qrels_report = rset.reports
    # Two of the 1400 documents have neither title nor abstract; one judgement points at one of them.
    assert docs_report.rows == 1400 and dict(docs_report.skipped) == {"empty_text": 2}
    assert dict(qrels_report.skipped) == {"unknown_document": 1}


@pytest.mark.shared_data
def test_shared_nli_dev_splits_as_retrieval(shared_data: Path) -> None:
    for kind, path in [("sick", "nli/en/sick"), ("cdsc", "nli/pl/cdsc-e"), ("ppc", "nli/pl/ppc")]:
        rset = load_dataset(kind, shared_data / path)
        assert "trial" in rset.name or "dev" in rset.name
        assert rset.evaluated_query_ids() and len(rset.corpus) > len(rset.queries)
