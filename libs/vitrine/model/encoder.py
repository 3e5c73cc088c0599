"""The Product Encoder: content features → L2-normalised vector. Content only, no item-id embeddings.

One embedding input per attribute (text, hierarchical category, price bucket, brand, seller),
concatenated, then an MLP. The text branch is pluggable:

- `hashed`: a bag of hashed words, word bigrams and char n-grams (+ description words), trained from
  scratch; language-agnostic and fast.
- `sentence`: a frozen pretrained sentence encoder's vector (computed outside the tower, once per
  product), projected to `text_dim`.
- `hashed+sentence`: both, concatenated (the sentence vector through its trainable adapter adds to
  the hashed bag rather than replacing it).

The category table is shared by every level of the path and by the leaf-name embedding, so the
complementary query tower can embed a *target* category with the same table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitrine.catalog.features import FeatureConfig
from vitrine.model.config import EncoderConfig

CONTENT_INPUTS = ("category_ids", "leaf_id", "price_bucket", "brand_id", "seller_id")


def text_input_names(features: FeatureConfig) -> tuple[str, ...]:
    hashed = ("text_ids", "text_weights") if features.uses_hashed else ()
    return (*hashed, "text_vec") if features.uses_sentence else hashed


def item_input_names(features: FeatureConfig) -> tuple[str, ...]:
    """The item tower's inputs, in the order of the ONNX graph's inputs."""
    return (*text_input_names(features), *CONTENT_INPUTS)


def _init_table(table: nn.Embedding, std: float) -> None:
    """Open-vocabulary tables (text tokens, brands, sellers): a small random init is a fixed random
    projection that lets two new products sharing a token (a camera and its battery sharing the
    model number) share a component before any training; 0 makes unseen tokens add nothing."""
    with torch.no_grad():
        if std > 0:
            table.weight.normal_(0.0, std)
        else:
            table.weight.zero_()
        table.weight[0].zero_()


class HashedBagText(nn.Module):
    """Weighted sum of hashed-token embeddings (weights are already sqrt-n normalised by the extractor)."""

    def __init__(self, buckets: int, dim: int, token_dropout: float = 0.0, init_std: float = 0.0) -> None:
        super().__init__()
        self.token_dropout = token_dropout
        # sparse gradients: a step touches a few thousand of the 100k+ rows
        self.embedding = nn.Embedding(buckets, dim, padding_idx=0, sparse=True)
        _init_table(self.embedding, init_std)

    def forward(self, text_ids: Tensor, text_weights: Tensor) -> Tensor:
        if self.training and self.token_dropout > 0:
            # seeing partial titles teaches the model to embed from whichever words a product has
            keep = torch.rand(text_weights.shape, device=text_weights.device) >= self.token_dropout
            text_weights = text_weights * keep
        return (self.embedding(text_ids) * text_weights.unsqueeze(-1)).sum(dim=1)


class SentenceText(nn.Module):
    """Projection of a frozen sentence-encoder vector."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)

    def forward(self, text_vec: Tensor) -> Tensor:
        return self.proj(text_vec)


class HashedAndSentenceText(nn.Module):
    """The hashed bag and the sentence adapter side by side: [bag ; adapter(sentence vector)]."""

    def __init__(self, hashed: HashedBagText, sentence: SentenceText) -> None:
        super().__init__()
        self.hashed = hashed
        self.sentence = sentence

    def forward(self, text_ids: Tensor, text_weights: Tensor, text_vec: Tensor) -> Tensor:
        return torch.cat([self.hashed(text_ids, text_weights), self.sentence(text_vec)], dim=-1)


