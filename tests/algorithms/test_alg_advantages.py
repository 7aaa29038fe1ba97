"""grpo.py, nsr.py, dcpo.py against hand-computed numbers."""

import math

import pytest
import torch

from algorithms.dcpo import SmoothAdvantage, dynamic_clip_bounds
from algorithms.grpo import group_advantages, overlong_penalty, rloo_advantages
from algorithms.nsr import sample_advantages

# groups of size 4, 2 (all equal) and 1
REWARDS = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 5.0])
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 2])


def test_group_advantages_std():
    adv = group_advantages(REWARDS, GROUPS)
    # group 0: mean .5, unbiased var = 4*.25/3 = 1/3, std = .57735 -> +-.5/(.57735+1e-6)
    a = 0.5 / (math.sqrt(1 / 3) + 1e-6)
    # group 1: all equal -> 0 ; group 2: single sample -> mean 0, std 1 -> 5/(1+1e-6)
    expected = torch.tensor([a, -a, a, -a, 0.0, 0.0, 5 / (1 + 1e-6)])
    assert torch.allclose(adv, expected, atol=1e-6)


def test_group_advantages_dr_grpo():
    adv = group_advantages(REWARDS, GROUPS, scale="none")
    assert torch.allclose(adv, torch.tensor([0.5, -0.5, 0.5, -0.5, 0.0, 0.0, 5.0]))
    with pytest.raises(ValueError):
        group_advantages(REWARDS, GROUPS, scale="bogus")


def test_rloo_advantages():
    adv = rloo_advantages(REWARDS, GROUPS)
    # group 0: 1 - (0+1+0)/3 = 2/3 ; 0 - (1+1+0)/3 = -2/3 ; all-equal -> 0 ; singleton -> 0
    assert torch.allclose(adv, torch.tensor([2 / 3, -2 / 3, 2 / 3, -2 / 3, 0.0, 0.0, 0.0]))


def test_overlong_penalty():
    # max_len 10, buffer 4 -> expected length 6: L=5,6 -> 0 ; 8 -> -(2/4) ; 10 -> -1 ; 12 -> -1.5
    out = overlong_penalty(torch.tensor([5, 6, 8, 10, 12]), 10, 4.0, 1.0)
    assert out.dtype == torch.float64 and out.tolist() == [0.0, 0.0, -0.5, -1.0, -1.5]
    assert torch.equal(overlong_penalty(torch.tensor([12]), 10, 0.0), torch.zeros(1, dtype=torch.float64))


def test_sample_advantages():
    r = torch.tensor([1.0, 0.0, 1.0])
    adv, keep = sample_advantages(r, "psr")
    assert adv.tolist() == [1.0, 0.0, 1.0] and keep.tolist() == [True, False, True]
    adv, keep = sample_advantages(r, "nsr")
    assert adv.tolist() == [0.0, -1.0, 0.0] and keep.tolist() == [False, True, False]
    adv, keep = sample_advantages(r, "w-reinforce", lam=0.1)
    assert torch.allclose(adv, torch.tensor([0.1, -1.0, 0.1])) and keep.all()
    with pytest.raises(ValueError):
        sample_advantages(r, "xyz")


def test_dynamic_clip_bounds():
    low, high = dynamic_clip_bounds(torch.tensor([1.0, 0.5, 0.001]), 0.16, 0.2)
    # q=1: low = .5+.5*sqrt(1-.64) = .8 ; high = .5+.5*sqrt(1.8)
    # q=.5: 1-4*.16/.5 < 0 -> low .5 ; high = .5+.5*sqrt(2.6)
    # q=.001: high = .5+.5*sqrt(801) = 14.65 -> capped at 10
    assert torch.allclose(low, torch.tensor([0.8, 0.5, 0.5]))
    assert torch.allclose(high, torch.tensor([0.5 + 0.5 * math.sqrt(1.8), 0.5 + 0.5 * math.sqrt(2.6), 10.0]))


