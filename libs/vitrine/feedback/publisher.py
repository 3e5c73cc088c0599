"""For producers of interactions (a shop's front end, the simulator): keyed, idempotent, acknowledged.

    with InteractionPublisher.connect(KafkaSettings("broker:9092")) as events:
        events.click(unit_key=session, product_id="sku-1", recommendation_id=response.recommendation_id,
                     placement="pdp-similar")
        events.purchase(unit_key=session, product_id="sku-1", value=29.0, currency="EUR", order_id="o-17",
                        recommendation_id=response.recommendation_id)
        events.flush()

Event ids are random unless given (give your own stable id, e.g. the order line id, so a retry of your
own is recognised as the same event). docs/EVENTS.md ("Interactions") is the contract.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer

from vitrine.feedback.interactions import Interaction, InteractionType
from vitrine.stream.kafka import KafkaSettings, make_producer
from vitrine.stream.publisher import PublishReport


class InteractionPublisher:
    def __init__(self, producer: KafkaProducer, topic: str = "catalog.interactions") -> None:
        self._producer = producer
        self.topic = topic
        self._pending: list[tuple[str, Any]] = []
        self._report = PublishReport()

    @classmethod
    def connect(
        cls, settings: KafkaSettings, topic: str = "catalog.interactions", **producer_config: Any
    ) -> InteractionPublisher:
        return cls(make_producer(settings, **producer_config), topic)

    def publish(self, interaction: Interaction) -> None:
        future = self._producer.send(self.topic, key=interaction.key.encode(), value=interaction.to_bytes())
        self._pending.append((interaction.event_id, future))
        self._report.sent += 1

    def _outcome(self, kind: InteractionType, unit_key: str, product_id: str, **fields: Any) -> str:
        event_id = fields.pop("event_id", None) or uuid.uuid4().hex
        event_time = fields.pop("event_time", None) or datetime.now(UTC)
        self.publish(Interaction(event_id, unit_key, kind, event_time, product_id=product_id, **fields))
        return event_id

    def click(self, unit_key: str, product_id: str, recommendation_id: str = "", **fields: Any) -> str:
        return self._outcome(
            InteractionType.CLICK, unit_key, product_id, recommendation_id=recommendation_id, **fields
        )

    def add_to_cart(self, unit_key: str, product_id: str, recommendation_id: str = "", **fields: Any) -> str:
        return self._outcome(
            InteractionType.ADD_TO_CART, unit_key, product_id, recommendation_id=recommendation_id, **fields
        )

    def purchase(
        self,
        unit_key: str,
        product_id: str,
        value: float,
        currency: str,
        recommendation_id: str = "",
        quantity: int = 1,
        **fields: Any,
    ) -> str:
        return self._outcome(
            InteractionType.PURCHASE,
            unit_key,
            product_id,
            recommendation_id=recommendation_id,
            value=value,
            currency=currency,
            quantity=quantity,
            **fields,
        )

    def flush(self, timeout_s: float = 60.0) -> PublishReport:
        self._producer.flush(timeout=timeout_s)
        for event_id, future in self._pending:
            try:
                future.get(timeout=timeout_s)
                self._report.acknowledged += 1
            except Exception as e:
                self._report.failed.append((event_id, f"{type(e).__name__}: {e}"))
        self._pending.clear()
        return self._report

    def close(self) -> None:
        self.flush()
        self._producer.close()

    def __enter__(self) -> InteractionPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