class ProductEncoder(nn.Module):
    def __init__(self, features: FeatureConfig, config: EncoderConfig) -> None:
        super().__init__()
        self.features = features
        self.config = config
        self.text: nn.Module
        if features.uses_sentence and features.sentence_dim < 1:
            raise ValueError("the sentence text branch needs FeatureConfig.sentence_dim")
        text_width = config.text_dim
        if features.text_branch == "hashed":
            self.text = HashedBagText(
                features.text_buckets, config.text_dim, config.token_dropout, config.init_std
            )
        elif features.text_branch == "sentence":
            self.text = SentenceText(features.sentence_dim, config.text_dim)
        else:
            self.text = HashedAndSentenceText(
                HashedBagText(features.text_buckets, config.text_dim, config.token_dropout, config.init_std),
                SentenceText(features.sentence_dim, config.text_dim),
            )
            text_width = 2 * config.text_dim
        self.category = nn.Embedding(
            features.category_buckets, config.category_dim, padding_idx=0, sparse=True
        )
        self.price = nn.Embedding(features.price_buckets, config.price_dim, padding_idx=0)
        self.brand = nn.Embedding(features.brand_buckets, config.brand_dim, padding_idx=0, sparse=True)
        self.seller = nn.Embedding(features.seller_buckets, config.seller_dim, padding_idx=0, sparse=True)
        for table in (self.category, self.price):
            nn.init.zeros_(table.weight)
        for table in (self.brand, self.seller):
            _init_table(table, config.init_std)
        # category input = mean over path levels ++ leaf-name embedding
        in_dim = (
            text_width + 2 * config.category_dim + config.price_dim + config.brand_dim + config.seller_dim
        )
        self.mlp = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, config.hidden_dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_dim, config.dim),
        )
        self.input_names = item_input_names(features)

    def zero_text_rows(self, buckets: torch.Tensor) -> None:
        """Zero the rows of text buckets training never used (see `FeatureStore.mask_rare_tokens`)."""
        bag = self.text.hashed if isinstance(self.text, HashedAndSentenceText) else self.text
        if isinstance(bag, HashedBagText) and buckets.numel():
            with torch.no_grad():
                bag.embedding.weight[buckets] = 0.0

    def randomize_embeddings(self, generator: torch.Generator, std: float = 0.1) -> None:
        """Random embedding tables, for a model deliberately left untrained (smoke tests, demos):
        with the zero initialisation every product would get the same vector."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Embedding):
                    module.weight.normal_(0.0, std, generator=generator)
                    module.weight[0].zero_()

    def category_vector(self, category_ids: Tensor, leaf_id: Tensor) -> Tensor:
        mask = (category_ids > 0).to(torch.float32).unsqueeze(-1)
        levels = (self.category(category_ids) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return torch.cat([levels, self.category(leaf_id)], dim=-1)

    def hidden(self, inputs: dict[str, Tensor]) -> Tensor:
        """The un-normalised output (the complementary query tower builds on it)."""
        text_args = [inputs[name] for name in text_input_names(self.features)]
        parts = [
            self.text(*text_args),
            self.category_vector(inputs["category_ids"], inputs["leaf_id"]),
            self.price(inputs["price_bucket"]),
            self.brand(inputs["brand_id"]),
            self.seller(inputs["seller_id"]),
        ]
        return self.mlp(torch.cat(parts, dim=-1))

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return F.normalize(self.hidden(inputs), dim=-1)


class ComplementaryQueryTower(nn.Module):
    """Query tower of the complementary model: the product's encoding plus what to complement it with.

    It adds the target-category embedding (from the encoder's shared category table) and the query
    product's seller (one parcel = one seller) through a projection, as a residual on the encoding.
    """

    def __init__(self, encoder: ProductEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        cfg = encoder.config
        self.project = nn.Sequential(
            nn.Linear(cfg.dim + cfg.category_dim + cfg.seller_dim, cfg.hidden_dim),
            nn.GELU(),
            nn.Linear(cfg.hidden_dim, cfg.dim),
        )

    def forward(self, inputs: dict[str, Tensor], target_category_id: Tensor) -> Tensor:
        """Target id 0 (the padding row: a zero embedding) asks for complements of any category."""
        return self.from_hidden(self.encoder.hidden(inputs), inputs, target_category_id)

    def from_hidden(self, h: Tensor, inputs: dict[str, Tensor], target_category_id: Tensor) -> Tensor:
        target = self.encoder.category(target_category_id)
        seller = self.encoder.seller(inputs["seller_id"])
        return F.normalize(h + self.project(torch.cat([h, target, seller], dim=-1)), dim=-1)
