"""PPO with a critic: GAE, the KL-shaped token rewards, the clipped value loss, explained variance
and the Bradley-Terry loss, against numbers computed by hand (algorithms/ppo.py)."""

import math

import pytest
import torch

import algorithms
from algorithms import BatchField
from algorithms.batch import RolloutBatch
from algorithms.ppo import (RunningMoments, bradley_terry_loss, clipped_value_loss, explained_variance, gae,
                            kl_shaped_token_rewards)
from algorithms.stages.advantages_gae import GAEAdvantage

T = torch.tensor


def test_gae_by_hand():
    # gamma 1, lambda .5: deltas .1, .1, .3 -> A2 = .3, A1 = .1 + .5 * .3 = .25, A0 = .1 + .5 * .25 = .225
    adv, ret = gae(T([[0.0, 0.0, 1.0]]), T([[0.5, 0.6, 0.7]]), T([[1.0, 1.0, 1.0]]), gamma=1.0, lam=0.5)
    assert adv.tolist()[0] == pytest.approx([0.225, 0.25, 0.3])
    assert ret.tolist()[0] == pytest.approx([0.725, 0.85, 1.0])
    # gamma .9, lambda 1: A1 = 1 - .4 = .6, A0 = .9 * .4 - .2 + .9 * .6 = .7 (= .9 * 1 - .2, Monte Carlo)
    adv, _ = gae(T([[0.0, 1.0]]), T([[0.2, 0.4]]), T([[1.0, 1.0]]), gamma=0.9, lam=1.0)
    assert adv.tolist()[0] == pytest.approx([0.7, 0.6])


def test_gae_passes_over_masked_tokens_and_padding():
    # token 1 is an observation (mask 0, its value ignored): token 0 bootstraps from token 2's value
    # delta2 = 1 - .7 = .3; delta0 = .7 - .5 = .2; A0 = .2 + .5 * .3 = .35; padding stays 0
    adv, ret = gae(T([[0.0, 0.0, 1.0, 0.0]]), T([[0.5, 9.0, 0.7, 3.0]]), T([[1.0, 0.0, 1.0, 0.0]]), 1.0, 0.5)
    assert adv.tolist()[0] == pytest.approx([0.35, 0.0, 0.3, 0.0])
    assert ret.tolist()[0] == pytest.approx([0.85, 0.0, 1.0, 0.0])


def test_kl_shaped_token_rewards_by_hand():
    # -0.1 * (old - ref) = -0.05, +0.1; the outcome 1.0 on the last response token
    out = kl_shaped_token_rewards(T([1.0]), T([[1.0, 1.0, 0.0]]), T([[-1.0, -2.0, 0.0]]), T([[-1.5, -1.0, 0.0]]), 0.1)
    assert out.tolist()[0] == pytest.approx([-0.05, 1.1, 0.0])
    assert kl_shaped_token_rewards(T([2.0]), T([[1.0, 0.0]])).tolist() == [[2.0, 0.0]]
    with pytest.raises(ValueError, match="old and reference"):
        kl_shaped_token_rewards(T([1.0]), T([[1.0]]), kl_coef=0.1)


def test_clipped_value_loss_by_hand():
    # token 0: (1 - 2)^2 = 1 vs clipped V = .5 + .2 = .7: (.7 - 2)^2 = 1.69 -> 0.845, clipped branch; token 1: 0.5
    loss, clipped = clipped_value_loss(T([1.0, 0.0]), T([0.5, 0.0]), T([2.0, 1.0]), clip=0.2)
    assert loss.tolist() == pytest.approx([0.845, 0.5]) and clipped.tolist() == [1.0, 0.0]
    loss, clipped = clipped_value_loss(T([1.0, 0.0]), T([0.5, 0.0]), T([2.0, 1.0]), clip=0.0)
    assert loss.tolist() == pytest.approx([0.5, 0.5]) and clipped.tolist() == [0.0, 0.0]


