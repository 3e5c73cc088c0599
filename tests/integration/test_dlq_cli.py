"""`vitrine dlq read|replay` against a real broker: dead letters listed with their reasons and writer,
selected ones replayed to their source topic unchanged."""

from __future__ import annotations

import json

import pytest

from vitrine.cli.main import main
from vitrine.stream.dead_letters import DeadLetterWriter, KafkaDeadLetters
from vitrine.stream.dlq import H_REPLAYED_FROM
from vitrine.stream.kafka import KafkaSettings, make_consumer, make_producer
from vitrine.stream.records import SourceRecord

pytestmark = pytest.mark.integration


@pytest.fixture
def dead_letters(kafka_settings: KafkaSettings, catalog_topics) -> object:
    producer = make_producer(kafka_settings)
    dlq = KafkaDeadLetters(producer, catalog_topics.dead_letters, DeadLetterWriter("vitrine-encoder", "m1"))
    rejected = [
        (b"sku-1", b"\x00garbage", "undecodable", "not a vitrine.v1.ProductEvent"),
        (b"sku-2", b"\x12\x05sku-2", "missing_title", "title is empty"),
        (b"sku-3", b"\x12\x05sku-3", "missing_title", "title is empty"),
    ]
    for offset, (key, value, reason, detail) in enumerate(rejected):
        record = SourceRecord(
            catalog_topics.products, 1, 40 + offset, key, value, 1_700_000_000_000, (("trace", b"t"),)
        )
        dlq.send(record, reason, detail)
    dlq.flush()
    producer.close()
    return catalog_topics


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_read_lists_every_dead_letter_with_its_reason_and_writer(
    kafka_settings: KafkaSettings, dead_letters, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = dead_letters
    base = (
        "dlq",
        "read",
        "--bootstrap-servers",
        kafka_settings.bootstrap_servers,
        "--topic",
        topics.dead_letters,
    )
    code, out, _ = _cli(capsys, *base)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["AT", "TIME", "(UTC)", "REASON"]
    assert len(lines) == 5  # header, three letters, summary
    assert (
        "undecodable" in lines[1] and "vitrine-encoder" in lines[1] and f"{topics.products}[1]@40" in lines[1]
    )
    assert lines[-1] == f"3 dead letter(s): missing_title 2, undecodable 1 in {topics.dead_letters}"

    code, out, _ = _cli(capsys, *base, "--json", "--reason", "missing_title")
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["key"] for r in rows] == ["sku-2", "sku-3"]
    assert rows[0]["group"] == "vitrine-encoder" and rows[0]["model_version"] == "m1"
    assert rows[0]["detail"] == "title is empty" and rows[0]["headers"] == {"trace": "t"}
    assert rows[0]["source"] == {
        "topic": topics.products,
        "partition": "1",
        "offset": "41",
        "timestamp_ms": "1700000000000",
    }


def test_replay_sends_the_selected_records_back_unchanged(
    kafka_settings: KafkaSettings, dead_letters, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = dead_letters
    base = ("--bootstrap-servers", kafka_settings.bootstrap_servers, "--topic", topics.dead_letters)
    code, _, err = _cli(capsys, "dlq", "replay", *base)
    assert code == 2 and "--all" in err  # nothing selected: refused

    code, out, _ = _cli(capsys, "dlq", "replay", *base, "--reason", "missing_title", "--dry-run")
    assert code == 0 and "would replay 2 dead letter(s)" in out

    code, out, _ = _cli(capsys, "dlq", "replay", *base, "--key", "sku-2")
    assert code == 0 and f"replayed 1 dead letter(s) to {topics.products} 1" in out

    consumer = make_consumer(kafka_settings, topics.products, group_id=None, consumer_timeout_ms=5000)
    [replayed] = list(consumer)
    consumer.close()
    headers = dict(replayed.headers)
    assert (replayed.key, replayed.value) == (b"sku-2", b"\x12\x05sku-2")
    assert headers["trace"] == b"t" and not any(k.startswith("vitrine.dlq.") for k in headers)
    assert headers[H_REPLAYED_FROM].startswith(f"{topics.dead_letters}:0:".encode())
