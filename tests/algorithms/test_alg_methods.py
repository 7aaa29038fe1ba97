"""gtpo, bapo, pacs, igpo, forking, gspo, remix functions against hand-computed numbers."""

import math

import pytest
import torch

from algorithms.bapo import adaptive_bounds, contribution_ratio
from algorithms.forking import high_entropy_mask
from algorithms.gspo import sequence_ratio
from algorithms.gtpo import conflict_weights, entropy_filtered_advantages
from algorithms.igpo import broadcast_turns, turn_advantages, turn_rewards_from_tokens
from algorithms.pacs import pacs_loss
from algorithms.remix import centred_clip_bounds, convex_kl, convex_lambda, reincarnated


def test_conflict_weights_hand_example():
    ids = torch.tensor([[5, 6, 7, 8, 0],    # A>0
                        [5, 6, 9, 8, 0],    # A<0
                        [5, 3, 7, 4, 8],    # A<0
                        [5, 6, 7, 8, 0],    # A=0 (inactive)
                        [5, 6, 7, 8, 0]])   # other group, all A=0
    mask = (ids != 0).float()
    adv = torch.tensor([1.0, -1.0, -1.0, 0.0, 0.0])
    groups = torch.tensor([0, 0, 0, 0, 1])
    w, n = conflict_weights(ids, adv, mask, groups, pad_id=0, w_pos=2.0)
    # forward runs (same token at same position in a positive and a negative completion, leading run):
    #   row0: t0 (5 in row1,2) t1 (6 in row1) t2 (7 in row2) t3 (8 in row1) -> t0..t3
    #   row1: t0, t1 (t2=9 not in a positive) ; row2: t0 (t1=3 not in a positive)
    # backward runs (end-aligned): last tokens 8,8,8 conflict; second-to-last 7/9/4 do not
    #   -> row0 t3, row1 t3, row2 t4
    # positive rows get 2 per run (t3 in both runs: 4), negative rows 0 on conflicts
    expected = torch.tensor([[2.0, 2.0, 2.0, 4.0, 0.0],
                             [0.0, 0.0, 1.0, 0.0, 0.0],
                             [0.0, 1.0, 1.0, 1.0, 0.0],
                             [1.0, 1.0, 1.0, 1.0, 0.0],
                             [1.0, 1.0, 1.0, 1.0, 0.0]])
    assert torch.equal(w, expected)
    # n_conflict = #(fwd | bwd) in original coordinates: 4, 3 (t0,t1,t3), 2 (t0,t4); inactive -> 1
    assert n.tolist() == [4, 3, 2, 1, 1]


def test_entropy_filtered_advantages():
    out = entropy_filtered_advantages(torch.tensor([1.0, -1.0, 0.5]), torch.tensor([0.5, 0.2, 0.9]), 0.7, 0.1)
    # 1 - .1*.5 = .95 ; -1 - .1*.2 = -1.02 ; H = .9 > .7 -> 0
    assert torch.allclose(out, torch.tensor([0.95, -1.02, 0.0]))


def test_bapo_code_mode_raises_high_bound():
    r = torch.tensor([[1.5, 1.0, 1.0, 1.0]])
    a = torch.tensor([[1.0, -1.0, -1.0, -1.0]])
    m = torch.ones_like(r)
    # start (.6, 1.2): pos = min(1.5,1.2) = 1.2 ; neg = 3*max(1,.6) = 3 -> .4 < .44
    # c_low phase cannot help (neg uses max(r, c_low)): c_low -> .8 ; then c_high 1.25 (.4167), 1.30 (.4333),
    # 1.35 -> pos 1.35, 1.35/3 = .45 >= .44 -> stop
    c_low, c_high = adaptive_bounds(r, a, m, 0.44, 0.6, 0.8, 0.05, 1.2, 2.0, 0.05, mode="code")
    assert c_low == pytest.approx(0.8) and c_high == pytest.approx(1.35)
    # already balanced: no search
    assert adaptive_bounds(r, -a, m, 1.0, 0.6, 0.8, 0.05, 1.2, 2.0, 0.05) == (0.6, 1.2)


