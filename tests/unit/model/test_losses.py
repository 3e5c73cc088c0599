"""Sampled softmax with mixed negatives + logQ, and the category reconstruction loss, on small known cases."""

from __future__ import annotations

import math

import pytest
import torch

from vitrine.model.losses import category_reconstruction_loss, mixed_log_q, sampled_softmax_loss


def log_softmax_at(logits: list[float], index: int) -> float:
    top = max(logits)
    return logits[index] - top - math.log(sum(math.exp(x - top) for x in logits))


def test_in_batch_softmax_matches_hand_computation() -> None:
    # 2 queries, 2 positives, d = 2; scores q_i . p_j / tau written out by hand
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.8, 0.6], [0.6, 0.8]])
    tau = 0.5
    loss = sampled_softmax_loss(q, p, torch.tensor([10, 11]), tau)
    row0 = [0.8 / tau, 0.6 / tau]  # query 0 against p0 (its positive), p1
    row1 = [0.6 / tau, 0.8 / tau]  # query 1 against p0, p1 (its positive)
    expected = -(log_softmax_at(row0, 0) + log_softmax_at(row1, 1)) / 2
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_uniform_negatives_join_the_softmax_and_log_q_is_subtracted() -> None:
    q = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[0.6, 0.8]])
    n = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tau = 1.0
    log_q_pos = torch.tensor([math.log(2.0)])
    log_q_neg = torch.tensor([math.log(0.5), math.log(4.0)])
    loss = sampled_softmax_loss(
        q,
        p,
        torch.tensor([0]),
        tau,
        negatives=n,
        negative_ids=torch.tensor([1, 2]),
        log_q_positives=log_q_pos,
        log_q_negatives=log_q_neg,
    )
    logits = [0.6 - math.log(2.0), 1.0 - math.log(0.5), 0.0 - math.log(4.0)]
    assert float(loss) == pytest.approx(-log_softmax_at(logits, 0), abs=1e-6)


def test_accidental_hits_and_the_query_itself_are_masked() -> None:
    # row 0's positive (item 7) appears again as row 1's positive and as a uniform negative;
    # the query item (3) is also sampled as a negative: none of them may count as a negative
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    negatives = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss = sampled_softmax_loss(
        q,
        p,
        positive_ids=torch.tensor([7, 7]),
        temperature=1.0,
        negatives=negatives,
        negative_ids=torch.tensor([7, 3, 9]),
        query_ids=torch.tensor([3, 4]),
    )
    # row 0 keeps only its own positive (1.0) and item 9 (0.0); row 1 keeps its positive (0.0),
    # item 3 (0.0) and item 9 (1.0); item 7 is masked in row 1 except in its own column
    row0 = [1.0, 0.0]
    row1 = [0.0, 0.0, 1.0]
    expected = -(log_softmax_at(row0, 0) + log_softmax_at(row1, 0)) / 2
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_mixed_log_q_is_the_expected_count_under_both_samplers() -> None:
    popularity = torch.tensor([0.5, 0.25, 0.25, 0.0])
    log_q = mixed_log_q(batch_size=8, n_uniform=4, n_items=4, popularity=popularity)
    expected = torch.log(torch.tensor([8 * 0.5 + 1.0, 8 * 0.25 + 1.0, 8 * 0.25 + 1.0, 1.0]))
    torch.testing.assert_close(log_q, expected)


def test_log_q_correction_lowers_the_penalty_of_popular_negatives() -> None:
    q = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0]])
    negatives = torch.tensor([[0.9, 0.1]])
    ids, neg_ids = torch.tensor([0]), torch.tensor([1])
    plain = sampled_softmax_loss(q, p, ids, 0.1, negatives=negatives, negative_ids=neg_ids)
    corrected = sampled_softmax_loss(
        q,
        p,
        ids,
        0.1,
        negatives=negatives,
        negative_ids=neg_ids,
        log_q_positives=torch.tensor([0.0]),
        log_q_negatives=torch.tensor([math.log(10.0)]),  # the negative is 10x over-sampled
    )
    assert float(corrected) < float(plain)


def test_loss_gradient_pulls_the_positive_closer() -> None:
    q = torch.tensor([[1.0, 0.0]], requires_grad=True)
    p = torch.tensor([[0.0, 1.0]])
    negatives = torch.tensor([[-1.0, 0.0]])
    loss = sampled_softmax_loss(
        q, p, torch.tensor([0]), 1.0, negatives=negatives, negative_ids=torch.tensor([1])
    )
    loss.backward()
    assert q.grad is not None
    assert float(q.grad[0, 1]) < 0  # a gradient step increases q . p


def test_category_reconstruction_loss_known_case() -> None:
    projection = torch.nn.Identity()
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    queries = torch.tensor([[2.0, 0.0]])
    loss = category_reconstruction_loss(queries, projection, table, torch.tensor([0]))
    assert float(loss) == pytest.approx(-log_softmax_at([2.0, 0.0, -2.0], 0), abs=1e-6)


def test_extra_mask_removes_known_false_negatives_but_never_the_positive() -> None:
    # row 0's candidate 1 is another known partner of query 0: masked, the loss is as if it was absent
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    ids = torch.tensor([10, 11])
    mask = torch.tensor([[True, True], [False, False]])  # the own positive (0, 0) is never masked
    loss = sampled_softmax_loss(q, p, ids, 1.0, extra_mask=mask)
    expected = -(0.0 + log_softmax_at([0.8, 0.0], 1)) / 2
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    unmasked = sampled_softmax_loss(q, p, ids, 1.0)
    assert float(unmasked) > float(loss)
