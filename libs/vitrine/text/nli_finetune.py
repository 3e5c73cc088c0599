"""Contrastive NLI fine-tuning of a sentence encoder (FedCSIS 2023 recipe, sentence-transformers loss).

Training data, from the NLI pairs of every `--nli` source:

- a positive is (premise, hypothesis) labelled entailment; a paraphrase (`NliPair.symmetric`) also
  gives (hypothesis, premise);
- a hard negative is a sentence that contradicts the premise or the hypothesis (whichever side of
  a contradiction pair it stood on: contradiction is symmetric, and what contradicts an entailed
  hypothesis contradicts the premise too). Positives that have one become (anchor, positive,
  negative) triplets, the rest stay pairs.

Loss: `MultipleNegativesRankingLoss` (in-batch negatives plus the hard negatives, cosine * scale).
Batches hold only triplets or only pairs, never the same text twice (a duplicate would be a false
in-batch negative), in a seeded order. The loop is a plain torch loop around the sentence-transformers
model and loss, so training needs neither `datasets` nor `accelerate`.

e5 models see their `query: ` prompt on every column (NLI is a symmetric task); models without
prompts see the text unchanged.
"""

from __future__ import annotations

import json
import logging
import platform
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitrine.data.nli import NliPair, load_nli
from vitrine.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    base: str
    # (kind, path) per NLI source, see vitrine.data.nli
    nli: tuple[tuple[str, str], ...]
    out: str
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_seq_length: int = 64
    scale: float = 20.0
    seed: int = 13
    # Cap on training examples after shuffling (None: all); --quick sets a small one.
    max_examples: int | None = None
    # Keep the token-embedding matrix fixed: it is most of e5's parameters (250k x 384), NLI data touches
    # few of its rows, and leaving it alone keeps the vocabulary shared with other languages intact.
    freeze_embeddings: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_seq_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be >= 2 (in-batch negatives)")
        if not self.nli:
            raise ConfigError("at least one NLI source is needed")
        if self.learning_rate <= 0 or self.scale <= 0 or not 0 <= self.warmup_ratio < 1:
            raise ConfigError("learning_rate and scale must be > 0 and warmup_ratio in [0, 1)")


@dataclass(frozen=True)
class Example:
    anchor: str
    positive: str
    negative: str | None = None

    def texts(self) -> tuple[str, ...]:
        return (
            (self.anchor, self.positive)
            if self.negative is None
            else (self.anchor, self.positive, self.negative)
        )


@dataclass
class FinetuneResult:
    out: Path
    examples: int
    triplets: int
    steps: int
    seconds: float
    final_loss: float
    sources: list[dict[str, object]] = field(default_factory=list)


def build_examples(pairs: list[NliPair], rng: random.Random) -> list[Example]:
    """Positives with a hard negative where one exists (see the module docstring)."""
    contradicts: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        if p.label == "contradiction":
            contradicts[p.premise].add(p.hypothesis)
            contradicts[p.hypothesis].add(p.premise)
    positives: list[tuple[str, str]] = []
    for p in pairs:
        if p.label == "entailment":
            positives.append((p.premise, p.hypothesis))
            if p.symmetric:
                positives.append((p.hypothesis, p.premise))
    examples: list[Example] = []
    seen: set[tuple[str, str]] = set()
    for anchor, positive in positives:
        if (anchor, positive) in seen:
            continue
        seen.add((anchor, positive))
        candidates = sorted((contradicts[anchor] | contradicts[positive]) - {anchor, positive})
        examples.append(Example(anchor, positive, rng.choice(candidates) if candidates else None))
    return examples