def test_bapo_paper_mode_eq8_and_algorithm1():
    r = torch.tensor([[1.5, 1.0, 1.0]])
    a = torch.tensor([[1.0, -1.0, -1.0]])
    p_b = torch.tensor([[0.5, 0.5, 1.0]])  # behaviour token probabilities pi_rollout(y_t)
    m = torch.ones_like(r)
    # Eq. 8: pos = .5*|1|*min(1.5, c_high); neg = .5*max(1, c_low) + 1*max(1, c_low) = 1.5 (c_low <= 1)
    # start c_high 1.2: rho = .6/2.1 = .2857 ; 1.25: .625/2.125 = .2941 ; 1.30: .65/2.15 = .3023 >= .3 -> stop
    assert contribution_ratio(r, a, m, 0.6, 1.2, "paper", p_b) == pytest.approx(0.6 / 2.1)
    bounds = adaptive_bounds(r, a, m, 0.3, 0.6, 0.9, 0.02, 1.2, 3.0, 0.05, mode="paper", behaviour_prob=p_b)
    assert bounds == pytest.approx((0.6, 1.30))
    # c_high first up to b+ = 1.5 (rho .75/2.25 = .333 < .4), then c_low by .02 until c_low + .02 > b- = .9;
    # raising c_low does not lower neg (max(r, c_low) with r = 1), so the search ends at (.9, 1.5)
    bounds = adaptive_bounds(r, a, m, 0.4, 0.6, 0.9, 0.02, 1.2, 1.5, 0.05, mode="paper", behaviour_prob=p_b)
    assert bounds == pytest.approx((0.9, 1.5))
    # the behaviour weights matter: unweighted, rho = 1.2/3.2 = .375 >= .3 at the start bounds
    assert adaptive_bounds(r, a, m, 0.3, 0.6, 0.9, 0.02, 1.2, 3.0, 0.05, mode="paper") == (0.6, 1.2)
    # masked tokens count nothing: masking both negatives leaves rho = 1
    m2 = torch.tensor([[1.0, 0.0, 0.0]])
    assert contribution_ratio(r, a, m2, 0.6, 1.2, "paper", p_b) == 1.0


