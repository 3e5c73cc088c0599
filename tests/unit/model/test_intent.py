"""The intent tower: a projection from sentence vectors into a fixed item space, trained with the
towers' sampled softmax (small synthetic spaces: seconds on a CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitrine.model.intent import IntentConfig, IntentExamples, IntentTower, recall_at, train_intent_tower

ITEM_DIM, TEXT_DIM, ITEMS = 16, 24, 200


def _world(seed: int = 0, queries: int = 240) -> tuple[np.ndarray, IntentExamples, IntentExamples]:
    """Items are unit vectors; an intent is 3 items, its text vector a fixed random linear map of
    their mean (plus noise): a projection exists that finds them, an untrained one does not."""
    rng = np.random.default_rng(seed)
    items = rng.normal(size=(ITEMS, ITEM_DIM)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    mixing = rng.normal(size=(ITEM_DIM, TEXT_DIM)).astype(np.float32)

    def examples(n: int) -> IntentExamples:
        rows = [tuple(int(i) for i in rng.choice(ITEMS, size=3, replace=False)) for _ in range(n)]
        text = np.stack([items[list(r)].mean(0) @ mixing for r in rows]) + 0.05 * rng.normal(
            size=(n, TEXT_DIM)
        )
        text /= np.linalg.norm(text, axis=1, keepdims=True)
        return IntentExamples(text.astype(np.float32), tuple(rows))

    return items, examples(queries), examples(60)


def _config(**kw: object) -> IntentConfig:
    return IntentConfig(
        **{"epochs": 25, "patience": 25, "batch_size": 32, "hidden_dim": 64, "seed": 1, "threads": 1, **kw}
    )


def test_training_finds_the_items_an_untrained_tower_cannot() -> None:
    """The defect caught: a loss that does not reach the projection (or the wrong sign) leaves
    validation recall at chance (~10/200 = 0.05)."""
    items, train, val = _world()
    torch.manual_seed(0)
    tower = IntentTower(TEXT_DIM, ITEM_DIM, 64, 0.0)
    before = recall_at(tower, val, torch.from_numpy(items))
    result = train_intent_tower(tower, train, val, items, _config())
    after = recall_at(tower, val, torch.from_numpy(items))
    assert before < 0.15
    assert after > 0.5, result.history[-3:]
    assert after == pytest.approx(result.best_val_recall)  # the tower keeps its best validation epoch
    assert result.best_epoch == max(result.history, key=lambda r: r["val_recall@10"])["epoch"]


def test_training_stops_after_patience_epochs_without_a_better_validation_recall() -> None:
    items, train, val = _world(1)
    result = train_intent_tower(
        IntentTower(TEXT_DIM, ITEM_DIM, 0, 0.0),
        train,
        val,
        items,
        _config(epochs=200, patience=2, learning_rate=0.05),
    )
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 2


def test_catalogue_distillation_alone_maps_titles_onto_their_own_items() -> None:
    """distill_weight: each item's own text vector should land on its item vector; with a linear
    world and no intents but two, the catalogue regression alone must find the items."""
    items, _, val = _world(2)
    rng = np.random.default_rng(5)
    mixing = rng.normal(size=(ITEM_DIM, TEXT_DIM)).astype(np.float32)
    titles = items @ mixing
    titles /= np.linalg.norm(titles, axis=1, keepdims=True)
    # the validation intents' text comes from the same map the titles do
    val_text = np.stack([items[list(r)].mean(0) @ mixing for r in val.items])
    val = IntentExamples(
        (val_text / np.linalg.norm(val_text, axis=1, keepdims=True)).astype(np.float32), val.items
    )
    few = IntentExamples(val.text_vec[:2], val.items[:2])
    config = _config(hidden_dim=0, epochs=150, patience=150, batch_size=2, learning_rate=0.05)
    with_titles = IntentTower(TEXT_DIM, ITEM_DIM, 0, 0.0)
    train_intent_tower(with_titles, few, val, items, config, catalogue_text_vec=titles.astype(np.float32))
    without = IntentTower(TEXT_DIM, ITEM_DIM, 0, 0.0)
    train_intent_tower(without, few, val, items, config)
    got, control = (recall_at(t, val, torch.from_numpy(items)) for t in (with_titles, without))
    assert got > 0.4 and got > control + 0.2, (got, control)


def test_examples_and_config_refuse_what_cannot_train() -> None:
    with pytest.raises(ValueError, match="at least one relevant item"):
        IntentExamples(np.zeros((1, 4), dtype=np.float32), ((),))
    with pytest.raises(ValueError, match="item lists"):
        IntentExamples(np.zeros((2, 4), dtype=np.float32), ((1,),))
    with pytest.raises(ValueError, match="temperature"):
        IntentConfig(temperature=0)
    with pytest.raises(ValueError, match="unknown IntentConfig fields"):
        IntentConfig.from_dict({"hidden": 3})


def test_pairs_and_known_items_list_every_answer_of_each_intent() -> None:
    """known() is the mask that keeps an intent's other bundle items out of its negatives."""
    ex = IntentExamples(np.eye(3, dtype=np.float32), ((0, 1), (2,), (1, 2)))
    assert ex.pairs().tolist() == [[0, 0], [0, 1], [1, 2], [2, 1], [2, 2]]
    assert ex.known(4).tolist() == [
        [True, True, False, False],
        [False, False, True, False],
        [False, True, True, False],
    ]
