"""ONNX export of the towers (only the towers: no loss, no training buffers) and the parity check.

The item tower takes the `Features` arrays (the names are the ONNX input names) and returns
L2-normalised vectors; the complementary query tower takes the same plus `target_category_id`; a
model with an intent tower also gets it exported (`vitrine.model.intent_export`).
Batch size and text length are dynamic.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vitrine.catalog.features import FeatureConfig, FeatureExtractor
from vitrine.catalog.schema import Product
from vitrine.errors import VitrineError
from vitrine.model.card import COMPLEMENTARY_QUERY_FILE, ITEM_TOWER_FILE, ModelCard
from vitrine.model.encoder import ProductEncoder, item_input_names
from vitrine.model.ensemble import EnsembleEncoder, EnsembleTask
from vitrine.model.tasks import ComplementaryTask, SimilarityTask
from vitrine.model.text_branch import ROLE, TEXT_ENCODER_DIR, sentence_vectors
from vitrine.model.train import feature_tensors

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4
OUTPUT_NAME = "vector"
TARGET_INPUT = "target_category_id"


class ExportError(VitrineError):
    code = "export_error"


# Explicit signatures (not *args / **kwargs): torch.export names and orders the ONNX inputs by them.


class HashedItemTower(nn.Module):
    def __init__(self, encoder: ProductEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(
        self,
        text_ids: Tensor,
        text_weights: Tensor,
        category_ids: Tensor,
        leaf_id: Tensor,
        price_bucket: Tensor,
        brand_id: Tensor,
        seller_id: Tensor,
    ) -> Tensor:
        return self.encoder(
            {
                "text_ids": text_ids,
                "text_weights": text_weights,
                "category_ids": category_ids,
                "leaf_id": leaf_id,
                "price_bucket": price_bucket,
                "brand_id": brand_id,
                "seller_id": seller_id,
            }
        )


class SentenceItemTower(nn.Module):
    def __init__(self, encoder: ProductEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(
        self,
        text_vec: Tensor,
        category_ids: Tensor,
        leaf_id: Tensor,
        price_bucket: Tensor,
        brand_id: Tensor,
        seller_id: Tensor,
    ) -> Tensor:
        return self.encoder(
            {
                "text_vec": text_vec,
                "category_ids": category_ids,
                "leaf_id": leaf_id,
                "price_bucket": price_bucket,
                "brand_id": brand_id,
                "seller_id": seller_id,
            }
        )


class HashedComplementaryQuery(nn.Module):
    def __init__(self, task: ComplementaryTask | EnsembleTask) -> None:
        super().__init__()
        self.tower = task.query_tower

    def forward(
        self,
        text_ids: Tensor,
        text_weights: Tensor,
        category_ids: Tensor,
        leaf_id: Tensor,
        price_bucket: Tensor,
        brand_id: Tensor,
        seller_id: Tensor,
        target_category_id: Tensor,
    ) -> Tensor:
        inputs = {
            "text_ids": text_ids,
            "text_weights": text_weights,
            "category_ids": category_ids,
            "leaf_id": leaf_id,
            "price_bucket": price_bucket,
            "brand_id": brand_id,
            "seller_id": seller_id,
        }
        return self.tower(inputs, target_category_id)


class SentenceComplementaryQuery(nn.Module):
    def __init__(self, task: ComplementaryTask | EnsembleTask) -> None:
        super().__init__()
        self.tower = task.query_tower

    def forward(
        self,
        text_vec: Tensor,
        category_ids: Tensor,
        leaf_id: Tensor,
        price_bucket: Tensor,
        brand_id: Tensor,
        seller_id: Tensor,
        target_category_id: Tensor,
    ) -> Tensor:
        inputs = {
            "text_vec": text_vec,
            "category_ids": category_ids,
            "leaf_id": leaf_id,
            "price_bucket": price_bucket,
            "brand_id": brand_id,
            "seller_id": seller_id,
        }
        return self.tower(inputs, target_category_id)


class HashedSentenceItemTower(nn.Module):
    def __init__(self, encoder: ProductEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(
        self,
        text_ids: Tensor,
        text_weights: Tensor,
        text_vec: Tensor,
        category_ids: Tensor,
        leaf_id: Tensor,
        price_bucket: Tensor,
        brand_id: Tensor,
        seller_id: Tensor,
    ) -> Tensor:
        return self.encoder(
            {
                "text_ids": text_ids,
                "text_weights": text_weights,
                "text_vec": text_vec,
                "category_ids": category_ids,
                "leaf_id": leaf_id,
                "price_bucket": price_bucket,
                "brand_id": brand_id,
                "seller_id": seller_id,
            }
        )


class HashedSentenceComplementaryQuery(nn.Module):
    def __init__(self, task: ComplementaryTask | EnsembleTask) -> None:
        super().__init__()
        self.tower = task.query_tower

    def forward(
        self,
        text_ids: Tensor,
        text_weights: Tensor,
        text_vec: Tensor,
        category_ids: Tensor,
        leaf_id: Tensor,
        price_bucket: Tensor,
        brand_id: Tensor,
        seller_id: Tensor,
        target_category_id: Tensor,
    ) -> Tensor:
        inputs = {
            "text_ids": text_ids,
            "text_weights": text_weights,
            "text_vec": text_vec,
            "category_ids": category_ids,
            "leaf_id": leaf_id,
            "price_bucket": price_bucket,
            "brand_id": brand_id,
            "seller_id": seller_id,
        }
        return self.tower(inputs, target_category_id)


_ITEM_TOWERS = {
    "hashed": HashedItemTower,
    "sentence": SentenceItemTower,
    "hashed+sentence": HashedSentenceItemTower,
}
_QUERY_TOWERS = {
    "hashed": HashedComplementaryQuery,
    "sentence": SentenceComplementaryQuery,
    "hashed+sentence": HashedSentenceComplementaryQuery,
}


def _item_module(encoder: ProductEncoder | EnsembleEncoder) -> nn.Module:
    return _ITEM_TOWERS[encoder.features.text_branch](encoder)


def _query_module(task: ComplementaryTask | EnsembleTask) -> nn.Module:
    return _QUERY_TOWERS[task.encoder.features.text_branch](task)


def _dynamic_shapes(names: Sequence[str], with_target: bool) -> tuple[dict[int, Any], ...]:
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    tokens = torch.export.Dim("tokens", min=1, max=4096)
    shapes: list[dict[int, Any]] = []
    for name in names:
        shapes.append({0: batch, 1: tokens} if name in ("text_ids", "text_weights") else {0: batch})
    if with_target:
        shapes.append({0: batch})
    return tuple(shapes)


def _export(
    module: nn.Module, args: tuple[Tensor, ...], names: Sequence[str], path: Path, target: bool
) -> None:
    module.eval()
    input_names = [*names, TARGET_INPUT] if target else list(names)
    with _quiet_exporter(), warnings.catch_warnings():
        # the exporter warns that each named axis "shares the same shape constraints": expected here
        warnings.filterwarnings("ignore", message=".*shares the same shape constraints.*")
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            input_names=input_names,
            output_names=[OUTPUT_NAME],
            dynamic_shapes=_dynamic_shapes(names, target),
            external_data=False,
            optimize=True,
            verbose=False,
        )
        if program is None:
            raise ExportError("torch.onnx.export returned no program")
        program.save(str(path), external_data=False)


# The exporter's libraries log every optimisation pass at INFO (~20 lines a tower), and torch's
# registry warns that torchvision, which the towers never use, is missing: noise in `vitrine export`.
_EXPORTER_LOGGERS = {
    "onnx_ir": logging.WARNING,
    "onnxscript": logging.WARNING,
    "torch.onnx": logging.WARNING,
    "torch.onnx._internal.exporter._registration": logging.ERROR,
}


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    loggers = {name: logging.getLogger(name) for name in _EXPORTER_LOGGERS}
    before = {name: logger.level for name, logger in loggers.items()}
    try:
        for name, logger in loggers.items():
            logger.setLevel(max(_EXPORTER_LOGGERS[name], logger.getEffectiveLevel()))
        yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(before[name])


def example_inputs(
    products: Sequence[Product], features: FeatureConfig, text_vec: np.ndarray | None = None
) -> dict[str, Tensor]:
    extracted = FeatureExtractor(features).extract(products)
    tensors = feature_tensors(extracted, text_vec)
    return {name: tensors[name] for name in item_input_names(features)}


@dataclass(frozen=True, slots=True)
class ParityResult:
    tower: str
    max_abs_diff: float
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"tower": self.tower, "max_abs_diff": self.max_abs_diff, "rows": self.rows}


def _ort_session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check_parity(
    module: nn.Module, path: Path, inputs: dict[str, Tensor], target: Tensor | None, name: str
) -> ParityResult:
    """Max |torch - onnxruntime| on the given rows, at full batch and at batch 1."""
    session = _ort_session(path)
    worst = 0.0
    for rows in (slice(None), slice(0, 1)):
        args = [t[rows] for t in inputs.values()]
        feeds = {k: t[rows].numpy() for k, t in inputs.items()}
        if target is not None:
            args.append(target[rows])
            feeds[TARGET_INPUT] = target[rows].numpy()
        with torch.no_grad():
            expected = module(*args).numpy()
        got = session.run([OUTPUT_NAME], feeds)[0]
        worst = max(worst, float(np.abs(expected - got).max()))
    result = ParityResult(name, worst, int(next(iter(inputs.values())).shape[0]))
    if worst >= PARITY_TOLERANCE:
        raise ExportError(f"{name}: onnxruntime differs from torch by {worst:.2e} (>= {PARITY_TOLERANCE})")
    return result


def export_model(
    card: ModelCard,
    task: SimilarityTask | EnsembleTask,
    products: Sequence[Product],
    model_dir: Path,
    text_encoder: Any = None,
) -> dict[str, Any]:
    """Write the ONNX towers into `model_dir`, check parity on `products`; returns the card's export record."""
    if not products:
        raise ExportError("export needs some real products for the parity check")
    started = time.perf_counter()
    features = FeatureConfig.from_dict(card.features)
    names = item_input_names(features)
    sample = list(products[:256])
    text_vec = sentence_vectors(sample, features, text_encoder) if features.uses_sentence else None
    inputs = example_inputs(sample, features, text_vec)
    task.eval()
    item = _item_module(task.encoder)
    files = {"item_tower": ITEM_TOWER_FILE}
    _export(item, tuple(inputs.values()), names, model_dir / ITEM_TOWER_FILE, target=False)
    parity = [check_parity(item, model_dir / ITEM_TOWER_FILE, inputs, None, "item_tower")]
    if task.complementary:
        extractor = FeatureExtractor(features)
        targets = [_some_target(card, p) for p in sample]
        target = torch.from_numpy(extractor.target_category_ids(targets))
        query = _query_module(task)
        path = model_dir / COMPLEMENTARY_QUERY_FILE
        _export(query, (*inputs.values(), target), names, path, target=True)
        parity.append(check_parity(query, path, inputs, target, "query_tower_complementary"))
        files["query_tower_complementary"] = COMPLEMENTARY_QUERY_FILE
    if features.uses_sentence:
        files["text_encoder"] = TEXT_ENCODER_DIR
        parity.append(
            _export_text_encoder(features, sample, model_dir / TEXT_ENCODER_DIR, inputs["text_vec"])
        )
    if card.intent:
        from vitrine.model.intent_export import export_intent_tower

        intent_files, intent_parity = export_intent_tower(card, model_dir, [p.title for p in sample])
        files.update(intent_files)
        parity.extend(intent_parity)
    for result in parity:
        log.info("parity %s: max abs diff %.2e on %d rows", result.tower, result.max_abs_diff, result.rows)
    return {
        "files": files,
        "inputs": list(names),
        "output": OUTPUT_NAME,
        "target_input": TARGET_INPUT,
        "parity": [r.to_dict() for r in parity],
        "parity_tolerance": PARITY_TOLERANCE,
        "onnxruntime": _ort_version(),
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _export_text_encoder(
    features: FeatureConfig, sample: Sequence[Product], out_dir: Path, expected: Tensor
) -> ParityResult:
    """ONNX export of the sentence encoder for serving, checked against the vectors training used."""
    from vitrine.text import TextEmbedder, export_text_encoder

    export_text_encoder(features.sentence_encoder, out_dir)
    extractor = FeatureExtractor(features)
    got = TextEmbedder(out_dir, role=ROLE).encode([extractor.sentence_text(p) for p in sample])
    worst = float(np.abs(got - expected.numpy()).max())
    if worst >= PARITY_TOLERANCE:
        raise ExportError(f"text encoder: onnxruntime differs from sentence-transformers by {worst:.2e}")
    return ParityResult("text_encoder", worst, len(sample))


def _some_target(card: ModelCard, product: Product) -> str:
    """A realistic target category for a parity row: the product's first mapped target, else "" (any
    category: the query that serves a product when the caller names none)."""
    targets = card.complementary_map.get(product.leaf_category) or [""]
    return targets[0]


def _ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)
