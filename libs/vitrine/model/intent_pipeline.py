"""`vitrine train --task intent --model DIR`: add an intent tower to a trained model, in place.

The model's item tower, weights and `model_version` stay as they are (the index holds that
version's vectors, so it needs no rebuild); what is added is `DIR/intent_tower.pt` and the card's
`intent` section (configuration, split, data, validation history, an intent version of its own).
`vitrine export --model DIR` then writes `DIR/intent_tower.onnx` and the sentence encoder next to it.
With re-scoring on (the default), `DIR/intent_lexical.json` holds the idf table of the catalogue's
titles + category paths, and the card's `intent.rescoring` its depth and weight
(`vitrine.model.intent_serving.IntentRescoring`).

Steps: the dataset's bundle intents (`vitrine.data.intents`, split by normalised intent text), the
catalogue's item vectors from the model's own item tower (what the encoder service writes to the
index), sentence vectors of the intents and of the catalogue titles (cached), training
(`vitrine.model.intent`), and the card.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitrine.catalog.schema import Product
from vitrine.data.datasets import DatasetSpec, load_dataset
from vitrine.data.intents import IntentSplitConfig, intent_queries, split_intents
from vitrine.errors import DataError
from vitrine.model.artifacts import load_task
from vitrine.model.card import INTENT_LEXICAL_FILE, INTENT_WEIGHTS_FILE, ModelCard
from vitrine.model.intent import IntentConfig, IntentTower, examples_from, train_intent_tower
from vitrine.model.intent_serving import IntentRescoring
from vitrine.model.lexical import ProductTfidf, intent_lexical_text
from vitrine.model.train import encode_all
from vitrine.text.cache import DEFAULT_CACHE, encode_cached

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IntentSetup:
    model_dir: Path
    spec: DatasetSpec
    config: IntentConfig = field(default_factory=IntentConfig)
    split: IntentSplitConfig = field(default_factory=IntentSplitConfig)
    cache_dir: Path | None = DEFAULT_CACHE
    rescoring: IntentRescoring | None = field(default_factory=IntentRescoring)  # None: the vector alone


def catalogue_vectors(model_dir: Path, products: tuple[Product, ...]) -> tuple[ModelCard, np.ndarray]:
    """The model's item vectors of `products` from its trained item tower (torch): the vectors the
    encoder service writes for them (the export's parity check holds ONNX to these within 1e-4)."""
    from vitrine.catalog.features import FeatureConfig
    from vitrine.model.pipeline import prepare_features

    card, task = load_task(model_dir)
    store = prepare_features(products, FeatureConfig.from_dict(card.features))
    return card, encode_all(task, store).numpy()


def load_intent_tower(model_dir: Path, card: ModelCard) -> tuple[IntentConfig, IntentTower]:
    """The trained intent tower of a model directory (eval mode)."""
    record = card.intent
    if not record:
        raise DataError(
            f"the model in {model_dir} has no intent tower (vitrine train --task intent --model DIR)"
        )
    config = IntentConfig.from_dict(record["config"])
    tower = IntentTower(int(record["text_dim"]), int(card.dim), config.hidden_dim, config.dropout)
    path = Path(model_dir) / card.files.get("intent_weights", INTENT_WEIGHTS_FILE)
    if not path.is_file():
        raise DataError(f"no intent tower weights at {path}")
    tower.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    tower.eval()
    return config, tower


def run_intent_training(setup: IntentSetup) -> ModelCard:
    started = time.perf_counter()
    config = setup.config
    dataset = load_dataset(setup.spec)
    products = dataset.products
    index = {p.product_id: i for i, p in enumerate(products)}
    splits = split_intents(intent_queries(dataset), setup.split)
    counts = {k: len(v) for k, v in splits.items()}
    log.info("intents: %s", counts)
    if len(splits["train"]) < 2:
        raise DataError(
            f"{setup.spec.label} has {counts['train']} training intents; the intent tower needs bundles "
            "with a free-text intent (BundleRec's bundle_intent.csv)"
        )
    card, items = catalogue_vectors(setup.model_dir, products)
    log.info("item vectors of %d products from %s (%s)", len(products), setup.model_dir, card.model_version)

    from vitrine.text.encoders import load_sentence_encoder

    encoder = load_sentence_encoder(config.text_encoder)

    def vectors(texts: list[str]) -> np.ndarray:
        return encode_cached(config.text_encoder, texts, "query", setup.cache_dir, encoder)

    train = examples_from(
        vectors([q.text for q in splits["train"]]), [q.items for q in splits["train"]], index
    )
    val = examples_from(vectors([q.text for q in splits["val"]]), [q.items for q in splits["val"]], index)
    catalogue = vectors([p.title for p in products]) if config.distill_weight > 0 else None
    text_dim = int(train.text_vec.shape[1])
    tower = IntentTower(text_dim, int(card.dim), config.hidden_dim, config.dropout)
    result = train_intent_tower(tower, train, val, items, config, catalogue)

    buffer = io.BytesIO()
    torch.save(tower.state_dict(), buffer)
    weights = buffer.getvalue()
    (setup.model_dir / INTENT_WEIGHTS_FILE).write_bytes(weights)
    card.files["intent_weights"] = INTENT_WEIGHTS_FILE
    rescoring = setup.rescoring if setup.rescoring and setup.rescoring.lexical_weight > 0 else None
    if rescoring is not None:
        ProductTfidf.fit(intent_lexical_text(p.title, p.category_path) for p in products).save(
            setup.model_dir, INTENT_LEXICAL_FILE
        )
        card.files["intent_lexical"] = INTENT_LEXICAL_FILE
    else:
        card.files.pop("intent_lexical", None)
    card.intent = {
        # the model_version names the item space (and the index); the intent tower has its own
        "version": f"intent-{datetime.now(UTC):%Y%m%d%H%M%S}-{hashlib.sha256(weights).hexdigest()[:8]}",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "text_dim": text_dim,
        **({"rescoring": rescoring.to_dict()} if rescoring is not None else {}),
        "split": {**setup.split.to_dict(), "intents": counts},
        "dataset": _dataset_record(setup.spec, dataset.reports),
        "metrics": {
            "best_epoch": result.best_epoch,
            "val_recall@10": result.best_val_recall,
            "stopped_early": result.stopped_early,
            "history": result.history,
            "train_seconds": result.seconds,
            "total_seconds": round(time.perf_counter() - started, 1),
        },
    }
    card.save(setup.model_dir)
    log.info("intent tower for %s written in %.1fs", card.model_version, time.perf_counter() - started)
    return card


def _dataset_record(spec: DatasetSpec, reports: Any) -> dict[str, Any]:
    path = spec.path if spec.kind == "synthetic" else str(Path(spec.path).resolve())
    return {"spec": spec.label, "kind": spec.kind, "path": path, "reports": [r.to_dict() for r in reports]}