def test_explained_variance_and_bradley_terry_by_hand():
    m = T([[1.0, 1.0, 1.0, 0.0]])
    assert explained_variance(T([[1.0, 2.0, 3.0, 7.0]]), T([[1.0, 2.0, 3.0, 0.0]]), m) == pytest.approx(1.0)
    assert explained_variance(T([[2.0, 2.0, 2.0, 7.0]]), T([[1.0, 2.0, 3.0, 0.0]]), m) == pytest.approx(0.0)
    assert bradley_terry_loss(T([2.0]), T([0.0])).item() == pytest.approx(math.log(1 + math.exp(-2)))
    assert bradley_terry_loss(T([0.0]), T([0.0])).item() == pytest.approx(math.log(2))


def _batch() -> RolloutBatch:
    mask = T([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    return RolloutBatch(response_ids=torch.ones(2, 3, dtype=torch.long), response_mask=mask, rewards=T([1.0, 0.0]),
                        group_ids=T([0, 1]), prompt_keys=["a", "b"], values=T([[0.5, 0.6, 0.7], [0.2, 0.4, 0.0]]))


def test_gae_stage_writes_advantages_and_returns():
    stage = GAEAdvantage(GAEAdvantage.Params(gamma=1.0, lam=0.5, kl_coef=0.0, whiten=False))
    batch = _batch()
    adv, metrics = stage.compute(batch)
    assert adv[0].tolist() == pytest.approx([0.225, 0.25, 0.3])
    assert adv[1].tolist() == pytest.approx([0.2 + 0.5 * -0.4, -0.4, 0.0])  # deltas .2, -.4
    assert torch.allclose(batch.returns, (adv + batch.values) * batch.response_mask)
    assert "critic/explained_variance" in metrics and "critic/values_mean" in metrics
    whitened, _ = GAEAdvantage(GAEAdvantage.Params(lam=0.5, gamma=1.0)).compute(_batch())
    real = whitened[batch.response_mask > 0]
    assert real.mean().item() == pytest.approx(0.0, abs=1e-6) and real.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)


def test_running_moments_by_hand():
    m = RunningMoments()
    m.update(T([1.0, 3.0]))  # mean 2, population std 1
    assert (m.mean, m.std) == pytest.approx((2.0, 1.0))
    assert m.normalize(T([1.0, 3.0])).tolist() == pytest.approx([-1.0, 1.0])
    m.update(T([5.0]))  # all of 1, 3, 5: mean 3, variance (4 + 0 + 4) / 3
    assert (m.mean, m.std) == pytest.approx((3.0, math.sqrt(8 / 3)))
    again = RunningMoments()
    again.load_state_dict(m.state_dict())
    assert (again.count, again.mean, again.std) == (3, m.mean, m.std)


def test_gae_stage_normalises_the_outcome_reward_by_its_running_moments():
    stage = GAEAdvantage(GAEAdvantage.Params(gamma=1.0, lam=1.0, kl_coef=0.0, whiten=False, normalize_reward=True))
    batch = _batch()
    batch.values = torch.zeros(2, 3)
    _, metrics = stage.compute(batch)  # rewards 1, 0: mean .5, std .5 -> +1, -1 on each row's last token
    assert batch.returns[0].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert batch.returns[1].tolist() == pytest.approx([-1.0, -1.0, 0.0])
    assert metrics["critic/reward_running_mean"] == pytest.approx(0.5)
    restored = GAEAdvantage(stage.params)
    restored.load_state_dict(stage.state_dict())  # the moments go into checkpoints
    second = _batch()
    second.values, second.rewards = torch.zeros(2, 3), T([1.0, 1.0])
    restored.compute(second)  # 1, 0, 1, 1: mean .75, std sqrt(3)/4 -> (1 - .75) / .433
    assert second.returns[0, 0].item() == pytest.approx(0.25 / (math.sqrt(3) / 4), rel=1e-5)


def test_ppo_preset_reads_values_and_the_reference():
    algo = algorithms.build_driver({"preset": "ppo"})
    assert algo.needs(BatchField.VALUES) and algo.needs(BatchField.REF_LOGP) and algo.needs(BatchField.OLD_LOGP)
    no_kl = algorithms.build_driver({"preset": "ppo", "advantage": {"kl_coef": 0.0}})
    assert no_kl.needs(BatchField.VALUES) and not no_kl.needs(BatchField.REF_LOGP)
    assert not algorithms.build_driver({"preset": "grpo"}).needs(BatchField.VALUES)
