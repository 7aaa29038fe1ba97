"""core.py against hand-computed numbers."""

import math

import pytest
import torch

from algorithms.core import (aggregate, aggregation_weights, clipped_surrogate, kl_penalty, masked_mean,
                             truncated_is_weights)

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [9.0, 9.0, 9.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])  # last row empty
GROUPS = torch.tensor([0, 0, 1, 1])


def test_masked_mean():
    # (1 + 3) / (2 + 1e-8)
    assert masked_mean(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0.0, 1.0])).item() == pytest.approx(2.0)
    # per row: [1,2 | 3] -> 1.5 ; [4 | 5,6 masked] -> 4
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = masked_mean(x, torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), dim=-1)
    assert torch.allclose(out, torch.tensor([1.5, 4.0]))


@pytest.mark.parametrize("mode,expected", [
    # masked tokens: row0 1,2 ; row1 4 ; row2 7,8,9 ; row3 none (empty rows are not counted)
    ("token-mean", (1 + 2 + 4 + 7 + 8 + 9) / 6),                       # 31/6
    ("seq-mean-token-mean", ((1 + 2) / 2 + 4 / 1 + (7 + 8 + 9) / 3) / 3),  # (1.5+4+8)/3 = 4.5
    ("seq-mean-token-sum", (3 + 4 + 24) / 3),                          # 31/3
    ("seq-mean-token-sum-norm", 31 / (3 * 3)),                         # sum / (N * T)
    ("group-token-mean", ((1 + 2 + 4) / 3 + 24 / 3) / 2),              # groups {0,1}: 7/3, {2,3}: 8 -> 31/6
])
def test_aggregate_modes(mode, expected):
    assert aggregate(LOSS, MASK, mode, GROUPS).item() == pytest.approx(expected)
    w = aggregation_weights(MASK, mode, GROUPS)
    assert (LOSS * w).sum().item() == pytest.approx(expected)
    assert (w[MASK == 0] == 0).all()


def test_length_budget_and_errors():
    # Dr.GRPO with a budget of 10 tokens: 31 / (3 * 10)
    assert aggregate(LOSS, MASK, "seq-mean-token-sum-norm", length_budget=10).item() == pytest.approx(31 / 30)
    with pytest.raises(ValueError, match="group_ids"):
        aggregation_weights(MASK, "group-token-mean")
    with pytest.raises(ValueError, match="token-mean"):
        aggregation_weights(MASK, "bogus")


def test_kl_penalty():
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    # diff = logp - ref = ln 2
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(math.log(2))
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.5 * math.log(2) ** 2)
    # k3: d = ref - logp = -ln2 ; e^d - d - 1 = 0.5 + ln2 - 1
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(0.5 + math.log(2) - 1)
    # k3 clamps: d = +30 -> clamped to 20 -> e^20 - 21 -> clamped to 10
    assert kl_penalty(torch.tensor([0.0]), torch.tensor([30.0]), "k3").item() == 10.0
    with pytest.raises(ValueError):
        kl_penalty(logp, ref, "k4")


def test_clipped_surrogate_values_and_grad():
    r = torch.tensor([[1.5, 1.5, 4.0, 0.5, 0.5]])
    adv = torch.tensor([[1.0, -1.0, -1.0, -1.0, 2.0]])
    old = torch.zeros_like(r)
    logp = torch.log(r).requires_grad_(True)
    out = clipped_surrogate(logp, old, adv, 0.8, 1.2)
    # A=1,r=1.5: max(-1.5, -1.2) = -1.2 ; A=-1,r=1.5: max(1.5, 1.2) = 1.5 ; A=-1,r=4: max(4, 1.2) = 4
    # A=-1,r=.5: max(.5, .8) = .8 ; A=2,r=.5: max(-1, -1.6) = -1
    assert torch.allclose(out, torch.tensor([[-1.2, 1.5, 4.0, 0.8, -1.0]]))
    out.sum().backward()
    # clipped tokens (0 and 3) carry no gradient; elsewhere d(-A r)/dlogp = -A r
    assert torch.allclose(logp.grad, torch.tensor([[0.0, 1.5, 4.0, 0.0, -1.0]]))
    dual = clipped_surrogate(torch.log(r), old, adv, 0.8, 1.2, dual_clip=3.0)
    # dual clip only where A<0: token 2 min(4, 3) = 3 ; token 1 min(1.5, 3) = 1.5
    assert torch.allclose(dual, torch.tensor([[-1.2, 1.5, 3.0, 0.8, -1.0]]))


def test_clipped_surrogate_tensor_bounds():
    r = torch.tensor([[1.5, 1.5]])
    high = torch.tensor([[1.2, 2.0]])
    # A=1: token 0 clipped to 1.2 -> -1.2 ; token 1 bound 2.0 -> -1.5
    out = clipped_surrogate(torch.log(r), torch.zeros_like(r), torch.ones_like(r), 0.8, high)
    assert torch.allclose(out, torch.tensor([[-1.2, -1.5]]))


def test_truncated_is_weights():
    # pi_old/pi_engine = e^0 = 1, e^ln1.5 = 1.5, e^ln3 = 3 -> capped at 2, e^-ln4 = 0.25 (no lower cap)
    old = torch.tensor([[0.0, math.log(1.5), math.log(3.0), -math.log(4.0)]], requires_grad=True)
    w = truncated_is_weights(old, torch.zeros(1, 4), cap=2.0)
    assert w[0].tolist() == pytest.approx([1.0, 1.5, 2.0, 0.25])
    assert not w.requires_grad