def test_pacs_loss_hand():
    old = torch.zeros(3, 2)
    logp = torch.tensor([[0.1, 0.1], [-0.1, 0.0], [0.5, 7.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # the 7.0 is masked
    labels = torch.tensor([1.0, 0.0, 0.0])
    g = torch.zeros(3, dtype=torch.long)
    # psi = [.2, -.1, .5] ; rloo logits: .2-(.4/2)=0 ; -.1-(.7/2)=-.45 ; .5-(.1/2)=.45
    # question weights (G=3, 1 pos, 2 neg): 3/2, 3/4, 3/4
    sp = lambda x: math.log1p(math.exp(x))
    expected = (1.5 * (sp(0.0) - 0.0) + 0.75 * sp(-0.45) + 0.75 * sp(0.45)) / 3
    assert pacs_loss(logp, old, mask, labels, g).item() == pytest.approx(expected, rel=1e-6)
    # no weighting, no baseline: mean of BCE(psi)
    plain = (sp(0.2) - 0.2 + sp(-0.1) + sp(0.5)) / 3
    assert pacs_loss(logp, old, mask, labels, g, baseline="none", weighting="none").item() == pytest.approx(plain, rel=1e-6)


def test_igpo_turn_advantages_hand():
    gt = torch.tensor([[0.1, 0.3, 0.6], [0.2, 0.1, float("nan")]])
    outcome = torch.tensor([1.0, 0.0])
    # turn rewards: row0 [.2, .3, 1(outcome)] ; row1 [-.1, 0(outcome)]
    # joint over 5 values: mean .28 ; pop var = (.0064+.0004+.5184+.1444+.0784)/5 = .1496
    std = math.sqrt(0.1496 + 1e-8) + 1e-6
    n = [(-0.08) / std, 0.02 / std, 0.72 / std, -0.38 / std, -0.28 / std]
    # gamma 1 backward sums
    expected = torch.tensor([[n[0] + n[1] + n[2], n[1] + n[2], n[2]], [n[3] + n[4], n[4], 0.0]])
    assert torch.allclose(turn_advantages(gt, outcome, torch.tensor([0, 0])), expected, atol=1e-5)
    # gamma .5 on row0: A2 = n2, A1 = n1 + .5 n2, A0 = n0 + .5 A1
    a = turn_advantages(gt, outcome, torch.tensor([0, 0]), gamma=0.5)
    assert a[0, 0].item() == pytest.approx(n[0] + 0.5 * (n[1] + 0.5 * n[2]), abs=1e-5)


def test_igpo_token_path_and_broadcast():
    turn_ids = torch.tensor([[0, 0, -1, 1, 2]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0]])
    tok_r = torch.tensor([[0.0, 0.2, 0.0, 0.3, 1.0]])
    # reward at the last token of each turn: [.2, .3, 1]
    assert torch.allclose(turn_rewards_from_tokens(tok_r, turn_ids), torch.tensor([[0.2, 0.3, 1.0]], dtype=torch.float64))
    out = broadcast_turns(torch.tensor([[3.0, 2.0, 1.0]]), turn_ids, mask)
    assert torch.equal(out, torch.tensor([[3.0, 3.0, 0.0, 2.0, 1.0]]))


def test_high_entropy_mask():
    ent = torch.tensor([[0.1, 0.9, 0.5], [0.7, 0.3, 2.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # 2.0 is padding
    # 5 tokens, ratio .4 -> k = ceil(2) = 2 -> .9 and .7
    assert high_entropy_mask(ent, mask, 0.4).tolist() == [[False, True, False], [True, False, False]]
    # ratio .1 -> k = max(1, ceil(.5)) = 1
    assert high_entropy_mask(ent, mask, 0.1).sum().item() == 1
    assert not high_entropy_mask(ent, torch.zeros_like(mask), 0.5).any()


def test_sequence_ratio():
    logp = torch.tensor([[0.2, 0.4, 9.0]])
    # masked mean of (logp - 0) over the first two = .3 -> e^.3
    assert sequence_ratio(logp, torch.zeros_like(logp), torch.tensor([[1.0, 1.0, 0.0]])).item() == pytest.approx(math.exp(0.3))


def test_convex_kl_lambda_schedule_and_centred_clip():
    logp, base, prev = torch.tensor([0.0]), torch.tensor([-1.0]), torch.tensor([-0.5])
    # k1: .25*(0-(-1)) + .75*(0-(-.5)) = .625
    assert convex_kl(logp, base, prev, 0.25, "k1").item() == pytest.approx(0.625)
    # lambda(t) = max(1 - .1 * ceil(max(t - 50, 0) / 10), .5)
    assert [convex_lambda(t) for t in (0, 50, 51, 60, 61, 75, 100, 500)] == pytest.approx(
        [1.0, 1.0, 0.9, 0.9, 0.8, 0.7, 0.5, 0.5])
    # centre c = pi_k / pi_behaviour = .5 / .25 = 2 -> window (2 - .2, 2 + .28); on-policy c = 1
    low, high = centred_clip_bounds(torch.log(torch.tensor([0.5, 0.3])), torch.log(torch.tensor([0.25, 0.3])), 0.2,
                                    0.28)
    assert low.tolist() == pytest.approx([1.8, 0.8]) and high.tolist() == pytest.approx([2.28, 1.28])
    assert [reincarnated(t, 3) for t in (1, 2, 3, 4)] == [False, False, True, True] and not reincarnated(9, 0)


def test_noisy_forward_and_reinforce_advantages():
    import algorithms
    from algorithms.noisy import forward_corrected_advantages

    r = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert forward_corrected_advantages(r, 0.3).tolist() == pytest.approx([0.3, -0.7, 0.3, -0.7])
    # E[w | R = 1] with false negatives at .3: .7 * .3 + .3 * (.3 - 1) = 0 ; E[w | R = 0] = -.7 = -(1 - rho1)
    assert 0.7 * 0.3 + 0.3 * (0.3 - 1) == pytest.approx(0.0)
    mask = torch.ones(4, 2)
    b = algorithms.RolloutBatch(response_ids=mask.long(), response_mask=mask, rewards=r,
                                group_ids=torch.tensor([0, 0, 1, 1]), prompt_keys=["a"] * 4)
    out, _ = algorithms.build({"preset": "dr_grpo", "advantage": {"name": "noisy_forward", "fn_rate": 0.3}}).prepare(b)
    assert out.advantages[:, 0].tolist() == pytest.approx([0.3, -0.7, 0.3, -0.7])
    # backward-corrected rewards (R - rho0)/(1 - rho0 - rho1) survive a baseline-free estimator ...
    corrected = (r - 0.0) / (1 - 0.0 - 0.3)
    b.rewards = corrected
    out, _ = algorithms.build({"preset": "dr_grpo", "advantage": {"name": "reinforce"}}).prepare(b)
    assert out.advantages[:, 0].tolist() == pytest.approx(corrected.tolist())
    # ... and a group baseline with std scaling removes them: the same advantages as the raw rewards
    grpo = algorithms.build({"preset": "grpo"})
    raw, _ = grpo.prepare(algorithms.RolloutBatch(response_ids=mask.long(), response_mask=mask, rewards=r,
                                                  group_ids=torch.tensor([0, 0, 1, 1]), prompt_keys=["a"] * 4))
    assert torch.allclose(grpo.prepare(b)[0].advantages, raw.advantages, atol=1e-5)
