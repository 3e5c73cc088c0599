"""Typed configuration of the Product Encoder and of training, with a JSON round trip (no torch here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from vitrine.model.lexical import LEXICAL_TEXTS

T = TypeVar("T")

TASKS = ("similar", "complementary")


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; allowed: {sorted(known)}")
    return cls(**data)


# ensemble size of a trained complementary model (the `vitrine train` default), chosen on served
# validation recall of every shared domain (docs/EVALUATION.md, Choices)
COMPLEMENTARY_MEMBERS = 4


@dataclass(frozen=True, slots=True)
class EncoderConfig:
    """Sizes of the Product Encoder's embeddings and MLP (bucket counts come from FeatureConfig)."""

    text_dim: int = 64
    category_dim: int = 32
    price_dim: int = 8
    brand_dim: int = 16
    seller_dim: int = 8
    hidden_dim: int = 256
    dim: int = 64
    dropout: float = 0.1
    token_dropout: float = 0.25  # hashed text branch: share of tokens dropped per training example
    init_std: float = 0.0  # text / brand / seller tables (see encoder._init_table)
    # independently trained towers served as one (vitrine.model.ensemble); vectors are dim x members
    members: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("dropout", "token_dropout"):
                if not 0.0 <= value < 1.0:
                    raise ValueError(f"{f.name} must be in [0, 1), got {value}")
            elif f.name == "init_std":
                if value < 0:
                    raise ValueError(f"init_std must be >= 0, got {value}")
            elif value < 1:
                raise ValueError(f"{f.name} must be positive, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        return _from_dict(cls, data)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Optimisation and loss settings; the defaults train the synthetic demo in well under a minute."""

    task: str = "similar"
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    temperature: float = 0.1
    uniform_negatives: int = 256  # uniformly sampled catalogue items per batch (mixed negatives)
    logq_correction: bool = True
    # share of the logQ correction applied (1 = full, Yi et al.; below 1 the tower keeps part of
    # the popularity the in-batch sampling removes)
    logq_weight: float = 1.0
    # complementary: the target-category reconstruction loss of the conditional query (0 = off: it
    # reconstructs the category the tower was just given, and did not help served recall)
    aux_weight: float = 0.0
    # complementary: weight of the conditional query's loss (true target leaf given) next to the
    # "any category" query's, which is what serves a product when the caller names no category
    conditional_weight: float = 0.5
    # complementary: mask in-batch false negatives (other training partners of the query) and the
    # query's own leaf (serving never returns it, so training need not push it down)
    mask_known_partners: bool = True
    patience: int = 3  # epochs without validation improvement before stopping
    eval_k: int = 50  # early stopping watches validation recall@eval_k
    seed: int = 13
    kmeans_k: int = 32
    max_steps_per_epoch: int = 0  # 0: one pass over the training pairs
    # torch intra-op threads (0 = torch's default, one per core). The towers' ops are small (a batch
    # is a few hundred products): parallel regions cost more in synchronisation than they save, and on
    # a shared machine every region waits for a descheduled thread. Measured on BundleRec electronic
    # complementary, 2 cores under load: 9.5-11.4 s a step with 2 threads, 0.9-1.2 s with 1
    # (docs/EVALUATION.md, "Timings").
    threads: int = 1
    # hashed text tokens found in fewer training products stay untrained (zero): a token unique to one
    # product (a model number) would otherwise act as an item-id embedding the cold catalogue lacks
    min_token_products: int = 2

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.epochs < 0 or self.batch_size < 2 or self.uniform_negatives < 0:
            raise ValueError("epochs must be >= 0, batch_size >= 2, uniform_negatives >= 0")
        if self.temperature <= 0 or self.learning_rate <= 0:
            raise ValueError("temperature and learning_rate must be positive")
        if self.logq_weight < 0:
            raise ValueError(f"logq_weight must be >= 0, got {self.logq_weight}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, data)


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """How a complementary model is served (`vitrine.serving.complementary`), stored in its card.

    The any-category query's ANN candidates (`rerank_depth` of them) are re-scored by
    q.v / T + `lexical_weight` x the TF-IDF cosine of query and candidate (0 = tower only), over
    `lexical_text` (`vitrine.model.lexical.LEXICAL_TEXTS`: the title, or the title and the part of
    the description the towers read); weight and text were chosen on validation recall
    (docs/EVALUATION.md). A card written before `lexical_text` existed means "title".
    """

    lexical_weight: float = 20.0
    rerank_depth: int = 200
    lexical_text: str = (
        "title+description"  # as good as "title" without descriptions, better with (validation)
    )

    def __post_init__(self) -> None:
        if self.lexical_weight < 0 or self.rerank_depth < 1:
            raise ValueError("lexical_weight must be >= 0 and rerank_depth >= 1")
        if self.lexical_text not in LEXICAL_TEXTS:
            raise ValueError(f"lexical_text must be one of {LEXICAL_TEXTS}, got {self.lexical_text!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrievalConfig:
        return _from_dict(cls, data)
