"""Feature extraction: hashed text bag, hierarchical category ids, price buckets, brand/seller buckets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitrine.catalog.features import FeatureConfig, FeatureExtractor, pad_features, stable_bucket
from vitrine.catalog.schema import Product


def product(**overrides: object) -> Product:
    fields: dict[str, object] = {
        "product_id": "p1",
        "title": "Nexon Wireless Mouse M210",
        "description": "",
        "category_path": ("Electronics", "Computers", "Computer Mice"),
        "brand": "Nexon",
        "seller": "seller-01",
        "price": 24.99,
        "currency": "EUR",
    }
    fields.update(overrides)
    return Product(**fields)  # type: ignore[arg-type]


@pytest.fixture
def extractor() -> FeatureExtractor:
    return FeatureExtractor(FeatureConfig())


def test_stable_bucket_is_deterministic_and_never_padding() -> None:
    # CRC-32 of fixed strings: the same in every process, so serving reproduces training features
    assert stable_bucket("w:mouse", 1 << 17) == stable_bucket("w:mouse", 1 << 17)
    buckets = {stable_bucket(f"w:{i}", 16) for i in range(500)}
    assert 0 not in buckets
    assert buckets == set(range(1, 16))


def test_text_tokens_cover_words_bigrams_char_ngrams_and_description(extractor: FeatureExtractor) -> None:
    tokens = extractor.text_tokens(product(title="Wireless Mouse", description="Quiet clicks"))
    assert tokens["w:wireless"] == 1.0 and tokens["w:mouse"] == 1.0
    assert tokens["b:wireless mouse"] == 1.0
    assert "c:<mo" in tokens and "c:se>" in tokens  # boundary-marked char 3-grams
    assert tokens["d:quiet"] == FeatureConfig().description_weight


def test_text_is_normalised_before_hashing(extractor: FeatureExtractor) -> None:
    a = extractor.extract([product(title="Café  MOUSE!")])
    b = extractor.extract([product(title="cafe mouse")])
    np.testing.assert_array_equal(a.text_ids, b.text_ids)
    np.testing.assert_allclose(a.text_weights, b.text_weights)


def test_text_weights_are_sqrtn_normalised_and_padded(extractor: FeatureExtractor) -> None:
    features = extractor.extract([product(title="mouse"), product(title="wireless gaming mouse pad")])
    assert features.text_ids.shape == features.text_weights.shape
    for row in range(2):
        nonzero = features.text_weights[row][features.text_ids[row] != 0]
        assert math.isclose(float(np.sqrt((nonzero**2).sum())), 1.0, rel_tol=1e-5)
    # the shorter title is right-padded with id 0 and weight 0
    short = int((features.text_ids[0] != 0).sum())
    assert short < features.text_ids.shape[1]
    assert (features.text_ids[0, short:] == 0).all() and (features.text_weights[0, short:] == 0).all()


def test_max_text_tokens_truncates() -> None:
    extractor = FeatureExtractor(FeatureConfig(max_text_tokens=5))
    features = extractor.extract([product(title="one two three four five six seven eight")])
    assert features.text_ids.shape[1] == 5


def test_category_prefixes_share_the_table_and_leaf_name_matches_target_id(
    extractor: FeatureExtractor,
) -> None:
    mouse = extractor.category_ids(("Electronics", "Computers", "Computer Mice"))
    keyboard = extractor.category_ids(("Electronics", "Computers", "Keyboards"))
    assert len(mouse) == 3
    assert mouse[:2] == keyboard[:2]  # shared ancestors get the same ids
    assert mouse[2] != keyboard[2]
    # the item's leaf-name id is the id a complementary query uses for that target category
    features = extractor.extract([product()])
    assert features.leaf_id[0] == extractor.target_category_ids(["Computer Mice"])[0]


def test_deep_paths_fold_but_keep_the_leaf() -> None:
    extractor = FeatureExtractor(FeatureConfig(max_category_levels=3))
    path = ("A", "B", "C", "D", "E")
    ids = extractor.category_ids(path)
    assert len(ids) == 3
    assert ids[-1] == FeatureExtractor(FeatureConfig()).category_ids(path)[-1]


def test_price_buckets_are_log_spaced_monotone_and_missing_is_zero(extractor: FeatureExtractor) -> None:
    assert extractor.price_bucket(None) == 0
    assert extractor.price_bucket(float("nan")) == 0
    assert extractor.price_bucket(-1.0) == 0
    buckets = [extractor.price_bucket(p) for p in (0.0, 1.0, 10.0, 100.0, 1000.0, 10_000.0, 1e9)]
    assert buckets == sorted(buckets)
    assert buckets[0] >= 1 and buckets[-1] == FeatureConfig().price_buckets - 1
    # log spacing: x10 in price moves the same number of buckets at every scale (within rounding)
    steps = np.diff(buckets[2:6])
    assert steps.max() - steps.min() <= 1


def test_brand_and_seller_hash_unseen_values_and_empty_is_zero(extractor: FeatureExtractor) -> None:
    assert extractor.brand_id("") == 0 and extractor.seller_id("  ") == 0
    assert extractor.brand_id("Nexon") == extractor.brand_id("NEXON")
    assert 0 < extractor.brand_id("a brand nobody has seen") < FeatureConfig().brand_buckets


def test_extract_shapes_and_dtypes(extractor: FeatureExtractor) -> None:
    products = [product(), product(product_id="p2", title="", category_path=(), brand="", price=None)]
    features = extractor.extract(products)
    assert len(features) == 2
    assert features.category_ids.shape == (2, FeatureConfig().max_category_levels)
    assert features.text_ids.dtype == np.int64 and features.text_weights.dtype == np.float32
    assert features.category_ids[1].sum() == 0 and features.leaf_id[1] == 0
    assert features.price_bucket[1] == 0 and features.brand_id[1] == 0
    assert set(features.to_feeds()) == {
        "text_ids",
        "text_weights",
        "category_ids",
        "leaf_id",
        "price_bucket",
        "brand_id",
        "seller_id",
    }


def test_empty_batch(extractor: FeatureExtractor) -> None:
    features = extractor.extract([])
    assert len(features) == 0
    assert features.text_ids.shape == (0, 1)


def test_pad_features_concatenates_batches_of_different_widths(extractor: FeatureExtractor) -> None:
    a = extractor.extract([product(title="mouse")])
    b = extractor.extract([product(title="a much longer wireless gaming mouse title")])
    both = pad_features([a, b])
    assert len(both) == 2
    np.testing.assert_array_equal(both.text_ids[1], b.text_ids[0])
    np.testing.assert_array_equal(both.select([0]).text_ids[0, : a.text_ids.shape[1]], a.text_ids[0])


def test_config_json_round_trip_and_validation() -> None:
    config = FeatureConfig(text_buckets=1024, char_ngrams=(3, 4))
    assert FeatureConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="hashed"):
        FeatureConfig(text_branch="bert")
    with pytest.raises(ValueError, match="unknown FeatureConfig fields"):
        FeatureConfig.from_dict({"nope": 1})


# characters that make cutting text tricky: Unicode spaces, punctuation that normalises to a word
# break, accents and combining marks, characters that fold or decompose into several
_ALPHABET = [*"ab cdE-.,'", "\t", "\n", "\xa0", "\u3000", "\u2028", "\x1c", "é", "\u0301", "ß", "\u00a8", "⑴"]


def _random_text(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(_ALPHABET, size=n))


@pytest.mark.parametrize(
    "config",
    [
        FeatureConfig(),
        FeatureConfig(max_description_words=5),
        FeatureConfig(
            text_branch="hashed+sentence", sentence_encoder="x", sentence_dim=4, sentence_context=True
        ),
        FeatureConfig(text_branch="sentence", sentence_encoder="x", sentence_dim=4),
    ],
    ids=["hashed", "hashed-5-words", "hashed+sentence-context", "sentence-title-only"],
)
def test_indexed_description_keeps_everything_the_features_read(config: FeatureConfig) -> None:
    """Catches an index payload that loses description text the towers read: a product rebuilt from
    `indexed_description` must give the same hashed bag and the same sentence text as the product."""
    extractor = FeatureExtractor(config)
    rng = np.random.default_rng(7)
    shortened = 0
    for case in range(300):
        description = _random_text(rng, int(rng.integers(0, 900)))
        full = product(description=description, title="" if case % 4 == 0 else "Nexon Mouse")
        cut = full.description[: len(extractor.indexed_description(full))]
        assert cut == extractor.indexed_description(full)  # a prefix of the description
        rebuilt = product(description=cut, title=full.title)
        if config.uses_hashed:
            assert extractor.text_tokens(rebuilt) == extractor.text_tokens(full), repr(description)
        if config.uses_sentence:
            assert extractor.sentence_text(rebuilt) == extractor.sentence_text(full), repr(description)
        shortened += len(cut) < len(description)
    assert shortened > 100  # long descriptions are cut: the payload stays small


def test_indexed_description_is_empty_when_no_feature_reads_it() -> None:
    config = FeatureConfig(max_description_words=0)
    assert FeatureExtractor(config).indexed_description(product(description="long text " * 50)) == ""
    # the old payload (no description) does not reproduce the features: what the cut is for
    extractor = FeatureExtractor(FeatureConfig())
    full = product(description="Leather strap, fits every 42 mm case")
    assert extractor.text_tokens(product(description="")) != extractor.text_tokens(full)
    assert extractor.indexed_description(full) == full.description
