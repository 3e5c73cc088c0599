"""API requests → validated domain queries. Every limit of the API is enforced here, and every
violation is an InvalidRequestError whose message names the field and the allowed range."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vitrine.catalog.schema import Product
from vitrine.catalog.validation import ValidationLimits, validate_product
from vitrine.errors import InvalidEventError, InvalidRequestError
from vitrine.index.port import SearchFilter
from vitrine.serving.anchors import AnchorRef
from vitrine.serving.complementary import ComplementaryQuery
from vitrine.serving.inspire import InspireQuery, Strategy
from vitrine.serving.selection import Caps, RequestFilter
from vitrine.serving.similar import SimilarQuery
from vitrine.v1 import catalog_pb2
from vitrine.v1 import recommender_pb2 as pb


@dataclass(frozen=True)
class RequestLimits:
    default_limit: int = 10
    max_limit: int = 500
    max_id_chars: int = 256
    max_name_chars: int = 256  # categories, sellers, unit keys, variant names
    max_filter_values: int = 100  # per category / seller list
    max_exclude_ids: int = 1_000
    max_cap: int = 500
    max_target_categories: int = 20
    max_history: int = 100
    max_intent_chars: int = 1_000
    max_clusters: int = 16
    max_anchors: int = 20
    # clustered Inspire searches anchors x clusters lists: bound the fan-out a request can ask for
    max_cluster_searches: int = 64
    default_clusters: int = 3
    default_anchors: int = 5
    default_mmr_diversity: float = 0.5
    # an intent with no strategy set: its nearest items (MMR at diversity 0). One intent has one
    # meaning; chosen on validation intents (docs/EVALUATION.md: 1.6x the clustered list's recall@10)
    default_intent_mmr_diversity: float = 0.0
    max_batch: int = 32
    product: ValidationLimits = field(default_factory=ValidationLimits)


@dataclass(frozen=True, slots=True)
class Routing:
    unit_key: str = ""
    variant: str = ""
    placement: str = ""  # recorded with the list's impression; "" = the task's name


class RequestParser:
    def __init__(self, limits: RequestLimits | None = None) -> None:
        self.limits = limits or RequestLimits()
        # most requests set no filters: what an unset `filters` means is parsed once (it is immutable)
        self._no_filters = self._filters(pb.Filters())

    # -- per method -------------------------------------------------------------------------------

    def similar(self, r: pb.SimilarRequest) -> SimilarQuery:
        return SimilarQuery(self._anchor(r), self._limit(r.limit), self._request_filter(r))

    def complementary(self, r: pb.ComplementaryRequest) -> ComplementaryQuery:
        targets = self._names("target_categories", r.target_categories, self.limits.max_target_categories)
        return ComplementaryQuery(
            self._anchor(r), self._limit(r.limit), tuple(dict.fromkeys(targets)), self._request_filter(r)
        )

    def inspire(self, r: pb.InspireRequest) -> InspireQuery:
        lim = self.limits
        if r.history and r.intent:
            raise InvalidRequestError("give either history or intent, not both")
        if not r.history and not r.intent.strip():
            raise InvalidRequestError("history or intent is required")
        if len(r.history) > lim.max_history:
            raise InvalidRequestError(f"history has {len(r.history)} items; at most {lim.max_history}")
        if len(r.intent) > lim.max_intent_chars:
            raise InvalidRequestError(f"intent is longer than {lim.max_intent_chars} characters")
        d = r.diversity
        if d.strategy not in (
            pb.Diversity.STRATEGY_UNSPECIFIED,
            pb.Diversity.STRATEGY_CLUSTERS,
            pb.Diversity.STRATEGY_MMR,
        ):
            raise InvalidRequestError(f"diversity.strategy {d.strategy} is unknown")
        # an intent that names no strategy and no cluster knob gets its nearest items
        intent_default = (
            bool(r.intent)
            and d.strategy == pb.Diversity.STRATEGY_UNSPECIFIED
            and not (d.nearest_clusters or d.skip_clusters)
        )
        mmr = d.strategy == pb.Diversity.STRATEGY_MMR or intent_default
        strategy = Strategy.MMR if mmr else Strategy.CLUSTERS
        default_diversity = lim.default_intent_mmr_diversity if intent_default else lim.default_mmr_diversity
        diversity = d.mmr_diversity if d.HasField("mmr_diversity") else default_diversity
        if not (math.isfinite(diversity) and 0.0 <= diversity <= 1.0):
            raise InvalidRequestError(f"diversity.mmr_diversity must be in [0, 1], got {diversity}")
        nearest_clusters = self._count(
            "diversity.nearest_clusters", d.nearest_clusters, 1, lim.max_clusters, lim.default_clusters
        )
        max_anchors = self._count(
            "diversity.max_anchors", d.max_anchors, 1, lim.max_anchors, lim.default_anchors
        )
        if strategy is Strategy.CLUSTERS and nearest_clusters * max_anchors > lim.max_cluster_searches:
            raise InvalidRequestError(
                f"diversity.max_anchors x diversity.nearest_clusters = {max_anchors} x {nearest_clusters}: "
                f"at most {lim.max_cluster_searches} cluster searches per request"
            )
        return InspireQuery(
            history=self._history(r.history),
            intent=r.intent.strip(),
            limit=self._limit(r.limit),
            filters=self._request_filter(r),
            strategy=strategy,
            nearest_clusters=nearest_clusters,
            skip_clusters=self._count("diversity.skip_clusters", d.skip_clusters, 0, lim.max_clusters, 0),
            max_anchors=max_anchors,
            mmr_diversity=float(diversity),
        )

    def routing(self, unit_key: str, variant: str, placement: str = "") -> Routing:
        for name, value in (("unit_key", unit_key), ("variant", variant), ("placement", placement)):
            if len(value) > self.limits.max_name_chars:
                raise InvalidRequestError(f"{name} is longer than {self.limits.max_name_chars} characters")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in placement):
            raise InvalidRequestError("placement must not contain control characters")
        return Routing(unit_key, variant, placement)

    def batch_size(self, n: int) -> None:
        if not 1 <= n <= self.limits.max_batch:
            raise InvalidRequestError(f"a batch holds 1..{self.limits.max_batch} requests, got {n}")

    # -- parts ------------------------------------------------------------------------------------

    def product_id(self, product_id: str, name: str = "product_id") -> str:
        if not product_id:
            raise InvalidRequestError(f"{name} is required")
        if len(product_id) > self.limits.max_id_chars:
            raise InvalidRequestError(f"{name} is longer than {self.limits.max_id_chars} characters")
        return product_id

    def _anchor(self, r: Any) -> AnchorRef:
        if r.WhichOneof("anchor") == "product":
            # proto3 enums are open: any int32 arrives, and Product.from_proto would raise ValueError
            if r.product.availability not in catalog_pb2.Availability.values():
                raise InvalidRequestError(
                    f"product.availability {r.product.availability} is unknown; "
                    f"known: {', '.join(catalog_pb2.Availability.keys())}"
                )
            product = Product.from_proto("", r.product)
            try:
                validate_product(product, self.limits.product)
            except InvalidEventError as e:
                raise InvalidRequestError(f"product: {e.detail}") from e
            return AnchorRef(product=product)
        return AnchorRef(product_id=self.product_id(r.product_id, "product_id (or product)"))

    def _limit(self, limit: int) -> int:
        if limit == 0:
            return self.limits.default_limit
        if not 1 <= limit <= self.limits.max_limit:
            raise InvalidRequestError(f"limit must be between 1 and {self.limits.max_limit}, got {limit}")
        return limit

    @staticmethod
    def _count(name: str, value: int, low: int, high: int, default: int) -> int:
        if value == 0 and low > 0:
            return default
        if not low <= value <= high:
            raise InvalidRequestError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def _names(self, field: str, values: Sequence[str], most: int) -> tuple[str, ...]:
        if len(values) > most:
            raise InvalidRequestError(f"{field} has {len(values)} values; at most {most}")
        for v in values:
            if not v.strip() or len(v) > self.limits.max_name_chars:
                raise InvalidRequestError(
                    f"{field} values must be 1..{self.limits.max_name_chars} characters"
                )
        return tuple(values)

    def _request_filter(self, r: Any) -> RequestFilter:
        return self._filters(r.filters) if r.HasField("filters") else self._no_filters

    def _filters(self, f: pb.Filters) -> RequestFilter:
        lim = self.limits
        low = f.price_min if f.HasField("price_min") else None
        high = f.price_max if f.HasField("price_max") else None
        for name, value in (("price_min", low), ("price_max", high)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise InvalidRequestError(f"filters.{name} must be a finite number >= 0, got {value}")
        if low is not None and high is not None and low > high:
            raise InvalidRequestError(f"filters.price_min ({low}) is above filters.price_max ({high})")
        for id_ in f.exclude_product_ids:
            self.product_id(id_, "filters.exclude_product_ids values")
        if len(f.exclude_product_ids) > lim.max_exclude_ids:
            raise InvalidRequestError(
                f"filters.exclude_product_ids has {len(f.exclude_product_ids)} ids; at most {lim.max_exclude_ids}"
            )
        index = SearchFilter(
            in_stock_only=not f.include_out_of_stock,
            exclude_ids=tuple(f.exclude_product_ids),
            categories_include=self._names(
                "filters.categories_include", f.categories_include, lim.max_filter_values
            ),
            categories_exclude=self._names(
                "filters.categories_exclude", f.categories_exclude, lim.max_filter_values
            ),
            sellers_include=self._names("filters.sellers_include", f.sellers_include, lim.max_filter_values),
            sellers_exclude=self._names("filters.sellers_exclude", f.sellers_exclude, lim.max_filter_values),
            price_min=low,
            price_max=high,
        )
        caps = Caps(
            self._count("filters.max_per_seller", f.max_per_seller, 0, lim.max_cap, 0),
            self._count("filters.max_per_category", f.max_per_category, 0, lim.max_cap, 0),
        )
        return RequestFilter(index, caps)

    def _history(self, history: Sequence[pb.ViewedProduct]) -> tuple[str, ...]:
        """Product ids, most recent first, each once. Timestamped views are ordered by time (newest
        first) before untimed ones, which count in list order (later = more recent)."""
        keyed = []
        for position, view in enumerate(history):
            pid = self.product_id(view.product_id, "history.product_id")
            stamp = (view.viewed_at.seconds, view.viewed_at.nanos) if view.HasField("viewed_at") else None
            keyed.append(((stamp is not None, stamp or (0, 0), position), pid))
        keyed.sort(key=lambda k: k[0], reverse=True)
        return tuple(dict.fromkeys(pid for _, pid in keyed))
