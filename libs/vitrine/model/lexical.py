"""Product TF-IDF for hybrid complementary scoring: word 1-2-grams, sublinear tf, smoothed idf, L2 norm.

The same weighting as scikit-learn's `TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)` (the
`tfidf` baseline), written out in plain Python so that serving needs neither scikit-learn nor a
sparse-matrix library: the recommender scores a few hundred candidates per request. A product's
lexical text is its title, or its title and the description its towers read (`lexical_text`; the
index payload keeps that description). The idf table is fitted on the training catalogue's texts
and stored in the model directory (`lexical.json`); a term the table does not know gets the idf of
a term seen in no product.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

LEXICAL_FILE = "lexical.json"
LEXICAL_TEXTS = ("title", "title+description")
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern


def terms(text: str) -> list[str]:
    words = _TOKEN.findall(text.lower())
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def lexical_text(kind: str, title: str, description: str) -> str:
    """What the lexical score reads of a product: `kind` is one of LEXICAL_TEXTS."""
    if kind not in LEXICAL_TEXTS:
        raise ValueError(f"lexical text must be one of {LEXICAL_TEXTS}, got {kind!r}")
    if kind == "title" or not description:
        return title
    return f"{title} {description}"


def intent_lexical_text(title: str, category_path: tuple[str, ...] | list[str]) -> str:
    """What an intent's lexical score reads of a product: its title and category path (an intent
    names what a product is for: "home network" matches the category "Networking" as well)."""
    return " ".join([title, *category_path])


Vector = dict[str, float]


@dataclass(frozen=True, slots=True)
class ProductTfidf:
    idf: Mapping[str, float]
    unseen_idf: float

    @classmethod
    def fit(cls, texts: Iterable[str]) -> ProductTfidf:
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            n += 1
            df.update(set(terms(text)))
        # smooth idf: ln((1 + n) / (1 + df)) + 1, as scikit-learn
        idf = {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in sorted(df.items())}
        return cls(idf, math.log(1 + n) + 1.0)

    def vector(self, text: str) -> Vector:
        counts = Counter(terms(text))
        weights = {t: (1.0 + math.log(c)) * self.idf.get(t, self.unseen_idf) for t, c in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {t: w / norm for t, w in weights.items()}

    def cosine_to(self, query: Vector, text: str) -> float:
        """`cosine(query, vector(text))` in one pass over the text's terms, without building its
        vector (re-scoring reads a thousand candidate texts per request)."""
        idf, unseen = self.idf, self.unseen_idf
        dot = norm = 0.0
        for t, c in Counter(terms(text)).items():
            w = (1.0 + math.log(c)) * idf.get(t, unseen) if c > 1 else idf.get(t, unseen)
            norm += w * w
            q = query.get(t)
            if q is not None:
                dot += q * w
        return dot / math.sqrt(norm) if norm else 0.0

    @staticmethod
    def cosine(a: Vector, b: Vector) -> float:
        if len(a) > len(b):
            a, b = b, a
        return sum(w * b.get(t, 0.0) for t, w in a.items())

    def save(self, model_dir: Path, name: str = LEXICAL_FILE) -> Path:
        path = Path(model_dir) / name
        data = {"unseen_idf": self.unseen_idf, "idf": dict(self.idf)}
        path.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> ProductTfidf:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(dict(data["idf"]), float(data["unseen_idf"]))
