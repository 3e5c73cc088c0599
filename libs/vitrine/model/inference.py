"""Serving side of a model directory: ONNX towers + the exact training preprocessing. No torch.

    model = load_inference_model("artifacts/models/similar")
    vectors = model.encode_items(products)          # float32 [n, dim], L2-normalised
    clusters = model.assign_clusters(vectors)       # int32 [n], -1 without centroids
    queries = model.encode_complementary_queries(products, ["Laptop Bags", ...])  # complementary only
    intents = model.encode_intents(["gift for a runner"])  # models with an intent tower (model.intent)

Only numpy, onnxruntime and the torch-free feature code are imported here: the encoder and the
recommender services load this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitrine.catalog.features import FeatureConfig, FeatureExtractor, Features
from vitrine.catalog.schema import Product
from vitrine.errors import DataError
from vitrine.model.card import (
    CENTROIDS_FILE,
    COMPLEMENTARY_QUERY_FILE,
    ITEM_TOWER_FILE,
    ModelCard,
    read_card,
)
from vitrine.model.category_map import CategoryPrior
from vitrine.model.clusters import nearest_centroid
from vitrine.model.config import RetrievalConfig
from vitrine.model.intent_serving import IntentEncoder, IntentRescoring, has_intent_export
from vitrine.model.lexical import LEXICAL_FILE, ProductTfidf
from vitrine.model.prior import read_prior
from vitrine.threads import onnx_session_options

OUTPUT_NAME = "vector"
TEXT_ENCODER_DIR = "text_encoder"
TARGET_INPUT = "target_category_id"


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    if not path.is_file():
        raise DataError(f"no ONNX tower at {path}; run `vitrine export --model {path.parent}` first")
    options = onnx_session_options(threads)
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class InferenceModel:
    """One model version's towers, ready to encode products and complementary queries."""

    def __init__(
        self,
        model_dir: Path,
        card: ModelCard,
        threads: int = 0,
        text_encoder: Any = None,
        intent_tower: bool = True,
        intent_rescoring: bool | IntentRescoring = True,
    ) -> None:
        self.model_dir = model_dir
        self.card = card
        self.model_version: str = card.model_version
        self.task: str = card.task
        self.dim: int = int(card.dim)
        self.untrained: bool = bool(card.untrained)
        self.complementary_map: dict[str, list[str]] = {k: list(v) for k, v in card.complementary_map.items()}
        self.category_prior = CategoryPrior.from_dict(card.category_prior) if card.category_prior else None
        self.prior_version = ""  # "" = the card's own map; else a refreshed DIR/complementary_prior.json
        self.refresh_prior()
        # the training softmax temperature: tower scores / temperature are logits comparable to log-priors
        self.temperature = float(card.train.get("temperature", 1.0))
        # complementary serving: hybrid re-scoring of the tower's candidates by TF-IDF (a card from
        # before `lexical_text` existed has a title idf table)
        self.retrieval = (
            RetrievalConfig.from_dict({"lexical_text": "title", **card.retrieval})
            if card.retrieval
            else RetrievalConfig(0.0)
        )
        lexical_path = model_dir / card.files.get("lexical", LEXICAL_FILE)
        self.lexical: ProductTfidf | None = (
            ProductTfidf.load(lexical_path) if lexical_path.is_file() else None
        )
        self.features = FeatureConfig.from_dict(card.features)
        self.extractor = FeatureExtractor(self.features)
        files = {"item_tower": ITEM_TOWER_FILE, **card.export.get("files", {})}
        self._item = _session(model_dir / files["item_tower"], threads)
        self._input_names = [i.name for i in self._item.get_inputs()]
        self._query = None
        if self.task == "complementary":
            name = files.get("query_tower_complementary", COMPLEMENTARY_QUERY_FILE)
            self._query = _session(model_dir / name, threads)
        centroids_path = model_dir / card.files.get("centroids", CENTROIDS_FILE)
        self.centroids: np.ndarray | None = (
            np.load(centroids_path).astype(np.float32) if centroids_path.is_file() else None
        )
        # free text → item space; None when the model has none (or intent_tower=False)
        self.intent: IntentEncoder | None = (
            IntentEncoder(model_dir, card, threads, intent_rescoring)
            if intent_tower and has_intent_export(model_dir, card)
            else None
        )
        self._text_encoder = text_encoder
        if self.features.uses_sentence and self._text_encoder is None:
            self._text_encoder = _load_text_embedder(
                model_dir / files.get("text_encoder", TEXT_ENCODER_DIR), threads
            )

    # --- inputs ---------------------------------------------------------------------------------
    def _feeds(self, products: Sequence[Product]) -> dict[str, np.ndarray]:
        features: Features = self.extractor.extract(products)
        feeds = features.to_feeds()
        if self.features.uses_sentence:
            texts = [self.extractor.sentence_text(p) for p in products]
            # complementary queries repeat a product once per target category: encode each text once
            unique = list(dict.fromkeys(texts))
            vectors = np.asarray(self._text_encoder.encode(unique), dtype=np.float32)
            row = {text: i for i, text in enumerate(unique)}
            feeds["text_vec"] = vectors[[row[t] for t in texts]]
        return {name: feeds[name] for name in self._input_names if name in feeds}

    def complementary_targets(self, leaf: str, n: int) -> list[tuple[str, float]]:
        """Up to `n` target leaf categories for a product in `leaf`, with P(target | leaf), best first.

        From the smoothed co-purchase prior when the model has one (it ranks every target leaf seen
        in training, so even a leaf without co-purchases gets targets), else the ranked
        `complementary_map` with equal weights.
        """
        if self.category_prior is not None:
            return self.category_prior.targets(leaf, n)
        targets = self.complementary_map.get(leaf, [])[:n]
        return [(t, 1.0 / len(targets)) for t in targets]

    def refresh_prior(self) -> bool:
        """Swap in a newer `complementary_prior.json` (vitrine.model.prior) if there is one; True if it
        changed. Requests read the map once, so each sees either the old or the new one."""
        prior = read_prior(self.model_dir)
        if prior is None or prior.version == self.prior_version:
            return False
        category_prior = CategoryPrior.from_dict(prior.category_prior) if prior.category_prior else None
        self.complementary_map = prior.complementary_map
        self.category_prior = category_prior
        self.prior_version = prior.version
        return True

    # --- contract -------------------------------------------------------------------------------
    def encode_items(self, products: Sequence[Product]) -> np.ndarray:
        """float32 [n, dim], L2-normalised item vectors (n may be 0)."""
        if len(products) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._item.run([OUTPUT_NAME], self._feeds(products))[0], dtype=np.float32)

    def indexed_description(self, product: Product) -> str:
        """The start of the description the towers read: the index keeps it, so a request by id
        encodes the product exactly as the item tower did (`FeatureExtractor.indexed_description`)."""
        return self.extractor.indexed_description(product)

    def assign_clusters(self, vectors: np.ndarray) -> np.ndarray:
        """int32 [n]: nearest k-means centroid of each vector; -1 when the model has no centroids."""
        return nearest_centroid(np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim), self.centroids)

    def encode_complementary_queries(
        self, products: Sequence[Product], target_categories: Sequence[str]
    ) -> np.ndarray:
        """float32 [n, dim] query vectors: "what in `target_categories[i]` goes with `products[i]`"."""
        if self._query is None:
            raise ValueError(
                f"complementary queries need a model with task 'complementary', this one is {self.task!r}"
            )
        if len(products) != len(target_categories):
            raise ValueError(f"{len(products)} products but {len(target_categories)} target categories")
        if len(products) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        feeds = self._feeds(products)
        feeds[TARGET_INPUT] = self.extractor.target_category_ids(target_categories)
        return np.asarray(self._query.run([OUTPUT_NAME], feeds)[0], dtype=np.float32)

    def encode_intents(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [n, dim] item-space vectors of free-text intents, from the intent tower."""
        if self.intent is None:
            raise ValueError(f"model {self.model_version} has no intent tower (vitrine train --task intent)")
        return self.intent.encode(list(texts))


def _load_text_embedder(path: Path, threads: int) -> Any:
    """The onnxruntime sentence encoder (`vitrine.text.TextEmbedder`) exported into the model directory."""
    from vitrine.text.embedder import TextEmbedder

    if not path.is_dir():
        raise DataError(f"no text encoder export at {path}; run `vitrine export --model {path.parent}`")
    return TextEmbedder(path, role="query", threads=threads)


def load_inference_model(
    model_dir: str | Path,
    threads: int = 0,
    intent_tower: bool = True,
    intent_rescoring: bool | IntentRescoring = True,
) -> InferenceModel:
    """Load `DIR/model.json` and the ONNX towers written by `vitrine export` (`intent_tower=False`
    leaves an exported intent tower out; `intent_rescoring=False` serves its vector alone, an
    `IntentRescoring` overrides the card's)."""
    path = Path(model_dir)
    return InferenceModel(
        path, read_card(path), threads=threads, intent_tower=intent_tower, intent_rescoring=intent_rescoring
    )
