"""Title TF-IDF of hybrid complementary serving: the same cosines as scikit-learn's vectorizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vitrine.data.datasets import load_dataset
from vitrine.model.lexical import TitleTfidf


def test_cosines_match_scikit_learn_tfidf(tmp_path: Path) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    titles = [p.title for p in load_dataset("synthetic:200").products]
    titles += ["Acme phone case, black", "acme PHONE case case", "x"]
    matrix = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(titles)
    expected = (matrix @ matrix.T).toarray()
    ours = TitleTfidf.fit(titles)
    loaded = TitleTfidf.load(ours.save(tmp_path))
    vectors = [loaded.vector(t) for t in titles]
    rows = [*np.random.default_rng(0).choice(len(titles), size=40, replace=False).tolist(), 200, 201]
    for i in rows:
        for j in (*rows[:10], 200, 201, 202):
            assert TitleTfidf.cosine(vectors[i], vectors[j]) == pytest.approx(expected[i, j], abs=1e-6)


def test_unseen_terms_still_match_each_other() -> None:
    lexical = TitleTfidf.fit(["red mug", "blue mug"])
    # a new brand shared by two new products is a match the fitted vocabulary cannot know
    assert TitleTfidf.cosine(lexical.vector("zorbix charger"), lexical.vector("zorbix cable")) > 0
    assert TitleTfidf.cosine(lexical.vector("red mug"), lexical.vector("charger")) == 0.0
