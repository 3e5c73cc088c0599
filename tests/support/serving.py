"""Serving one index without a model: Similar by product id from vectors computed elsewhere."""

from __future__ import annotations

from vitrine.index.port import VectorIndex
from vitrine.serving.experiments import DEFAULT_VARIANT, ExperimentRouter, Variant
from vitrine.serving.registry import ModelRegistry, ServedModel, ServingSnapshot
from vitrine.serving.results import Task


def index_only_snapshot(
    index: VectorIndex, model_version: str, variant: str = DEFAULT_VARIANT
) -> ServingSnapshot:
    """Similar (and Inspire by MMR) from `index` as model "default", in one variant."""
    served = ServedModel("default", model_version, Task.SIMILAR.value, index)
    return ServingSnapshot(
        {"default": served}, ExperimentRouter([Variant(variant, similar="default", inspire="default")])
    )


def index_only_registry(
    index: VectorIndex, model_version: str, variant: str = DEFAULT_VARIANT
) -> ModelRegistry:
    """What a gRPC server serves `index_only_snapshot` from."""
    return ModelRegistry(index_only_snapshot(index, model_version, variant))