def make_batches(examples: list[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """Shuffled batches of one shape (pairs or triplets) with no text repeated inside a batch."""
    batches: list[list[Example]] = []
    for group in (
        [e for e in examples if e.negative is not None],
        [e for e in examples if e.negative is None],
    ):
        pending = list(group)
        rng.shuffle(pending)
        while pending:
            batch: list[Example] = []
            used: set[str] = set()
            deferred: list[Example] = []
            for example in pending:
                texts = example.texts()
                if len(batch) < batch_size and used.isdisjoint(texts) and len(set(texts)) == len(texts):
                    batch.append(example)
                    used.update(texts)
                else:
                    deferred.append(example)
            if len(batch) < 2:
                # What is left cannot form a batch with in-batch negatives; it is dropped, and said so.
                log.info(
                    "dropping %d examples that would only form batches of one", len(deferred) + len(batch)
                )
                break
            batches.append(batch)
            pending = deferred
    rng.shuffle(batches)
    return batches


def load_examples(
    config: FinetuneConfig, rng: random.Random
) -> tuple[list[Example], list[dict[str, object]]]:
    examples: list[Example] = []
    sources: list[dict[str, object]] = []
    for kind, path in config.nli:
        data = load_nli(kind, path, purpose="train")
        built = build_examples(data.pairs, rng)
        examples.extend(built)
        sources.append(
            {
                "kind": kind,
                "file": str(data.report.path),
                "rows": data.report.rows,
                "skipped": dict(data.report.skipped),
                "examples": len(built),
                "triplets": sum(e.negative is not None for e in built),
            }
        )
    rng.shuffle(examples)
    if config.max_examples is not None:
        examples = examples[: config.max_examples]
    if len(examples) < 2:
        raise ConfigError(f"only {len(examples)} training examples; need at least 2")
    return examples, sources


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def finetune(config: FinetuneConfig, progress: bool = True) -> FinetuneResult:
    """Fine-tune `config.base` on `config.nli` and save a sentence-transformers model in `config.out`."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from vitrine.text.encoders import load_sentence_encoder, prompt_for

    seed_everything(config.seed)
    rng = random.Random(config.seed)
    examples, sources = load_examples(config, rng)
    model = load_sentence_encoder(config.base)
    model.max_seq_length = config.max_seq_length
    if config.freeze_embeddings:
        model[0].auto_model.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    prompt = prompt_for(model, "query")
    loss_fn = MultipleNegativesRankingLoss(model, scale=config.scale)

    epoch_batches = [make_batches(examples, config.batch_size, rng) for _ in range(config.epochs)]
    total_steps = sum(len(b) for b in epoch_batches)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )

    model.train()
    start, step, recent = time.perf_counter(), 0, []
    with tqdm(total=total_steps, desc="finetune-nli", unit="step", disable=not progress) as bar:
        for batches in epoch_batches:
            for batch in batches:
                loss = training_loss(model, loss_fn, batch, prompt)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                # Reusing gradient buffers avoids fresh allocations, which are slow (page faults) on small VMs.
                optimizer.zero_grad(set_to_none=False)
                step += 1
                recent = [*recent[-19:], float(loss.detach())]
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(recent):.4f}")
    model.eval()
    result = FinetuneResult(
        out=Path(config.out),
        examples=len(examples),
        triplets=sum(e.negative is not None for e in examples),
        steps=step,
        seconds=time.perf_counter() - start,
        final_loss=float(np.mean(recent)) if recent else float("nan"),
        sources=sources,
    )
    save(model, config, result)
    return result


def training_loss(
    model: SentenceTransformer, loss_fn: MultipleNegativesRankingLoss, batch: list[Example], prompt: str
) -> torch.Tensor:
    """MultipleNegativesRankingLoss on one batch: columns anchor, positive[, negative]."""
    columns = [list(col) for col in zip(*(e.texts() for e in batch), strict=True)]
    device = model.device
    features = []
    for texts in columns:
        feats = model.preprocess(texts, prompt=prompt or None)
        features.append({k: v.to(device) if hasattr(v, "to") else v for k, v in feats.items()})
    # The loss ignores labels; sentence-transformers' trainer passes None for unlabelled data too.
    return loss_fn(features, None)  # type: ignore[arg-type]


def save(model: SentenceTransformer, config: FinetuneConfig, result: FinetuneResult) -> None:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out), create_model_card=False)
    record = {"config": asdict(config), "result": {**asdict(result), "out": str(result.out)}}
    (out / "vitrine_finetune.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(config, result), encoding="utf-8")


def model_card(config: FinetuneConfig, result: FinetuneResult) -> str:
    import sentence_transformers
    import torch
    import transformers

    rows = "\n".join(
        f"| {s['kind']} | `{s['file']}` | {s['rows']} | {s['examples']} | {s['triplets']} | "
        f"{', '.join(f'{n} {r}' for r, n in s['skipped'].items()) or 'none'} |"  # type: ignore[attr-defined]
        for s in result.sources
    )
    params = "\n".join(f"| {k} | {v} |" for k, v in asdict(config).items() if k not in ("nli", "out"))
    return f"""# NLI fine-tuned sentence encoder

Fine-tuned from `{config.base}` by `vitrine finetune-nli` with sentence-transformers'
MultipleNegativesRankingLoss: entailed (premise, hypothesis) pairs are positives, paraphrases count in
both directions, and a sentence contradicting either side is the hard negative where one exists.

## Data

| kind | file | rows | training examples | with hard negative | skipped rows |
|---|---|---|---|---|---|
{rows}

Used after shuffling and the `max_examples` cap: {result.examples} examples, {result.triplets} of
them triplets.

## Hyperparameters

| parameter | value |
|---|---|
{params}

Optimiser AdamW, linear warm-up then linear decay, gradient norm clipped at 1.0, batches without
repeated texts; token embeddings {"frozen" if config.freeze_embeddings else "trained"}.

## Run

{result.steps} steps in {result.seconds:.0f} s; mean loss over the last 20 steps {result.final_loss:.4f}.
Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__},
sentence-transformers {sentence_transformers.__version__}.

## Use

```python
from vitrine.text import load_sentence_encoder
model = load_sentence_encoder("{config.out}")
```

The data's licences (research, mostly non-commercial) apply to this model's use.
"""
