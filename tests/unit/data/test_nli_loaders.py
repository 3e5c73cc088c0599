"""NLI loaders: formats, label validation, skip reports, split resolution; then the real shared files."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitrine.data.nli import load_nli, parse_spec, read_ppc, read_sick_format, read_snli, resolve_file
from vitrine.errors import ConfigError, DataError

SICK_HEADER = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_sick_format_keeps_valid_rows_and_reports_skips(tmp_path: Path) -> None:
    file = write(
        tmp_path / "SICK_train.txt",
        SICK_HEADER
        + "1\tA man plays\tA person plays\t4.5\tENTAILMENT\n"
        + "2\tA man plays\tNobody plays\t3.0\tCONTRADICTION\n"
        + "3\tA dog runs\tA cat sleeps\t1.0\tneutral\n"  # lower case is accepted
        + "4\tonly three\tcolumns\n"
        + "5\t \tempty premise\t1.0\tNEUTRAL\n"
        + "6\ta\tb\t1.0\tMAYBE\n"
        + "1\tduplicate id\tagain\t1.0\tNEUTRAL\n"
        + "\n",
    )
    pairs, report = read_sick_format(file)
    assert [(p.pair_id, p.label) for p in pairs] == [
        ("1", "entailment"),
        ("2", "contradiction"),
        ("3", "neutral"),
    ]
    assert pairs[0].premise == "A man plays" and pairs[0].hypothesis == "A person plays"
    assert report.rows == 7 and report.kept == 3
    assert dict(report.skipped) == {
        "bad_column_count": 1,
        "empty_sentence": 1,
        "unknown_label": 1,
        "duplicate_pair_id": 1,
    }
    assert "7 rows, 3 kept" in report.summary()


def test_sick_format_rejects_a_wrong_header(tmp_path: Path) -> None:
    file = write(tmp_path / "x.txt", "id\ta\tb\tscore\tlabel\n1\ta\tb\t1\tNEUTRAL\n")
    with pytest.raises(DataError, match="header"):
        read_sick_format(file)


def test_snli_reads_aligned_files_and_skips_missing_gold_labels(tmp_path: Path) -> None:
    write(tmp_path / "s1.dev", "Two women hug . \nA man sleeps .\nA dog .\n")
    write(tmp_path / "s2.dev", "Women embrace .\nA man is awake .\nAn animal .\n")
    write(tmp_path / "labels.dev", "entailment\ncontradiction\n-\n")
    pairs, report = read_snli(tmp_path / "s2.dev")
    assert [(p.premise, p.label) for p in pairs] == [
        ("Two women hug .", "entailment"),
        ("A man sleeps .", "contradiction"),
    ]
    assert dict(report.skipped) == {"no_gold_label": 1}


def test_snli_files_of_different_lengths_are_an_error(tmp_path: Path) -> None:
    write(tmp_path / "s1.dev", "a\nb\n")
    write(tmp_path / "s2.dev", "c\n")
    write(tmp_path / "labels.dev", "neutral\nneutral\n")
    with pytest.raises(DataError, match="lines"):
        read_snli(tmp_path / "labels.dev")


def test_ppc_maps_paraphrase_classes(tmp_path: Path) -> None:
    file = write(
        tmp_path / "train.txt",
        "sentence_A\tsentence_B\tlabel\nPies biega.\tPies biegnie.\t1\nOdrzuciła.\tPKW odrzuciła.\t2\n"
        "Psy nie śpią.\tPsy śpią.\t3\nA\tB\t4\n",
    )
    pairs, report = read_ppc(file)
    assert [(p.label, p.symmetric) for p in pairs] == [
        ("entailment", True),
        ("neutral", False),
        ("contradiction", False),
    ]
    assert dict(report.skipped) == {"unknown_label": 1}


def test_folders_resolve_to_train_or_dev(tmp_path: Path) -> None:
    both = tmp_path / "both"
    write(both / "SICK_train.txt", SICK_HEADER)
    write(both / "SICK_trial.txt", SICK_HEADER)
    dev_only = tmp_path / "dev_only"
    write(dev_only / "labels.dev", "")
    assert resolve_file("sick", both, "train").name == "SICK_train.txt"
    assert resolve_file("sick", both, "eval").name == "SICK_trial.txt"
    assert resolve_file("snli", dev_only, "train").name == "labels.dev"
    train_only = tmp_path / "train_only"
    write(train_only / "train.txt", "")
    with pytest.raises(DataError, match="no eval split"):
        resolve_file("ppc", train_only, "eval")
    with pytest.raises(DataError, match="no such file"):
        resolve_file("ppc", tmp_path / "missing", "train")


def test_parse_spec_lists_allowed_kinds() -> None:
    assert parse_spec("sick:/data/x") == ("sick", Path("/data/x"))
    with pytest.raises(ConfigError, match="sick, snli, cdsc, ppc"):
        parse_spec("mnli:/x")
    with pytest.raises(ConfigError, match="KIND:PATH"):
        parse_spec("sick")


def test_a_file_with_no_usable_pair_is_an_error(tmp_path: Path) -> None:
    file = write(tmp_path / "CDS_train.txt", SICK_HEADER + "1\ta\tb\t1\tUNKNOWN\n")
    with pytest.raises(DataError, match="no usable pairs"):
        load_nli("cdsc", file)


@pytest.mark.shared_data
def test_shared_nli_files_load_completely(shared_data: Path) -> None:
    nli = shared_data / "nli"
    expected = {
        ("sick", nli / "en" / "sick"): 4500,
        ("sick", nli / "pl" / "sick-pl"): 4439,
        ("cdsc", nli / "pl" / "cdsc-e"): 8000,
        ("ppc", nli / "pl" / "ppc"): 5000,
        ("snli", nli / "en" / "snli"): 9842,
    }
    for (kind, path), rows in expected.items():
        data = load_nli(kind, path, purpose="train")
        assert data.report.rows == rows, data.report.summary()
        assert len(data.pairs) == data.report.kept == rows - sum(data.report.skipped.values())
        assert {p.label for p in data.pairs} == {"entailment", "neutral", "contradiction"}


@pytest.mark.shared_data
def test_sick_and_sick_pl_share_pair_ids(shared_data: Path) -> None:
    english = {p.pair_id: p for p in load_nli("sick", shared_data / "nli/en/sick", "eval").pairs}
    polish = {p.pair_id: p for p in load_nli("sick", shared_data / "nli/pl/sick-pl", "eval").pairs}
    shared = english.keys() & polish.keys()
    assert len(shared) == len(polish)
    # A translation keeps the entailment judgement.
    assert all(english[i].label == polish[i].label for i in shared)
