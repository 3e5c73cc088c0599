"""Title TF-IDF for hybrid complementary scoring: word 1-2-grams, sublinear tf, smoothed idf, L2 norm.

The same weighting as scikit-learn's `TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)` (the
`tfidf` baseline), written out in plain Python so that serving needs neither scikit-learn nor a
sparse-matrix library: the recommender scores a few hundred candidate titles per request. The idf
table is fitted on the training catalogue's titles and stored in the model directory
(`lexical.json`); a term the table does not know gets the idf of a term seen in no product.
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
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern


def terms(text: str) -> list[str]:
    words = _TOKEN.findall(text.lower())
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


Vector = dict[str, float]


@dataclass(frozen=True, slots=True)
class TitleTfidf:
    idf: Mapping[str, float]
    unseen_idf: float

    @classmethod
    def fit(cls, titles: Iterable[str]) -> TitleTfidf:
        df: Counter[str] = Counter()
        n = 0
        for title in titles:
            n += 1
            df.update(set(terms(title)))
        # smooth idf: ln((1 + n) / (1 + df)) + 1, as scikit-learn
        idf = {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in sorted(df.items())}
        return cls(idf, math.log(1 + n) + 1.0)

    def vector(self, text: str) -> Vector:
        counts = Counter(terms(text))
        weights = {t: (1.0 + math.log(c)) * self.idf.get(t, self.unseen_idf) for t, c in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {t: w / norm for t, w in weights.items()}

    @staticmethod
    def cosine(a: Vector, b: Vector) -> float:
        if len(a) > len(b):
            a, b = b, a
        return sum(w * b.get(t, 0.0) for t, w in a.items())

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / LEXICAL_FILE
        data = {"unseen_idf": self.unseen_idf, "idf": dict(self.idf)}
        path.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> TitleTfidf:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(dict(data["idf"]), float(data["unseen_idf"]))
