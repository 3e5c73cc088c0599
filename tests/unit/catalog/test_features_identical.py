"""The vectorised feature extraction gives exactly the features of the per-product loop it replaced.

Trained models' ONNX towers expect these ids and weights bit for bit, so issue 18's speed-up must not
move a single one: every field, dtype, shape, order and weight is compared with
`support.features_reference` (the code of commit a02873d, with its normalise_text) on the synthetic
catalogue, every product of the shared datasets, hand-picked Unicode edge cases and generated text.
The digest pins the reference itself to what a02873d computed (checked against that commit's code).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.features_reference import ReferenceFeatureExtractor
from support.features_reference import normalise_text as reference_normalise_text

from vitrine.catalog.features import LONG_SPAN, FeatureConfig, FeatureExtractor, Features, crc32_spans
from vitrine.catalog.schema import Product, normalise_text, normalised_words
from vitrine.data.datasets import load_dataset
from vitrine.data.synthetic import SyntheticConfig, generate

FIELDS = ("text_ids", "text_weights", "category_ids", "leaf_id", "price_bucket", "brand_id", "seller_id")
CONFIGS = {
    "default": FeatureConfig(),
    "ngrams 2,3,5, truncated bags, quarter-weight descriptions": FeatureConfig(
        char_ngrams=(2, 3, 5), max_text_tokens=16, description_weight=0.25
    ),
    "no bigrams, no descriptions, 3 title words": FeatureConfig(
        word_bigrams=False, max_description_words=0, max_title_words=3
    ),
    "every key in one bucket": FeatureConfig(text_buckets=2, char_ngrams=(1, 4), max_category_levels=2),
    "sentence branch": FeatureConfig(text_branch="sentence", sentence_encoder="minilm", sentence_dim=384),
}
# Text that exercises every branch of the normalisation and of the byte spans: accents and
# compatibility forms (NFKD), case folding that changes length (ß, ﬁ, İ), non-ASCII text that folds
# to ASCII (the Kelvin sign), scripts without case, emoji with joiners, whitespace that is not ASCII
# (no-break space, U+001C..U+001F, ideographic space), combining marks alone, words longer than the
# vectorised CRC's LONG_SPAN (finished by zlib), one-character words (a padded word shorter than n).
EDGE_TEXTS = (
    "Café  MOUSE! crème brûlée",
    "Straße Maße GROSS ﬁligree ﬀ",
    "İstanbul ıi KELVIN\u212a 5\u212b",
    "東京 タワー 한국어 Ελληνικά ΣΊΣΥΦΟΣ ςσ",
    "ＦＵＬＬ－ＷＩＤＴＨ ①②③ ½ ㎏",
    "emoji 👩\u200d👩\u200d👧 🇵🇱 ✨✨",
    "nbsp\u00a0here\u2007and\u3000there\x1cfile\x1dgroup\x1erecord\x1funit",
    "tabs\tand\nnew\r\nlines\x0bvt\x0cff",
    "\u0301\u0301 combining only \u0363\u20dd",
    "عربي مرحبا עברית שלום",
    "x" * (LONG_SPAN + 7) + " short " + "ü" * 40 + " " + "\u00e9" * 30,
    "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9 _ __ a_b",
    "!!! ??? ... ---",
    "   ",
    "",
    "mixed ASCII and ñ in one title, then ASCII-only words",
)


def assert_identical(actual: Features, expected: Features) -> None:
    for name in FIELDS:
        a, e = getattr(actual, name), getattr(expected, name)
        assert a.dtype == e.dtype and a.shape == e.shape, (name, a.dtype, a.shape, e.dtype, e.shape)
        np.testing.assert_array_equal(a, e, err_msg=name, strict=True)
        assert a.tobytes() == e.tobytes(), name  # bit for bit, -0.0 and NaN payloads included


def compare(config: FeatureConfig, products: Sequence[Product], batch: int = 256) -> None:
    vectorised, reference = FeatureExtractor(config), ReferenceFeatureExtractor(config)
    for start in range(0, len(products), batch):
        chunk = products[start : start + batch]
        assert_identical(vectorised.extract(chunk), reference.extract(chunk))


def edge_products() -> list[Product]:
    products = []
    for i, text in enumerate(EDGE_TEXTS):
        other = EDGE_TEXTS[(i + 3) % len(EDGE_TEXTS)]
        products.append(
            Product(
                product_id=f"edge-{i}",
                title=text,
                description=f"{other} {text} " * (i % 4),
                category_path=tuple(t for t in (text[:20], other[:15], "Leaf  ", "x" * 60) if t)[: i % 5],
                brand=other[:12],
                seller=f" Seller-{text[:5]} ",
                price=[None, 0.0, 0.49, 19.99, 1e4, 5e6, float("nan"), float("inf"), -1.0][i % 9],
                currency="EUR",
            )
        )
    return products


def synthetic_products(n: int, seed: int) -> list[Product]:
    return list(generate(SyntheticConfig(n_products=n, n_sessions=10, n_baskets=10, seed=seed)).products)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_synthetic_catalogue_features_are_identical(config: FeatureConfig) -> None:
    compare(config, synthetic_products(1500, seed=11))


@pytest.mark.parametrize("batch", [1, 2, 7, 256, 10_000])
def test_identical_at_every_batch_size(batch: int) -> None:
    products = synthetic_products(600, seed=5) + edge_products()
    compare(FeatureConfig(), products, batch)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_unicode_edge_cases_are_identical(config: FeatureConfig) -> None:
    products = edge_products()
    compare(config, products, batch=5)
    compare(config, products, batch=len(products))


@pytest.mark.parametrize(
    "spec",
    [
        "bundlerec:products/bundlerec/electronic",
        "bundlerec:products/bundlerec/clothing",
        "amazon:products/amazon2018/meta_Magazine_Subscriptions.json.gz",
        "amazon:products/amazon2018/meta_Gift_Cards.json.gz",
    ],
)
def test_shared_dataset_products_are_identical(shared_data: Path, spec: str) -> None:
    kind, path = spec.split(":", 1)
    products = list(load_dataset(f"{kind}:{shared_data / path}").products)
    assert len(products) > 1000
    compare(FeatureConfig(), products)
    compare(CONFIGS["ngrams 2,3,5, truncated bags, quarter-weight descriptions"], products[:1500])


def test_reference_is_the_extraction_of_commit_a02873d() -> None:
    """The digest of the reference's features, computed with a02873d's own code: if the reference or
    the synthetic generator drifts, the comparisons above would prove nothing."""
    digest = hashlib.sha256()
    reference = ReferenceFeatureExtractor(FeatureConfig())
    products = synthetic_products(500, seed=1) + edge_products()
    features = reference.extract(products)
    for name in FIELDS:
        array = getattr(features, name)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    assert digest.hexdigest() == "546274189ad68321a87870d3465286c7a911778b85d8bdd838d5ffd53cec1d52"


texts = st.text(st.characters(codec="utf-8"), max_size=80)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(texts, texts, st.lists(texts, max_size=4), texts), min_size=1, max_size=6))
def test_generated_text_gives_identical_features(rows: list[tuple[str, str, list[str], str]]) -> None:
    products = [
        Product(f"g{i}", title, description, tuple(path), brand, brand)
        for i, (title, description, path, brand) in enumerate(rows)
    ]
    for config in (CONFIGS["default"], CONFIGS["every key in one bucket"]):
        compare(config, products)


@settings(max_examples=500, deadline=None)
@given(st.one_of(texts, st.text(st.characters(max_codepoint=127), max_size=80)))
def test_normalise_text_fast_path_matches_the_reference(text: str) -> None:
    expected = reference_normalise_text(text)
    assert normalise_text(text) == expected
    assert normalised_words(text) == [w.encode() for w in expected.split()]


def test_every_ascii_character_normalises_as_before() -> None:
    for code in range(128):
        text = f"a{chr(code)}B{chr(code)}"
        assert normalise_text(text) == reference_normalise_text(text), repr(chr(code))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=3 * LONG_SPAN), st.integers(0, 2**32 - 1)), max_size=40))
def test_crc32_spans_equals_zlib(spans: list[tuple[bytes, int]]) -> None:
    import zlib

    buffer = np.frombuffer(b"".join(data for data, _ in spans) or b"\0", dtype=np.uint8)
    lengths = np.array([len(data) for data, _ in spans], dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    seeds = np.array([seed for _, seed in spans], dtype=np.uint32)
    expected = [zlib.crc32(data, seed) for data, seed in spans]
    assert crc32_spans(buffer, starts, lengths, seeds).tolist() == expected