def test_smooth_advantage_three_visits():
    sa = SmoothAdvantage()
    g = torch.zeros(4, dtype=torch.long)
    keys = ["a"] * 4
    # visit 1: mean .5, std sqrt(1/3); i=1 -> A = A_tot = A_new = +-.5/sqrt(1/3) = +-.866025
    a1 = sa(torch.tensor([1.0, 0.0, 0.0, 1.0]), g, keys)
    assert torch.allclose(a1, torch.tensor([1, -1, -1, 1.0]) * 0.5 / math.sqrt(1 / 3), atol=1e-6)
    # visit 2, all equal (mean 1, std 0): cum_mean = (.5*1+1)/2 = .75
    # cum_var = (1*(1/3) + 0 + 1/2*(.5)^2)/2 = .2291667 ; A_new = 0 ; A_tot = .25/sqrt(.2291667) = .522233
    # SA_new = SA_tot = .5*.522233 = .261116 -> the all-equal group still gets a signal
    a2 = sa(torch.ones(4), g, keys)
    assert torch.allclose(a2, torch.full((4,), 0.5 * 0.25 / math.sqrt(0.2291667)), atol=1e-5)
    # visit 3: rewards 0,0,1,1 (mean .5, std sqrt(1/3)); cum_mean = (.75*2+.5)/3 = 2/3
    # cum_var = (2*.2291667 + 1/3 + 2/3*(.5-.75)^2)/3 = .2777778 -> cum_std = .527046
    # r=1: A_new=.866025, A_tot=.632456 ; SA_new=.788169, SA_tot=.710312 -> .710312 (smaller magnitude)
    # r=0: A_new=-.866025, A_tot=-1.264911 ; SA_new=-.998987, SA_tot=-1.131949 -> -.998987
    a3 = sa(torch.tensor([0.0, 0.0, 1.0, 1.0]), g, keys)
    assert torch.allclose(a3, torch.tensor([-0.998987, -0.998987, 0.710312, 0.710312]), atol=1e-5)
    mean, std, times = sa.stats["a"]
    assert times == 3 and mean == pytest.approx(2 / 3) and std == pytest.approx(math.sqrt(0.8333333 / 3), abs=1e-6)


def test_smooth_advantage_groups_are_separate_prompts():
    sa = SmoothAdvantage()
    # two prompts in one batch, sizes 2 and 3; singleton std rule not needed here
    r = torch.tensor([1.0, 0.0, 2.0, 2.0, 5.0])
    adv = sa(r, torch.tensor([0, 0, 1, 1, 1]), ["x", "x", "y", "y", "y"])
    # x: mean .5, std sqrt(.5) -> +-.5/.707107 ; y: mean 3, std sqrt(3) -> (-1,-1,2)/sqrt(3)
    exp = torch.tensor([0.5 / math.sqrt(0.5), -0.5 / math.sqrt(0.5), -1 / math.sqrt(3), -1 / math.sqrt(3), 2 / math.sqrt(3)])
    assert torch.allclose(adv, exp, atol=1e-6)
    assert set(sa.stats) == {"x", "y"}


def test_dapo_shaping_equal_shaped_rewards_give_exactly_zero():
    """A right answer that ran to the budget (1 - 1 = 0) and wrong answers inside it (0 + 0) are equal
    shaped rewards: the group carries no signal, so every advantage is exactly 0. The buffer 0.2 * 8 = 1.6
    is fractional: in float32 the ramp's rounding left 1 - 0.99999994 = 6e-8 and the std's eps turned it
    into advantages of several hundredths."""
    import algorithms
    from algorithms import RolloutBatch

    T = 8
    lengths = torch.tensor([8, 3, 4, 5, 8, 2, 7, 6])
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).float()
    batch = RolloutBatch(response_ids=mask.long(), response_mask=mask,
                         rewards=torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
                         group_ids=torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), prompt_keys=["a"] * 4 + ["b"] * 4,
                         max_response_len=T)
    algo = algorithms.build({"preset": "dapo"})
    adv, _ = algo.advantage.compute(batch)
    assert torch.equal(adv[:4], torch.zeros(4, T))  # shaped: 0, 0, 0, 0
    # group b keeps its signal: shaped 0, 0, -(7-6.4)/1.6 = -0.375, 0 (L=6 is inside the buffer's start)
    shaped, _ = algo.advantage.shaped_rewards(batch)
    assert shaped[4:].tolist() == [0.0, 0.0, -0.375, 0.0]
    assert float(adv[6, 0]) < 0 < float(adv[4, 0])
