"""Title TF-IDF of hybrid complementary serving: the same cosines as scikit-learn's vectorizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vitrine.data.datasets import load_dataset
from vitrine.model.lexical import ProductTfidf


def test_cosines_match_scikit_learn_tfidf(tmp_path: Path) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    titles = [p.title for p in load_dataset("synthetic:200").products]
    titles += ["Acme phone case, black", "acme PHONE case case", "x"]
    matrix = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(titles)
    expected = (matrix @ matrix.T).toarray()
    ours = ProductTfidf.fit(titles)
    loaded = ProductTfidf.load(ours.save(tmp_path))
    vectors = [loaded.vector(t) for t in titles]
    rows = [*np.random.default_rng(0).choice(len(titles), size=40, replace=False).tolist(), 200, 201]
    for i in rows:
        for j in (*rows[:10], 200, 201, 202):
            assert ProductTfidf.cosine(vectors[i], vectors[j]) == pytest.approx(expected[i, j], abs=1e-6)


def test_unseen_terms_still_match_each_other() -> None:
    lexical = ProductTfidf.fit(["red mug", "blue mug"])
    # a new brand shared by two new products is a match the fitted vocabulary cannot know
    assert ProductTfidf.cosine(lexical.vector("zorbix charger"), lexical.vector("zorbix cable")) > 0
    assert ProductTfidf.cosine(lexical.vector("red mug"), lexical.vector("charger")) == 0.0


def test_the_one_pass_cosine_equals_the_cosine_of_the_two_vectors() -> None:
    """Intent re-scoring reads candidates through `cosine_to`; a slip in its weighting (a repeated
    term's sublinear tf, an unseen term's idf in the norm) would change served scores silently."""
    titles = [p.title for p in load_dataset("synthetic:200").products]
    lexical = ProductTfidf.fit(titles)
    texts = [*titles[:30], "acme PHONE case case case", "zorbix zorbix charger", "x", ""]
    for query in ("phone case for a runner", "zorbix", "acme acme acme"):
        q = lexical.vector(query)
        for text in texts:
            assert lexical.cosine_to(q, text) == pytest.approx(
                ProductTfidf.cosine(q, lexical.vector(text)), abs=1e-12
            ), (query, text)


def test_an_intent_reads_a_products_title_and_category_path() -> None:
    from vitrine.model.lexical import intent_lexical_text

    assert intent_lexical_text("Trail shoe X", ("Sports", "Running")) == "Trail shoe X Sports Running"
